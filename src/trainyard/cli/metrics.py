"""`trainyard metrics` (a run's tracked and resource metrics) and `trainyard node metrics`
(a node's CPU, memory and GPUs over a window)."""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from trainyard.cli.output import format_time, print_json
from trainyard.cli.runs import RunArg
from trainyard.cli.state import CliState
from trainyard.core.metrics import NodeMetrics
from trainyard.core.run_search import SYSTEM_PREFIX

__all__ = ["metrics_command", "node_metrics_command", "parse_window"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WINDOW = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def parse_window(text: str) -> int:
    """``90``, ``30s``, ``5m``, ``1h``, ``1d`` as seconds (typer.BadParameter otherwise)."""
    match = _WINDOW.match(text.lower())
    if match is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration: use seconds or a number with s, m, h or d "
            "(e.g. 5m, 1h, 1d)",
            param_hint="--window",
        )
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.4g}"
    return f"{value:.6g}"


def metrics_command(
    ctx: typer.Context,
    run_ref: RunArg,
    key: Annotated[
        str | None, typer.Argument(help="One metric: print its points (e.g. loss).")
    ] = None,
    system: Annotated[
        bool,
        typer.Option("--system", help="Also list resource metrics (system/<replica>/...)."),
    ] = False,
    max_points: Annotated[
        int, typer.Option(min=3, max=100_000, help="With KEY: at most this many points.")
    ] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A run's metrics (last, min, max, count) and params; with KEY, that metric's points."""
    state: CliState = ctx.ensure_object(CliState)
    with state.client() as client:
        run = client.runs.resolve(run_ref)
        if key is not None:
            series = client.metrics.history(run.id, key, max_points=max_points)
            if as_json:
                print_json(series.model_dump(mode="json"))
                return
            table = Table(box=None, pad_edge=False)
            for column in ("STEP", "TIME (UTC)", key.upper()):
                table.add_column(column, justify="right" if column != "TIME (UTC)" else "left")
            for step, when, value in series.points:
                table.add_row(
                    str(step), format_time(datetime.fromtimestamp(when, UTC)), _number(value)
                )
            state.out.print(table)
            if series.downsampled:
                state.err.print(
                    f"{len(series.points)} of {series.total} points (min/max per bucket); "
                    "--max-points for more",
                    markup=False,
                )
            return
        summaries = client.metrics.list(run.id)
        params = client.metrics.params(run.id)
    shown = [s for s in summaries if system or not s.key.startswith(SYSTEM_PREFIX)]
    if as_json:
        print_json({"metrics": [s.model_dump(mode="json") for s in shown], "params": params})
        return
    if not summaries and not params:
        state.out.print(
            f"{run.ref} has logged no metrics or params (trainyard.log_metric, docs/sdk.md)",
            markup=False,
        )
        return
    if shown:
        table = Table(box=None, pad_edge=False)
        for column in ("METRIC", "LAST", "MIN", "MAX", "STEP", "POINTS"):
            table.add_column(column, justify="left" if column == "METRIC" else "right")
        for s in shown:
            table.add_row(
                s.key,
                _number(s.last_value),
                _number(s.min_value),
                _number(s.max_value),
                str(s.last_step),
                str(s.count),
            )
        state.out.print(table)
    hidden = len(summaries) - len(shown)
    if hidden:
        state.err.print(f"{hidden} resource metrics not shown: --system lists them", markup=False)
    if params:
        state.out.print()
        table = Table(box=None, pad_edge=False)
        table.add_column("PARAM")
        table.add_column("VALUE")
        for name, text in sorted(params.items()):
            table.add_row(name, text)
        state.out.print(table)


def node_metrics_command(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="The node, as `trainyard node ls` names it.")],
    window: Annotated[
        str, typer.Option(help="How far back: seconds, or 5m, 1h, 1d (at most 7d).")
    ] = "1h",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A node's CPU, memory and GPUs over a window: last, mean and max of each."""
    state: CliState = ctx.ensure_object(CliState)
    seconds = parse_window(window)
    with state.client() as client:
        data = client.nodes.metrics(node, window=seconds)
    if as_json:
        print_json(data.model_dump(mode="json"))
        return
    _print_node_metrics(state, data)


def _print_node_metrics(state: CliState, data: NodeMetrics) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("METRIC", "UNIT", "LAST", "MEAN", "MAX", "POINTS"):
        table.add_column(column, justify="left" if column in ("METRIC", "UNIT") else "right")
    for series in data.series:
        values = [v for _, v in series.points]
        if not values:
            continue
        table.add_row(
            series.key,
            series.unit,
            _number(values[-1]),
            _number(statistics.fmean(values)),
            _number(max(values)),
            str(len(values)),
        )
    if data.series:
        state.out.print(table)
    else:
        state.out.print(
            f"no samples of {data.node} in the last {data.window} s: its trainyard server "
            "samples it while it runs",
            markup=False,
        )
    state.err.print(f"means per {data.interval} s over the last {data.window} s", markup=False)
    if not data.gpus:
        why = f" ({data.gpu_error})" if data.gpu_error else ""
        state.out.print(f"no GPU on {data.node}{why}", markup=False)
    for gpu in data.gpus:
        if gpu.simulated:
            state.out.print(
                f"GPU {gpu.index} {gpu.product}: simulated, nothing to measure", markup=False
            )
        elif not gpu.measured:
            state.out.print(
                f"GPU {gpu.index} {gpu.product}: no samples in the window"
                + (f" ({data.gpu_error})" if data.gpu_error else ""),
                markup=False,
            )
