"""trainyard: a self-hosted ML platform.

Training code imports it to track a run::

    import trainyard as ty

    ty.init()  # inside a run: the run, server and token come from the environment
    ty.log_params({"lr": 0.1, "layers": 4})
    ty.log_metric("loss", 0.31, step=10)
    ty.log_metrics({"acc": 0.9, "f1": 0.8}, step=10)
    ty.log_artifact("model.pt")  # into the run's artifacts (its output directory)
    ty.finish()  # also done at interpreter exit

The tracking functions live in :mod:`trainyard.sdk`, imported on first use, so that
``import trainyard`` stays cheap for everything else (the CLI, the server).
"""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING``: every run's supervisor imports this package first
# and starts with the standard library's smallest modules only (typing costs milliseconds).
TYPE_CHECKING = False

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "finish",
    "init",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_params",
]

if TYPE_CHECKING:
    from typing import Any

    from trainyard.sdk import finish, init, log_artifact, log_metric, log_metrics, log_params

_SDK_NAMES = frozenset(
    {"finish", "init", "log_artifact", "log_metric", "log_metrics", "log_params"}
)


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from trainyard import sdk

        value = getattr(sdk, name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value
    raise AttributeError(f"module 'trainyard' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SDK_NAMES})
