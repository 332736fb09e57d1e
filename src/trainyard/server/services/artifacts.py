"""Run artifacts: files a run logs (``trainyard.log_artifact``) into its output directory,
the same ``$TRAINYARD_OUTPUT_DIR`` its replicas write to, so everything a run produced is in
one place. Storage rules (atomic writes, safe paths, size limit) are in
:mod:`trainyard.storage.artifacts`.
"""

from __future__ import annotations

from pathlib import Path

from trainyard.core.errors import ConflictError
from trainyard.core.status import TERMINAL_STATUSES, RunStatus
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.launches import run_dir
from trainyard.server.services.runs import load_run
from trainyard.storage.artifacts import ArtifactEntry, ArtifactStore, ArtifactUpload

__all__ = ["artifact_file", "list_artifacts", "mlflow_store", "start_upload"]


def _store(ctx: ServiceContext, run_id: int) -> ArtifactStore:
    return ArtifactStore(run_dir(ctx, run_id) / "output", f"run {run_id}'s artifacts")


def mlflow_store(ctx: ServiceContext) -> ArtifactStore:
    """The store behind MLflow's artifact proxy (``mlflow-artifacts:/`` URIs)."""
    root = ctx.settings.storage_dir / "mlflow-artifacts"
    root.mkdir(parents=True, exist_ok=True)
    return ArtifactStore(root, "the MLflow artifact store")


def start_upload(
    ctx: ServiceContext, run_id: int, path: str, content_length: int | None
) -> ArtifactUpload:
    """Open an upload of ``path`` for a run that is still going (ConflictError once it has
    finished: what a finished run shows is final; NotFoundError for an unknown run)."""
    with ctx.db.read() as session:
        row = load_run(session, run_id, light=True)
        if RunStatus(row.status) in TERMINAL_STATUSES:
            ref = f"{row.project.name}/{row.task.name}#{row.build_id}"
            raise ConflictError(
                f"run {run_id} ({ref}) is {row.status}: it accepts no more artifacts; log "
                "them before the run ends (trainyard.finish() comes last)",
                fields={"run_id": run_id, "status": row.status},
            )
    return _store(ctx, run_id).begin(path, ctx.settings.runs.artifact_max_bytes, content_length)


def list_artifacts(
    ctx: ServiceContext, run_id: int, path: str = "", *, recursive: bool = False
) -> list[ArtifactEntry]:
    with ctx.db.read() as session:
        load_run(session, run_id, light=True)
    return _store(ctx, run_id).list(path, recursive=recursive)


def artifact_file(ctx: ServiceContext, run_id: int, path: str) -> Path:
    with ctx.db.read() as session:
        load_run(session, run_id, light=True)
    return _store(ctx, run_id).file(path)
