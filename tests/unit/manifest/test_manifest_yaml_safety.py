"""Hostile or broken YAML: refused with a position, quickly, and without running anything."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from trainyard.core.errors import ManifestError
from trainyard.manifest import load_manifest
from trainyard.manifest.yamlnodes import MAX_MANIFEST_BYTES, MAX_NODES

VALID = "name: train\nresources:\n  - name: worker\n    command: python train.py\n"


def _message(text: str | bytes) -> str:
    with pytest.raises(ManifestError) as info:
        load_manifest(text)
    return info.value.message


def test_python_object_tag_is_refused_and_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = (
        "name: train\n"
        "resources:\n"
        "  - name: worker\n"
        f"    command: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    assert _message(text) == (
        "task.yaml:4:14: the tag !!python/object/apply:os.system is not allowed: manifests are "
        "data and are never turned into objects; remove the tag"
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!python/name:os.system x", "!!python/name:os.system"),
        ("!!python/object:collections.OrderedDict {}", "!!python/object:collections.OrderedDict"),
    ],
)
def test_every_python_tag_is_refused(value: str, shown: str) -> None:
    message = _message(f"name: train\ndescription: {value}\nresources: []\n")
    assert message.startswith(f"task.yaml:2:14: the tag {shown} is not allowed")


@pytest.mark.parametrize("tag", ["!Ref", "!!binary", "!!set"])
def test_custom_and_exotic_tags_are_refused(tag: str) -> None:
    message = _message(f"name: train\ndescription: {tag} x\nresources: []\n")
    assert message.splitlines()[0] == (
        f"task.yaml:2:14: the tag {tag} is not supported in a manifest; remove it"
    )


def test_duplicate_keys_are_refused() -> None:
    text = VALID + "name: other\n"
    assert _message(text) == (
        "task.yaml:5:1: duplicate key 'name' (first at line 1); keep only one"
    )


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    started = time.monotonic()
    message = _message("\n".join(lines) + "\n")
    assert time.monotonic() - started < 2
    assert message == (
        f"task.yaml:1:1: the document holds more than {MAX_NODES} values once aliases are "
        "expanded; a manifest describes a task, it does not carry data"
    )


def test_recursive_alias_is_refused() -> None:
    assert _message("name: &a [*a]\nresources: []\n") == (
        "task.yaml:1:7: an alias refers to a node that contains it (recursive anchor)"
    )


def test_aliases_and_merge_keys_work() -> None:
    text = """
name: train
resources:
  - &base
    name: worker
    command: python train.py
    replicas: 2
    env: {MODE: train}
  - <<: *base
    name: eval
    env: {MODE: eval}
"""
    spec = load_manifest(text)
    assert [(r.name, r.replicas, r.command, r.env) for r in spec.resources] == [
        ("worker", 2, "python train.py", {"MODE": "train"}),
        ("eval", 2, "python train.py", {"MODE": "eval"}),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 100 + "]" * 100,
        "a: " + "[" * 500_000,
        "- " * 100_000 + "x",  # libyaml's composer would overflow the C stack on this
        "".join(" " * i + f"k{i}:\n" for i in range(200)),
    ],
    ids=["flow", "unclosed-flow", "compact-sequences", "indented-mappings"],
)
def test_deep_nesting_is_refused_quickly(text: str) -> None:
    started = time.monotonic()
    message = _message(text)
    assert time.monotonic() - started < 2
    assert message.endswith("the document is nested more than 64 levels deep")


def test_a_big_flat_document_is_refused_by_size() -> None:
    text = "name: t\nresources: []\nx: [" + "x, " * 150_000 + "]\n"
    started = time.monotonic()
    assert _message(text) == (
        f"task.yaml:1:1: the document holds more than {MAX_NODES} values once aliases are "
        "expanded; a manifest describes a task, it does not carry data"
    )
    # libyaml reads it in a fraction of a second; pure-Python PyYAML needs several.
    assert time.monotonic() - started < (5 if yaml.__with_libyaml__ else 30)


def test_non_utf8_file_points_at_the_bad_byte() -> None:
    data = b"name: train\nresources:\n  - name: worker\n    command: echo caf\xe9\n"
    assert _message(data) == (
        "task.yaml:4:22: the file is not valid UTF-8 (byte 0xe9); save it as UTF-8"
    )


def test_utf8_bytes_with_bom_and_non_ascii_text_load() -> None:
    data = ("\ufeff" + VALID + "description: café ☕\n").encode()
    assert load_manifest(data).description == "café ☕"


def test_control_characters_are_refused() -> None:
    assert _message("name: train\x07\nresources: []\n") == (
        "task.yaml:1:12: invalid YAML: the control character U+0007 is not allowed"
    )


def test_invalid_yaml_reports_pyyaml_mark() -> None:
    text = "name: train\nresources:\n  - name: worker\n     command: x\n"
    assert _message(text) == ("task.yaml:4:13: invalid YAML: mapping values are not allowed here")


def test_unclosed_flow_list_reports_context() -> None:
    assert _message("name: train\nresources: [\n") == (
        "task.yaml:3:1: invalid YAML while parsing a flow node: expected the node content, "
        "but found '<stream end>'"
    )


def test_several_documents_are_refused() -> None:
    assert _message(VALID + "---\n" + VALID) == (
        "task.yaml:5:1: the file holds more than one YAML document (`---`); a manifest is one"
    )


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing but a comment\n", "---\n"])
def test_empty_document(text: str) -> None:
    assert _message(text) == (
        "task.yaml:1:1: the manifest is empty; a task needs at least `name` and `resources`"
    )


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("- name: train\n", "a list"),
        ("just a string\n", "a string ('just a string')"),
        ("42", "a number (42)"),
    ],
)
def test_top_level_must_be_a_mapping(text: str, got: str) -> None:
    assert _message(text) == (
        f"task.yaml:1:1: expected a mapping (name: …, resources: …) at the top, got {got}"
    )


def test_oversized_manifest_is_refused_before_parsing() -> None:
    data = b"# " + b"x" * MAX_MANIFEST_BYTES + b"\n"
    assert _message(data).startswith(
        f"task.yaml:1:1: the manifest is {len(data)} bytes, more than the {MAX_MANIFEST_BYTES}"
    )


def test_non_string_keys_are_refused() -> None:
    text = "name: train\n? [a, b]\n: 1\nresources: []\n"
    assert _message(text).splitlines()[0] == (
        "task.yaml:2:3: a key must be a plain string, not a list or a mapping"
    )


def test_yaml_booleans_as_keys_stay_text() -> None:
    # YAML 1.1 reads `on`/`yes` as booleans; as env names they must stay the text written.
    spec = load_manifest(VALID + "env:\n  on: yes\n  Y: 1.50\n")
    assert spec.env == {"on": "yes", "Y": "1.50"}
