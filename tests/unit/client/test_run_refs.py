"""Run references: ``42`` or ``project/task#N``, anything else refused with the accepted forms."""

from __future__ import annotations

import pytest

from trainyard.client import RunRef, parse_run_ref
from trainyard.core.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        (" 7 ", 7),
        ("default/tf-ps-worker#3", RunRef("default", "tf-ps-worker", 3)),
        ("a/b#1", RunRef("a", "b", 1)),
    ],
)
def test_accepted_forms(text: str, expected: int | RunRef) -> None:
    assert parse_run_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "-1",
        "default/task",
        "default/task#",
        "default/task#0",
        "task#3",
        "Default/task#3",
        "default/ta_sk#3",
        "../etc#1",
        "default/task#3; rm -rf /",
        "default/task#3#4",
        "a/b/c#1",
        "4" * 30,
    ],
)
def test_malformed_refs_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_run_ref(text)
    assert f"'{text}' is not a run reference" in caught.value.message
    assert "42" in caught.value.message and "project/task#" in caught.value.message


def test_ref_prints_as_typed() -> None:
    assert str(RunRef("vision", "train", 12)) == "vision/train#12"
