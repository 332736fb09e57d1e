"""The FastAPI application: routers under ``/api/v1`` plus the background services.

``create_app(settings)`` builds the app; its lifespan opens the database, runs migrations,
makes sure the ``default`` project exists, and starts the launcher, the reconciler and the
node sampler (three threads), which it stops on shutdown. Runs are not touched by a
shutdown: they keep going and the next server adopts them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from trainyard import __version__
from trainyard.core.errors import UnsupportedError
from trainyard.core.settings import Settings
from trainyard.executors.base import Executor
from trainyard.server.errors import install_error_handlers
from trainyard.server.routers import (
    artifacts,
    health,
    logs,
    metrics,
    mlflow,
    mlflow_artifacts,
    projects,
    runs,
    scheduling,
    snapshots,
    tasks,
)
from trainyard.server.scheduler.queue import Launcher
from trainyard.server.services.context import ServiceContext
from trainyard.server.services.node_metrics import NodeSampler
from trainyard.server.services.projects import ensure_default_project
from trainyard.server.services.reconciler import Reconciler
from trainyard.server.services.scheduling import register_local_node
from trainyard.server.store import Database
from trainyard.server.store.migrations import upgrade
from trainyard.server.web import pages

__all__ = ["API_PREFIX", "create_app", "create_executor", "server_url"]

API_PREFIX = "/api/v1"
log = logging.getLogger("trainyard.server")


def create_executor(settings: Settings) -> Executor:
    """The backend named by ``settings.runs.executor``."""
    name = settings.runs.executor
    if name == "local":
        from trainyard.executors.local import LocalExecutor

        return LocalExecutor(
            settings.runs_dir,
            python_executable=sys.executable,
            max_line_bytes=settings.runs.log_max_line_bytes,
            log_quota_bytes=settings.runs.log_quota_bytes,
            sample_interval=settings.runs.sample_interval,
            restart_backoff_seconds=settings.runs.restart_backoff_seconds,
            resource_interval=settings.metrics.resource_interval,
        )
    raise UnsupportedError(
        f"executor {name!r} is not available in this version of trainyard: use "
        "TRAINYARD_RUNS__EXECUTOR=local (the default)",
        fields={"executor": name, "available": ["local"]},
    )


def server_url(settings: Settings) -> str:
    """How replicas on this machine reach the server (TRAINYARD_SERVER_URL for them)."""
    host = settings.server.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


def create_app(settings: Settings) -> FastAPI:
    """The trainyard API server for ``settings`` (nothing starts until its lifespan runs)."""
    executor = create_executor(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url, echo=settings.db.echo)
        try:
            upgrade(db)
            ensure_default_project(db)
            node = register_local_node(db, settings)
            ctx = ServiceContext(
                settings=settings,
                db=db,
                executor=executor,
                server_url=server_url(settings),
                node_name=node,
            )
            launcher = Launcher(ctx)
            ctx.wake_launcher = launcher.wake
            reconciler = Reconciler(ctx, interval=settings.server.reconcile_interval)
            ctx.wake_reconciler = reconciler.wake
            node_sampler = NodeSampler(ctx)
            app.state.ctx = ctx
            app.state.node_sampler = node_sampler
            reconciler.start()
            reconciler.wake()  # adopt the runs left active by an earlier server at once
            launcher.start()
            launcher.wake()  # runs queued before this start
            node_sampler.start()
            try:
                yield
            finally:
                node_sampler.stop()
                launcher.stop()
                reconciler.stop()
        finally:
            executor.close()
            db.dispose()

    app = FastAPI(
        title="trainyard",
        version=__version__,
        description="Self-hosted ML platform: tasks, runs, logs.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (health, projects, tasks, runs, logs, snapshots, scheduling, metrics, artifacts):
        app.include_router(module.router, prefix=API_PREFIX)
    # The MLflow-compatible tracking API, under MLflow's own prefixes (docs/mlflow.md).
    for prefix in mlflow.PREFIXES:
        app.include_router(mlflow.router, prefix=prefix)
    for prefix in mlflow_artifacts.PREFIXES:
        app.include_router(mlflow_artifacts.router, prefix=prefix)
    # The web UI: HTML pages at the root, their CSS/JS under /static.
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    return app
