"""A project's leaderboard (DKube's): the project owner picks the evaluation metric and
whether lower or higher is better; the board shows each user's best run.

A run's score is the **last** value of the metric (the value at its highest step), the
number that describes the model the run ended with; the best step along the way may never
have been saved and rewards a lucky spike of a noisy validation metric.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from trainyard.core.errors import InvalidInputError
from trainyard.core.metrics import check_key
from trainyard.core.status import RunStatus

__all__ = [
    "Leaderboard",
    "LeaderboardEntry",
    "LeaderboardGoal",
    "LeaderboardSetting",
    "check_leaderboard_metric",
]


class LeaderboardGoal(StrEnum):
    """Which way is better: ``min`` (lower, e.g. a loss) or ``max`` (higher, e.g. accuracy)."""

    MIN = "min"
    MAX = "max"

    @property
    def words(self) -> str:
        return "lower is better" if self is LeaderboardGoal.MIN else "higher is better"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeaderboardSetting(_Model):
    """The evaluation criteria of a project's leaderboard."""

    metric: str
    goal: LeaderboardGoal


class LeaderboardEntry(_Model):
    """One user's best run on the board."""

    rank: int  # 1-based; equal values share a rank (1, 2, 2, 4)
    user: str  # the run's submitted_by ("" when unknown)
    run_id: int
    ref: str  # project/task#BUILD_ID
    task: str
    build_id: int
    status: RunStatus
    value: float  # the metric's last value
    step: int  # the step of that value
    runs: int  # how many of this user's runs logged the metric
    params: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    finished_at: datetime | None = None


class Leaderboard(_Model):
    """A project's board: empty ``entries`` when no run has logged the metric; ``metric``
    and ``goal`` are None until the owner sets them."""

    project: str
    metric: str | None = None
    goal: LeaderboardGoal | None = None
    entries: list[LeaderboardEntry] = Field(default_factory=list)


def check_leaderboard_metric(metric: str) -> str:
    """``metric`` if it can rank runs, else InvalidInputError naming the fix: a valid metric
    key that is not a resource metric (``system/…``)."""
    check_key(metric, "metric")
    if metric.startswith("system/"):
        raise InvalidInputError(
            f"metric {metric!r} is a resource metric sampled by trainyard; rank runs by a "
            "metric your training code logs (e.g. 'val/acc' or 'loss')",
            fields={"metric": metric},
        )
    return metric
