"""docs/manifest.md stays true: its manifests load and its error example is the real output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainyard.core.errors import ManifestError
from trainyard.core.models import ManifestFormat
from trainyard.manifest import load_manifest

DOC = Path(__file__).parents[3] / "docs" / "manifest.md"


def _blocks() -> list[tuple[str, str]]:
    return re.findall(r"```(\w*)\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def _whole_manifests() -> list[str]:
    errors_section = DOC.read_text(encoding="utf-8").split("## Errors", 1)[1]
    return [
        body
        for lang, body in _blocks()
        if lang == "yaml"
        and body.startswith(("apiVersion:", "name:", "kind:"))
        and body not in errors_section
    ]


def test_the_doc_has_its_three_full_examples() -> None:
    formats = {load_manifest(text).format for text in _whole_manifests()}
    assert formats == {ManifestFormat.NATIVE, ManifestFormat.KIBERNETIKA, ManifestFormat.AICHOR}


@pytest.mark.parametrize("text", _whole_manifests())
def test_every_example_manifest_in_the_doc_loads(text: str) -> None:
    assert load_manifest(text).resources


def test_the_error_example_is_what_the_loader_says() -> None:
    section = DOC.read_text(encoding="utf-8").split("## Errors", 1)[1]
    (manifest, expected), *_ = re.findall(r"```yaml\n(.*?)```.*?```\n(.*?)```", section, re.DOTALL)
    with pytest.raises(ManifestError) as info:
        load_manifest(manifest)
    assert info.value.message == expected.strip()
