"""Comparing runs (DKube's "Compare Models"): 2 to 10 runs of one project, with their logged
params and their metric summaries, for the compare page (which then reads each chart's
history from the tracking API)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from trainyard.core.errors import InvalidInputError
from trainyard.core.metrics import MetricSummary
from trainyard.core.models import Project, Run
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.projects import load_project
from trainyard.server.store import metrics as metric_store
from trainyard.server.store.projects import to_project
from trainyard.server.store.runs import to_run
from trainyard.server.store.tables import RunRow

__all__ = ["MAX_COMPARE", "MIN_COMPARE", "Comparison", "compare_runs"]

MIN_COMPARE = 2
MAX_COMPARE = 10


@dataclass
class Comparison:
    """The runs found, in the order asked, each with its params and metric summaries (by
    key); ``missing``: ids asked for that are not runs of this project (unknown, or of
    another project: the two are not told apart)."""

    project: Project
    runs: list[Run]
    params: dict[int, dict[str, str]] = field(default_factory=dict)
    metrics: dict[int, dict[str, MetricSummary]] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)


def compare_runs(ctx: ServiceContext, project: str, run_ids: Sequence[int]) -> Comparison:
    """Load the runs ``run_ids`` (duplicates dropped) of ``project`` to compare them.
    InvalidInputError for more than :data:`MAX_COMPARE` ids; NotFoundError for the
    project. Fewer than two runs found is not an error here: the page explains it."""
    ids = list(dict.fromkeys(run_ids))
    if len(ids) > MAX_COMPARE:
        raise InvalidInputError(
            f"{len(ids)} runs to compare; pick {MIN_COMPARE} to {MAX_COMPARE} runs",
            fields={"runs": len(ids), "limit": MAX_COMPARE},
        )
    with ctx.db.read() as session:
        project_row = load_project(session, project)
        rows = session.scalars(
            select(RunRow).where(RunRow.id.in_(ids), RunRow.project_id == project_row.id)
        )
        found = {r.id: to_run(r) for r in rows}
        params: dict[int, dict[str, str]] = {}
        for p in metric_store.list_params(session, found):
            params.setdefault(p.run_id, {})[p.key] = p.value
        metrics: dict[int, dict[str, MetricSummary]] = {}
        for s in metric_store.list_series(session, found):
            if not s.count:
                continue
            metrics.setdefault(s.run_id, {})[s.key] = MetricSummary(
                key=s.key,
                count=s.count,
                last_value=s.last_value,
                last_step=s.last_step,
                last_time=s.last_time,
                min_value=s.min_value,
                max_value=s.max_value,
                first_time=s.first_time,
            )
        return Comparison(
            project=to_project(project_row),
            runs=[found[i] for i in ids if i in found],
            params=params,
            metrics=metrics,
            missing=[i for i in ids if i not in found],
        )
