"""`trainyard node`, `pool`, `group` and `queue`: the machines, their GPUs, who may use them,
and the runs waiting for them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from trainyard.cli.output import format_age, format_duration, gpu_holders, print_json
from trainyard.cli.state import CliState
from trainyard.client import format_size
from trainyard.client.scheduling import DEFAULT_GPU_MEMORY, DEFAULT_GPU_TYPE
from trainyard.core.errors import InvalidInputError, NotFoundError
from trainyard.core.quantity import format_cpu, format_memory, parse_memory
from trainyard.core.scheduling import Group, Node, Pool

__all__ = ["group_app", "node_app", "pool_app", "queue_command"]

node_app = typer.Typer(help="Nodes: machines, their CPUs, memory and GPUs.", no_args_is_help=True)
pool_app = typer.Typer(
    help="GPU pools: GPUs of one type, assigned to a group.", no_args_is_help=True
)
group_app = typer.Typer(
    help="Groups: a project's runs use the GPU pools of its group.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _table(*columns: str, wrap: tuple[str, ...] = ()) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=column not in wrap)
    return table


# -- nodes ----------------------------------------------------------------------------------


def _node_table(nodes: list[Node]) -> Table:
    table = _table("NODE", "CPUS", "MEMORY", "RESERVED CPU", "RESERVED MEMORY", "GPUS", "SEEN")
    for node in nodes:
        present = [g for g in node.gpus if g.present]
        free = sum(1 for g in present if g.free)
        table.add_row(
            Text(node.name),
            format_cpu(node.cpu_millis),
            format_size(node.memory_bytes),
            format_cpu(node.reserved_cpu_millis) if node.reserved_cpu_millis else "-",
            format_size(node.reserved_memory_bytes) if node.reserved_memory_bytes else "-",
            f"{free}/{len(present)} free" if present else "-",
            format_age(node.heartbeat_at) + " ago",
        )
    return table


def _gpu_table(nodes: list[Node]) -> Table:
    table = _table(
        "NODE", "INDEX", "PRODUCT", "MEMORY", "POOL", "SIMULATED", "HELD BY", wrap=("HELD BY",)
    )
    for node in nodes:
        for gpu in sorted(node.gpus, key=lambda g: g.index):
            table.add_row(
                Text(node.name),
                str(gpu.index),
                Text(gpu.product + ("" if gpu.present else " (absent)")),
                format_size(gpu.memory_bytes) if gpu.memory_bytes else "-",
                Text(gpu.pool),
                "yes" if gpu.simulated else "no",
                Text(gpu_holders(gpu) or "-"),
            )
    return table


@node_app.command("ls")
def node_ls(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List nodes (CPUs, memory, what is reserved), then every GPU and who holds it."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        nodes = client.nodes.list()
    if as_json:
        print_json([n.model_dump(mode="json") for n in nodes])
        return
    if not nodes:
        state.err.print(
            "no nodes: the server registers its own machine when it starts", markup=False
        )
        return
    state.out.print(_node_table(nodes))
    if not any(n.gpus for n in nodes):
        state.err.print(
            "no GPUs (simulate some with `trainyard node simulate-gpus --count 4 --type "
            f"{DEFAULT_GPU_TYPE}`)",
            markup=False,
        )
        return
    state.out.print()
    state.out.print(_gpu_table(nodes))
    if any(not g.present for n in nodes for g in n.gpus):
        state.err.print(
            "GPUs marked (absent) were not found when their node last registered: no run is "
            "placed on them until they are back",
            markup=False,
        )


def _only_node(nodes: list[Node]) -> str:
    if len(nodes) == 1:
        return nodes[0].name
    if not nodes:
        raise NotFoundError(
            "the server has no node registered: restart it (it registers its own machine "
            "when it starts), then try again"
        )
    names = ", ".join(n.name for n in nodes)
    raise InvalidInputError(
        f"the server has {len(nodes)} nodes ({names}): say which with --node NAME",
        fields={"nodes": [n.name for n in nodes]},
    )


def _memory(value: str) -> int:
    try:
        return parse_memory(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--memory") from exc


@node_app.command("simulate-gpus")
def node_simulate_gpus(
    ctx: typer.Context,
    count: Annotated[
        int,
        typer.Option(
            min=0, max=1024, help="How many simulated GPUs the node has (0 removes them)."
        ),
    ],
    gpu_type: Annotated[
        str, typer.Option("--type", metavar="PRODUCT", help="Their product name.")
    ] = DEFAULT_GPU_TYPE,
    node: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="The node (default: the only one there is)."),
    ] = None,
    memory: Annotated[
        str, typer.Option(metavar="QUANTITY", help="Memory of each GPU, e.g. 16Gi.")
    ] = format_memory(DEFAULT_GPU_MEMORY),
    as_json: JsonOption = False,
) -> None:
    """Give a node exactly COUNT made-up GPUs, scheduled like real ones (for tests, demos)."""
    state: CliState = ctx.ensure_object(CliState)
    memory_bytes = _memory(memory)
    with state.client() as client:
        name = node if node is not None else _only_node(client.nodes.list())
        result = client.nodes.simulate_gpus(name, count, gpu_type, memory_bytes)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    simulated = [g for g in result.gpus if g.simulated]
    if not simulated:
        state.out.print(f"node {result.name} has no simulated GPU now", markup=False)
        return
    first, last = simulated[0].index, simulated[-1].index
    state.out.print(
        f"node {result.name} has {_plural(len(simulated), 'simulated GPU')} now: "
        f"{simulated[0].product}, {format_size(memory_bytes)} each, indexes {first}-{last}, "
        "new ones in the default pool",
        markup=False,
    )


# -- pools ----------------------------------------------------------------------------------


def _pool_line(pool: Pool) -> str:
    return (
        f"pool {pool.name} ({pool.gpu_type or 'any type'}, group {pool.group}): "
        f"{_plural(pool.total, 'GPU')}, {pool.free} free"
    )


@pool_app.command("ls")
def pool_ls(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List GPU pools: their type, group, and how many GPUs they hold (and how many are free)."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        pools = client.pools.list()
    if as_json:
        print_json([p.model_dump(mode="json") for p in pools])
        return
    table = _table("POOL", "TYPE", "GROUP", "GPUS", "FREE", "SIMULATED")
    for pool in pools:
        table.add_row(
            Text(pool.name),
            Text(pool.gpu_type or "(any)"),
            Text(pool.group),
            str(pool.total),
            str(pool.free),
            str(pool.simulated),
        )
    state.out.print(table)


@pool_app.command("create")
def pool_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="POOL", help="Lowercase letters, digits and '-'.")],
    gpu_type: Annotated[
        str,
        typer.Option(
            "--type",
            metavar="PRODUCT",
            help="The GPU type it holds, as `trainyard node ls` shows it (a prefix such as "
            "Tesla-V100 takes every V100).",
        ),
    ],
    group: Annotated[str, typer.Option(help="The group it is assigned to.")] = "default",
    as_json: JsonOption = False,
) -> None:
    """Create an empty pool for GPUs of one type; move GPUs into it with assign-gpus."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        pool = client.pools.create(name, gpu_type, group)
    if as_json:
        print_json(pool.model_dump(mode="json"))
        return
    state.out.print(f"created pool {pool.name} ({pool.gpu_type}, group {pool.group})", markup=False)
    state.out.print(
        f"move GPUs into it: trainyard pool assign-gpus {pool.name} --count N",
        markup=False,
        style="dim",
    )


