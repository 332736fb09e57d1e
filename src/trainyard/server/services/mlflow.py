"""The MLflow-compatible tracking API, on top of projects, external runs and tracking.

An MLflow **experiment** is a trainyard project: experiment ``0`` ("Default") is the
``default`` project, any other project is experiment ``str(project id)``. Experiments created
through this API get a project named after a DNS-1123 slug of their free-text name
(``"My exp!"`` → ``my-exp``, ``my-exp-2`` when taken); the name itself is kept in
``mlflow_experiments``. An MLflow **run** is a trainyard run (``run_id`` = ``str(run id)``):
runs/create makes an external run under the task slugged from the ``mlflow.source.name``
tag (the script's file name), or ``mlflow``. Tags live in ``run_tags``; the run name is the
``mlflow.runName`` tag. Functions return plain JSON-ready dicts in MLflow's shapes.
"""

from __future__ import annotations

import re
import time as clock
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import lazyload

from trainyard.core.errors import ConflictError, InvalidInputError, NotFoundError
from trainyard.core.metrics import check_key, param_text
from trainyard.core.status import ACTIVE_STATUSES, RunStatus
from trainyard.server.services import metrics as tracking
from trainyard.server.services import runs as run_service
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.mlflow_search import (
    Clause,
    MlflowApiError,
    OrderKey,
    RunView,
    invalid,
    like,
    matches,
    parse_filter,
    parse_order_by,
    sort_runs,
)
from trainyard.server.services.projects import DEFAULT_PROJECT
from trainyard.server.store import Session
from trainyard.server.store import metrics as metric_store
from trainyard.server.store import projects as project_store
from trainyard.server.store.tables import (
    MetricSeriesRow,
    MlflowExperimentRow,
    ProjectRow,
    RunParamRow,
    RunRow,
    RunTagRow,
    TaskRow,
)

__all__ = [
    "RUN_NAME_TAG",
    "MetricIn",
    "create_experiment",
    "create_run",
    "delete_run",
    "delete_tag",
    "get_experiment",
    "get_experiment_by_name",
    "get_metric_history",
    "get_run",
    "log_batch",
    "restore_run",
    "search_experiments",
    "search_runs",
    "slugify",
    "update_run",
]

RUN_NAME_TAG = "mlflow.runName"
SOURCE_NAME_TAG = "mlflow.source.name"
USER_TAG = "mlflow.user"
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
EXPERIMENT_NAME_MAX = 500
TAG_VALUE_MAX = 8000
SEARCH_MAX_RESULTS = 50_000

_STATUS_TO_MLFLOW = {
    RunStatus.QUEUED: "SCHEDULED",
    RunStatus.STARTING: "SCHEDULED",
    RunStatus.RUNNING: "RUNNING",
    RunStatus.STOPPING: "RUNNING",
    RunStatus.COMPLETE: "FINISHED",
    RunStatus.ERROR: "FAILED",
    RunStatus.STOPPED: "KILLED",
}
_MLFLOW_TO_END = {
    "FINISHED": RunStatus.COMPLETE,
    "FAILED": RunStatus.ERROR,
    "KILLED": RunStatus.STOPPED,
}


@dataclass(frozen=True)
class MetricIn:
    key: str
    value: float
    timestamp_ms: int | None
    step: int


def not_found(message: str) -> MlflowApiError:
    return MlflowApiError("RESOURCE_DOES_NOT_EXIST", message, 404)


