"""Run references as users type them: ``42`` (the run id) or ``project/task#N`` (build N)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from trainyard.core.errors import InvalidInputError

__all__ = ["RunRef", "parse_run_ref"]

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_REF = re.compile(rf"^(?P<project>{_LABEL})/(?P<task>{_LABEL})#(?P<build>[0-9]{{1,18}})$")
_ID = re.compile(r"^[0-9]{1,18}$")

ACCEPTED_FORMS = "a run id (42) or project/task#BUILD (default/train#3)"


@dataclass(frozen=True)
class RunRef:
    """``project/task#build_id``: a run named by its task and its number within the task."""

    project: str
    task: str
    build_id: int

    def __str__(self) -> str:
        return f"{self.project}/{self.task}#{self.build_id}"


def parse_run_ref(text: str) -> int | RunRef:
    """Parse a run reference into a run id or a :class:`RunRef`.

    Raises :class:`InvalidInputError` naming the accepted forms for anything else.
    """
    value = text.strip()
    if _ID.match(value):
        run_id = int(value)
        if run_id > 0:
            return run_id
    match = _REF.match(value)
    if match:
        build_id = int(match["build"])
        if build_id > 0:
            return RunRef(match["project"], match["task"], build_id)
    raise InvalidInputError(
        f"'{text}' is not a run reference: use {ACCEPTED_FORMS}",
        fields={"ref": text, "accepted": ["42", "project/task#N"]},
    )