@pool_app.command("delete")
def pool_delete(
    ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="POOL", help="Pool name.")]
) -> None:
    """Delete a pool: its GPUs go back to the default pool."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        client.pools.delete(name)
    state.out.print(f"deleted pool {name}; its GPUs are back in the default pool", markup=False)


def _split_gpus(values: list[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


@pool_app.command("assign-gpus")
def pool_assign_gpus(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="POOL", help="Pool name.")],
    gpus: Annotated[
        list[str] | None,
        typer.Option(
            "--gpus",
            metavar="GPU,...",
            help="GPUs to move, by UUID or NODE:INDEX (comma list, repeatable).",
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            min=1, help="Or: move this many GPUs of the pool's type from the default pool."
        ),
    ] = None,
    node: Annotated[
        str | None, typer.Option(metavar="NAME", help="With --count: take them from this node.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Move GPUs into a pool (into `default` to take them out of theirs); the total never
    changes."""
    state: CliState = ctx.ensure_object(CliState)
    named = _split_gpus(gpus)
    if named and count is not None:
        raise typer.BadParameter(
            "give either --gpus or --count, not both", param_hint="--gpus / --count"
        )
    if not named and count is None:
        raise typer.BadParameter(
            "say which GPUs: --gpus NODE:INDEX,... (or UUIDs), or --count N",
            param_hint="--gpus / --count",
        )
    if node is not None and count is None:
        raise typer.BadParameter(
            "--node goes with --count (--gpus names each GPU's node already)",
            param_hint="--node",
        )
    with state.client() as client:
        pool = client.pools.assign_gpus(name, named, count=count, node=node)
    if as_json:
        print_json(pool.model_dump(mode="json"))
        return
    moved = len(named) if named else count or 0
    state.out.print(f"moved {_plural(moved, 'GPU')}; {_pool_line(pool)}", markup=False)