def slugify(text: str, limit: int = 63) -> str:
    """A DNS-1123 label made of ``text`` ('' when nothing usable is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].strip("-")


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


# --------------------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------------------


def _experiment_id(project: ProjectRow) -> str:
    return DEFAULT_EXPERIMENT_ID if project.name == DEFAULT_PROJECT else str(project.id)


def _names(session: Session) -> dict[int, str]:
    return {r.project_id: r.name for r in session.scalars(select(MlflowExperimentRow))}


def _experiment_name(project: ProjectRow, names: Mapping[int, str]) -> str:
    if project.id in names:
        return names[project.id]
    return DEFAULT_EXPERIMENT_NAME if project.name == DEFAULT_PROJECT else project.name


def _load_experiment(session: Session, experiment_id: str) -> ProjectRow:
    row: ProjectRow | None
    if experiment_id == DEFAULT_EXPERIMENT_ID:
        row = project_store.get_project(session, DEFAULT_PROJECT)
    elif experiment_id.isdigit():
        row = session.get(ProjectRow, int(experiment_id))
    else:
        row = None
    if row is None:
        raise not_found(f"No Experiment with id={experiment_id} exists")
    return row


def _experiment_json(project: ProjectRow, names: Mapping[int, str]) -> dict[str, Any]:
    created = _ms(project.created_at)
    eid = _experiment_id(project)
    return {
        "experiment_id": eid,
        "name": _experiment_name(project, names),
        "artifact_location": f"mlflow-artifacts:/{eid}",
        "lifecycle_stage": "active",
        "creation_time": created,
        "last_update_time": created,
        "tags": [{"key": "trainyard.project", "value": project.name}],
    }


def _find_by_name(session: Session, name: str) -> ProjectRow | None:
    mapped = session.scalars(
        select(MlflowExperimentRow).where(MlflowExperimentRow.name == name)
    ).first()
    if mapped is not None:
        return session.get(ProjectRow, mapped.project_id)
    if name == DEFAULT_EXPERIMENT_NAME:
        return project_store.get_project(session, DEFAULT_PROJECT)
    row = project_store.get_project(session, name)
    if row is None or row.name == DEFAULT_PROJECT or row.id in _names(session):
        return None  # that project's experiment has another name
    return row


def _check_experiment_name(name: str) -> str:
    if not name or not name.strip():
        raise invalid("experiment name must not be empty")
    if len(name) > EXPERIMENT_NAME_MAX or not name.isprintable():
        raise invalid(
            f"experiment name must be 1 to {EXPERIMENT_NAME_MAX} printable characters "
            f"({len(name)} given)"
        )
    return name


def create_experiment(ctx: ServiceContext, name: str) -> str:
    """A new experiment (and its project); RESOURCE_ALREADY_EXISTS when the name is taken."""
    name = _check_experiment_name(name)
    base = slugify(name, 56) or "experiment"
    with ctx.db.write() as session:
        if _find_by_name(session, name) is not None:
            raise MlflowApiError(
                "RESOURCE_ALREADY_EXISTS", f"Experiment(name={name}) already exists.", 400
            )
        for n in range(1, 10_000):
            candidate = base if n == 1 else f"{base}-{n}"
            project = project_store.insert_project(
                session, candidate, summary=f"MLflow experiment {name!r}"
            )
            if project is not None:
                break
        else:  # pragma: no cover - ten thousand namesakes
            raise invalid(f"no free project name left for experiment {name!r}")
        session.add(MlflowExperimentRow(project_id=project.id, name=name))
        session.flush()
        return _experiment_id(project)


def get_experiment(ctx: ServiceContext, experiment_id: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        return _experiment_json(_load_experiment(session, experiment_id), _names(session))


def get_experiment_by_name(ctx: ServiceContext, name: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = _find_by_name(session, name)
        if row is None:
            raise not_found(f"Could not find experiment with name '{name}'")
        return _experiment_json(row, _names(session))


def _page(page_token: str | None) -> int:
    if not page_token:
        return 0
    if not page_token.isdigit():
        raise invalid(f"invalid page_token {page_token!r}: pass the next_page_token of a reply")
    return int(page_token)


def _max_results(value: int | None, default: int) -> int:
    if value is None:
        return default
    if not 1 <= value <= SEARCH_MAX_RESULTS:
        raise invalid(f"max_results must be between 1 and {SEARCH_MAX_RESULTS}, not {value}")
    return value


def search_experiments(
    ctx: ServiceContext,
    *,
    filter_string: str | None = None,
    view_type: str | None = None,
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    """Every project as an experiment (none is ever deleted), by name filter only."""
    clauses = parse_filter(filter_string, "experiments")
    limit = _max_results(max_results, 1000)
    offset = _page(page_token)
    if (view_type or "ACTIVE_ONLY") == "DELETED_ONLY":
        return {"experiments": []}
    with ctx.db.read() as session:
        names = _names(session)
        experiments = [
            _experiment_json(p, names)
            for p in session.scalars(select(ProjectRow).order_by(ProjectRow.id))
        ]
    for clause in clauses:
        experiments = [e for e in experiments if _name_matches(e["name"], clause.op, clause.value)]
    page = experiments[offset : offset + limit]
    out: dict[str, Any] = {"experiments": page}
    if offset + limit < len(experiments):
        out["next_page_token"] = str(offset + limit)
    return out


def _name_matches(name: str, op: str, value: str | float) -> bool:
    if op in ("LIKE", "ILIKE"):
        return like(str(value), name, ignore_case=op == "ILIKE")
    return (name == value) if op == "=" else (name != value)


# --------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------


def parse_run_id(run_id: str | None) -> int:
    if not run_id:
        raise invalid("run_id is required")
    if not run_id.isdigit() or len(run_id) > 18:
        raise not_found(f"Run with id={run_id} not found")
    return int(run_id)


def _tags(session: Session, run_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {i: {} for i in run_ids}
    if run_ids:
        for run_id, key, value in session.connection().execute(
            select(RunTagRow.run_id, RunTagRow.key, RunTagRow.value).where(
                RunTagRow.run_id.in_(run_ids)
            )
        ):
            out[run_id][key] = value
    return out


def _run_name(row: RunRow, tags: Mapping[str, str]) -> str:
    return tags.get(RUN_NAME_TAG) or f"{row.task.name}-{row.build_id}"


def _run_info(row: RunRow, tags: Mapping[str, str]) -> dict[str, Any]:
    eid = _experiment_id(row.project)
    info: dict[str, Any] = {
        "run_id": str(row.id),
        "run_uuid": str(row.id),
        "experiment_id": eid,
        "run_name": _run_name(row, tags),
        "user_id": row.submitted_by,
        "status": _STATUS_TO_MLFLOW[RunStatus(row.status)],
        "start_time": _ms(row.started_at or row.created_at),
        "artifact_uri": f"mlflow-artifacts:/{eid}/{row.id}/artifacts",
        "lifecycle_stage": "deleted" if row.archived else "active",
    }
    if row.finished_at is not None:
        info["end_time"] = _ms(row.finished_at)
    return info


def _runs_json(session: Session, rows: Sequence[RunRow]) -> list[dict[str, Any]]:
    ids = [r.id for r in rows]
    tags = _tags(session, ids)
    # Plain columns, not ORM objects: a search page holds up to 1,000 runs.
    connection = session.connection()
    series = MetricSeriesRow.__table__.c
    metrics: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for run_id, key, value, when, step in connection.execute(
        select(series.run_id, series.key, series.last_value, series.last_time, series.last_step)
        .where(series.run_id.in_(ids))
        .order_by(series.run_id, series.key)
    ):
        metrics[run_id].append(
            {"key": key, "value": value, "timestamp": int(when * 1000), "step": step}
        )
    params: dict[int, list[dict[str, str]]] = {i: [] for i in ids}
    for run_id, key, value in connection.execute(
        select(RunParamRow.run_id, RunParamRow.key, RunParamRow.value)
        .where(RunParamRow.run_id.in_(ids))
        .order_by(RunParamRow.run_id, RunParamRow.key)
    ):
        params[run_id].append({"key": key, "value": value})
    return [
        {
            "info": _run_info(r, tags[r.id]),
            "data": {
                "metrics": metrics[r.id],
                "params": params[r.id],
                "tags": [{"key": k, "value": v} for k, v in sorted(tags[r.id].items())],
            },
            "inputs": {},
        }
        for r in rows
    ]


def _load_run(session: Session, run_id: int, *, lock: bool = False) -> RunRow:
    try:
        return run_service.load_run(session, run_id, lock=lock)
    except NotFoundError:
        raise not_found(f"Run with id={run_id} not found") from None


def get_run(ctx: ServiceContext, run_id: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        return _runs_json(session, [_load_run(session, parse_run_id(run_id))])[0]


def _check_tag(key: str, value: str) -> tuple[str, str]:
    check_key(key, "tag")
    if len(value) > TAG_VALUE_MAX:
        raise invalid(f"tag {key!r}: value of {len(value)} characters, at most {TAG_VALUE_MAX}")
    return key, value


def _set_tags(session: Session, run_id: int, tags: Mapping[str, str]) -> None:
    existing = {
        r.key: r
        for r in session.scalars(
            select(RunTagRow).where(RunTagRow.run_id == run_id, RunTagRow.key.in_(list(tags)))
        )
    }
    for key, value in tags.items():
        if key in existing:
            existing[key].value = value
        else:
            session.add(RunTagRow(run_id=run_id, key=key, value=value))
    session.flush()


def create_run(
    ctx: ServiceContext,
    *,
    experiment_id: str | None,
    user_id: str,
    run_name: str | None,
    tags: Mapping[str, str],
) -> dict[str, Any]:
    """A new external run (``running``) in the experiment's project."""
    tags = dict(_check_tag(k, v) for k, v in tags.items())
    with ctx.db.read() as session:
        project = _load_experiment(session, experiment_id or DEFAULT_EXPERIMENT_ID).name
    source = tags.get(SOURCE_NAME_TAG, "")
    task = slugify(PurePosixPath(source.replace("\\", "/")).stem, 56) or "mlflow"
    user = user_id or tags.get(USER_TAG, "")
    try:
        run = run_service.create_external_run(ctx, project, task, submitted_by=user)
    except ConflictError:  # a launched task has that name: keep logged runs apart
        task = f"{task}-mlflow" if task != "mlflow" else "mlflow-logged"
        run = run_service.create_external_run(ctx, project, task, submitted_by=user)
    name = run_name or tags.get(RUN_NAME_TAG) or f"{task}-{run.build_id}"
    tags[RUN_NAME_TAG] = name
    with ctx.db.write() as session:
        _set_tags(session, run.id, tags)
        return _runs_json(session, [_load_run(session, run.id)])[0]


