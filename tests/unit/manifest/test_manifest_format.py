"""Format detection, the JSON Schema's agreement with the loader, fuzzing, and layering."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainyard.core.errors import ManifestError
from trainyard.core.models import ManifestFormat
from trainyard.manifest import detect_format, dump_manifest_json_schema, load_manifest
from trainyard.manifest.native import TASK_FIELDS
from trainyard.manifest.parameters import PARAMETER_FIELDS
from trainyard.manifest.resources import RESOURCE_FIELDS

KIB = "name: t\nresources:\n  - name: w\n    command: x\n"


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        (KIB, ManifestFormat.KIBERNETIKA),
        ("apiVersion: trainyard/v1\n" + KIB, ManifestFormat.NATIVE),
        (KIB + "timeout: 300\n", ManifestFormat.NATIVE),
        (KIB + "env: {A: b}\n", ManifestFormat.NATIVE),
        (KIB + "parameters: []\n", ManifestFormat.NATIVE),
        (KIB + "description: d\n", ManifestFormat.NATIVE),
        (KIB + "    daemon: true\n", ManifestFormat.NATIVE),
        (KIB + "    backoffLimit: 1\n", ManifestFormat.NATIVE),
        ("kind: AIchorManifest\n", ManifestFormat.AICHOR),
        ("kind: Other\n" + KIB, ManifestFormat.KIBERNETIKA),
    ],
)
def test_detect_format(text: str, fmt: ManifestFormat) -> None:
    assert detect_format(text) is fmt
    assert detect_format(text.encode()) is fmt


def test_loaded_spec_records_the_detected_format() -> None:
    assert load_manifest(KIB).format is ManifestFormat.KIBERNETIKA
    assert load_manifest(KIB + "timeout: 5m\n").format is ManifestFormat.NATIVE


def test_detect_format_refuses_what_is_not_a_mapping() -> None:
    with pytest.raises(ManifestError) as info:
        detect_format("- a\n", "x.yaml")
    assert str(info.value) == (
        "x.yaml:1:1: expected a mapping (name: …, resources: …) at the top, got a list"
    )


def test_json_schema_lists_exactly_the_fields_the_loader_accepts() -> None:
    schema = dump_manifest_json_schema()
    json.dumps(schema)  # plain JSON all the way down
    assert set(schema["properties"]) == set(TASK_FIELDS)
    resource = schema["properties"]["resources"]["items"]
    assert set(resource["properties"]) == set(RESOURCE_FIELDS)
    parameter = schema["properties"]["parameters"]["items"]
    assert set(parameter["properties"]) == set(PARAMETER_FIELDS)
    assert schema["required"] == ["name", "resources"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_either_loads_or_raises_manifest_error(text: str) -> None:
    try:
        load_manifest(text)
    except ManifestError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.line >= 1 and issue.column >= 1


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {
            "name": _values,
            "resources": st.lists(
                st.dictionaries(st.sampled_from(RESOURCE_FIELDS), _values), max_size=3
            ),
        }
    )
)
def test_arbitrary_structures_either_load_or_raise_manifest_error(doc: dict[str, object]) -> None:
    # JSON is YAML: any structure must give a TaskSpec or positioned issues, never a crash.
    try:
        load_manifest(json.dumps(doc))
    except ManifestError as exc:
        assert all(i.line >= 1 for i in exc.issues)


def test_manifest_package_imports_only_core_and_yaml() -> None:
    code = (
        "import sys, trainyard.manifest\n"
        "ours = sorted(m for m in sys.modules if m.startswith('trainyard.'))\n"
        "print('\\n'.join(ours))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out and all(m.startswith(("trainyard.core", "trainyard.manifest")) for m in out), out
    banned = ("fastapi", "sqlalchemy", "httpx", "typer")
    code = "import sys, trainyard.manifest; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert not [m for m in loaded if m.split(".")[0] in banned]


_FIELD_TEMPLATES = [
    "name: t\ntimeout: {v}\nresources: [{{name: w, command: x}}]\n",
    "name: t\nresources: [{{name: w, command: x, replicas: {v}}}]\n",
    "name: t\nresources: [{{name: w, command: x, port: {v}, backoffLimit: {v}}}]\n",
    "name: t\nresources: [{{name: w, command: x, restartPolicy: {v}, workDir: {v}}}]\n",
    "name: t\nresources: [{{name: w, command: x, resources: {{limits: {{cpu: {v}}}}}}}]\n",
    "name: t\nresources: [{{name: w, command: x, resources: {{requests: {{memory: {v}}}}}}}]\n",
    "name: t\nresources: [{{name: w, command: x, resources: {{requests: {{gpu: {v}}}}}}}]\n",
    "name: t\nresources: [{{name: w, command: {v}, env: {{A: {v}}}}}]\n",
    "name: {v}\nresources: [{{name: {v}, command: x}}]\n",
    "name: t\nparameters: [{{name: p, type: int, default: {v}}}]\n"
    "resources: [{{name: w, command: x}}]\n",
    "name: t\nparameters: [{{name: p, type: list, choices: [{v}]}}]\n"
    "resources: [{{name: w, command: x}}]\n",
]
_scalar_text = st.one_of(
    st.text(max_size=12).map(json.dumps),  # any string, quoted
    st.from_regex(r"[-+.0-9a-zA-Z_²١]{1,10}", fullmatch=True),  # plain scalars, numbers, units
)


@settings(max_examples=300)
@given(st.sampled_from(_FIELD_TEMPLATES), _scalar_text)
def test_any_scalar_in_any_field_loads_or_raises_manifest_error(template: str, value: str) -> None:
    try:
        load_manifest(template.format(v=value))
    except ManifestError as exc:
        assert exc.issues and all(i.line >= 1 and i.column >= 1 for i in exc.issues)