@pool_app.command("assign-group")
def pool_assign_group(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="POOL", help="Pool name.")],
    group: Annotated[str, typer.Argument(metavar="GROUP", help="Group name.")],
    as_json: JsonOption = False,
) -> None:
    """Assign a pool to a group: the group's projects' runs may use its GPUs."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        pool = client.pools.assign_group(name, group)
        # The pool as `pool ls` shows it once the change is made.
        pool = next((p for p in client.pools.list() if p.name == name), pool)
    if as_json:
        print_json(pool.model_dump(mode="json"))
        return
    state.out.print(_pool_line(pool), markup=False)


# -- groups ---------------------------------------------------------------------------------


def _group_gpus(group: Group, pools: list[Pool]) -> str:
    mine = [p for p in pools if p.group == group.name]
    total = sum(p.total for p in mine)
    return f"{total} ({sum(p.free for p in mine)} free)" if total else "0"


@group_app.command("ls")
def group_ls(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List groups with their pools, GPUs and projects."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        groups = client.groups.list()
        pools = [] if as_json else client.pools.list()
    if as_json:
        print_json([g.model_dump(mode="json") for g in groups])
        return
    table = _table("GROUP", "POOLS", "GPUS", "PROJECTS", wrap=("PROJECTS",))
    for group in groups:
        table.add_row(
            Text(group.name),
            Text(", ".join(group.pools) or "-"),
            _group_gpus(group, pools),
            Text(", ".join(group.projects) or "-"),
        )
    state.out.print(table)


@group_app.command("create")
def group_create(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="GROUP", help="Lowercase letters, digits and '-'.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Create a group; give it pools (pool assign-group) and projects (project set-group)."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        group = client.groups.create(name)
    if as_json:
        print_json(group.model_dump(mode="json"))
        return
    state.out.print(f"created group {group.name}", markup=False)


@group_app.command("delete")
def group_delete(
    ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="GROUP", help="Group name.")]
) -> None:
    """Delete a group that has no pool and no project left."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        client.groups.delete(name)
    state.out.print(f"deleted group {name}", markup=False)


# -- the queue ------------------------------------------------------------------------------


def queue_command(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Only runs of this project.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List queued runs in scheduling order (priority, then submission), with why each waits."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        if project is not None:
            client.projects.get(project)  # an unknown project is an error, not an empty queue
        entries = client.queue.list(project=project)
    if as_json:
        print_json([e.model_dump(mode="json") for e in entries])
        return
    if not entries:
        state.err.print("the queue is empty", markup=False)
        return
    table = _table(
        "POS", "RUN", "ID", "PRIORITY", "GPUS", "WAITING", "TIMEOUT", "REASON", wrap=("REASON",)
    )
    for entry in entries:
        priority = str(entry.priority)
        if entry.start_immediately:
            priority += " (now)"
        table.add_row(
            str(entry.position),
            Text(entry.run),
            str(entry.run_id),
            priority,
            str(entry.gpus) if entry.gpus else "-",
            format_duration(entry.waiting_seconds),
            format_duration(entry.timeout_seconds) if entry.timeout_seconds else "-",
            Text(entry.reason),
        )
    state.out.print(table)