def update_run(
    ctx: ServiceContext, run_id: str, *, status: str | None, run_name: str | None
) -> dict[str, Any]:
    """Rename the run and/or end it (FINISHED, FAILED, KILLED); its ``run_info``."""
    rid = parse_run_id(run_id)
    if run_name:
        with ctx.db.write() as session:
            _load_run(session, rid)
            _set_tags(session, rid, dict([_check_tag(RUN_NAME_TAG, run_name)]))
    if status and status not in ("RUNNING", "SCHEDULED"):
        end = _MLFLOW_TO_END.get(status)
        if end is None:
            raise invalid(
                f"run status {status!r} is not one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED"
            )
        with ctx.db.read() as session:
            _load_run(session, rid)
        run_service.finish_external_run(ctx, rid, end, f"ended by MLflow as {status}")
    with ctx.db.read() as session:
        row = _load_run(session, rid)
        return _run_info(row, _tags(session, [rid])[rid])


def delete_run(ctx: ServiceContext, run_id: str) -> None:
    """MLflow's soft delete: archive (restorable). A run still going is refused."""
    rid = parse_run_id(run_id)
    with ctx.db.read() as session:
        row = _load_run(session, rid)
        if RunStatus(row.status) in ACTIVE_STATUSES:
            raise MlflowApiError(
                "INVALID_STATE",
                f"run {rid} is {_STATUS_TO_MLFLOW[RunStatus(row.status)]}: end it first "
                "(mlflow.end_run() or MlflowClient().set_terminated(run_id)), then delete it",
                400,
            )
    run_service.archive_run(ctx, rid)


def restore_run(ctx: ServiceContext, run_id: str) -> None:
    rid = parse_run_id(run_id)
    with ctx.db.read() as session:
        _load_run(session, rid)
    run_service.restore_run(ctx, rid)


def delete_tag(ctx: ServiceContext, run_id: str, key: str) -> None:
    rid = parse_run_id(run_id)
    with ctx.db.write() as session:
        _load_run(session, rid)
        row = session.get(RunTagRow, (rid, key))
        if row is None:
            raise not_found(f"No tag with name: {key} in run with id {rid}")
        session.delete(row)


def log_batch(
    ctx: ServiceContext,
    run_id: str,
    *,
    metrics: Sequence[MetricIn] = (),
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Params, tags and metrics in ONE transaction: all of them or none (a changed param,
    a bad value or a finished run refuses the whole call)."""
    rid = parse_run_id(run_id)
    texts = {check_key(k, "param"): param_text(k, v) for k, v in (params or {}).items()}
    checked = dict(_check_tag(k, v) for k, v in (tags or {}).items())
    now = clock.time()
    by_key = tracking.metric_columns(
        [
            (m.key, m.value, m.step, m.timestamp_ms / 1000 if m.timestamp_ms is not None else now)
            for m in metrics
        ]
    )
    with ctx.db.write() as session:
        row = _load_run(session, rid)
        if texts:
            try:
                tracking.write_params(session, row, texts)
            except ConflictError as exc:
                if "logged" in exc.fields:  # a changed value, not a finished run
                    raise invalid(exc.message) from None
                raise
        if checked:
            _set_tags(session, rid, checked)
        if by_key:
            tracking.write_points(session, row, by_key)


def get_metric_history(ctx: ServiceContext, run_id: str, key: str) -> list[dict[str, Any]]:
    """Every point of the metric by step (none for a key the run never logged)."""
    rid = parse_run_id(run_id)
    if not key:
        raise invalid("metric_key is required")
    with ctx.db.read() as session:
        _load_run(session, rid)
        if metric_store.get_series(session, rid, key) is None:
            return []
    series = tracking.get_history(ctx, rid, key)
    return [
        {"key": key, "value": value, "timestamp": int(t * 1000), "step": step}
        for step, t, value in series.points
    ]


def _views(
    session: Session,
    project_ids: Sequence[int],
    view: str,
    wanted: Sequence[Clause | OrderKey],
) -> list[RunView]:
    """What filters and orderings read of every run of the projects, from plain columns (no
    ORM objects, no JSON built; only the metrics, params and tags that ``wanted`` names): a
    search over 2,000 runs builds the full JSON of one page only."""
    named = {kind: {w.key for w in wanted if w.kind == kind} for kind in ("metric", "param")}
    named["tag"] = {w.key for w in wanted if w.kind == "tag"} | {RUN_NAME_TAG}
    stmt = (
        select(
            RunRow.id,
            RunRow.status,
            RunRow.submitted_by,
            RunRow.created_at,
            RunRow.started_at,
            RunRow.finished_at,
            RunRow.build_id,
            TaskRow.name,
        )
        .join(TaskRow, RunRow.task_id == TaskRow.id)
        .where(RunRow.project_id.in_(project_ids))
        .order_by(RunRow.id)
    )
    if view != "ALL":
        stmt = stmt.where(RunRow.archived.is_(view == "DELETED_ONLY"))
    connection = session.connection()
    runs = connection.execute(stmt).all()
    ids = select(RunRow.id).where(RunRow.project_id.in_(project_ids))
    metrics: dict[int, dict[str, float]] = {}
    series = MetricSeriesRow.__table__.c
    if named["metric"]:
        for run_id, key, value in connection.execute(
            select(series.run_id, series.key, series.last_value).where(
                series.run_id.in_(ids), series.key.in_(named["metric"])
            )
        ):
            metrics.setdefault(run_id, {})[key] = value
    params: dict[int, dict[str, str]] = {}
    if named["param"]:
        for run_id, key, value in connection.execute(
            select(RunParamRow.run_id, RunParamRow.key, RunParamRow.value).where(
                RunParamRow.run_id.in_(ids), RunParamRow.key.in_(named["param"])
            )
        ):
            params.setdefault(run_id, {})[key] = value
    tags: dict[int, dict[str, str]] = {}
    for run_id, key, value in connection.execute(
        select(RunTagRow.run_id, RunTagRow.key, RunTagRow.value).where(
            RunTagRow.run_id.in_(ids), RunTagRow.key.in_(named["tag"])
        )
    ):
        tags.setdefault(run_id, {})[key] = value
    out = []
    for run_id, status, user, created, started, finished, build_id, task in runs:
        run_tags = tags.get(run_id, {})
        start = _ms(started or created)
        out.append(
            RunView(
                run_id=run_id,
                status=_STATUS_TO_MLFLOW[RunStatus(status)],
                run_name=run_tags.get(RUN_NAME_TAG) or f"{task}-{build_id}",
                user_id=user,
                start_time=start if start is not None else 0,
                end_time=_ms(finished),
                metrics=metrics.get(run_id, {}),
                params=params.get(run_id, {}),
                tags=run_tags,
            )
        )
    return out


def search_runs(
    ctx: ServiceContext,
    *,
    experiment_ids: Sequence[str],
    filter_string: str | None = None,
    run_view_type: str | None = None,
    max_results: int | None = None,
    order_by: Sequence[str] = (),
    page_token: str | None = None,
) -> dict[str, Any]:
    """The runs of the experiments that match the filter, ordered, one page of them."""
    clauses = parse_filter(filter_string)
    keys = parse_order_by(list(order_by))
    limit = _max_results(max_results, 1000)
    offset = _page(page_token)
    view = run_view_type or "ACTIVE_ONLY"
    if view not in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL"):
        raise invalid(f"run_view_type {view!r} is not ACTIVE_ONLY, DELETED_ONLY or ALL")
    with ctx.db.read() as session:
        project_ids = [_load_experiment(session, e).id for e in experiment_ids]
        if not project_ids:
            return {"runs": []}
        ordered = sort_runs(
            [
                v
                for v in _views(session, project_ids, view, [*clauses, *keys])
                if matches(v, clauses)
            ],
            keys,
        )
        wanted = [v.run_id for v in ordered[offset : offset + limit]]
        # Without their replicas and placements: the JSON needs neither.
        lean = select(RunRow).options(lazyload(RunRow.replicas), lazyload(RunRow.placements))
        rows = {r.id: r for r in session.scalars(lean.where(RunRow.id.in_(wanted)))}
        page = _runs_json(session, [rows[i] for i in wanted])
    out: dict[str, Any] = {"runs": page}
    if offset + limit < len(ordered):
        out["next_page_token"] = str(offset + limit)
    return out


def to_mlflow_error(exc: Exception) -> MlflowApiError | None:
    """The MLflow error for a trainyard error raised by the services (None: not one)."""
    if isinstance(exc, MlflowApiError):
        return exc
    if isinstance(exc, NotFoundError):
        return not_found(exc.message)
    if isinstance(exc, InvalidInputError):
        return invalid(exc.message)
    if isinstance(exc, ConflictError):
        return MlflowApiError("INVALID_STATE", exc.message, 400)
    return None
