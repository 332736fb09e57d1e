"""Parameters: declaration, typing of given values, placeholder filling, and its error messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainyard.core.errors import ManifestError, ParameterError
from trainyard.core.models import ParameterSpec, ParameterType, TaskSpec
from trainyard.manifest import load_manifest, parse_param_args, resolve_task

TASK = """
name: train
env:
  RUN_NAME: "{{ .name }}-{{ .steps }}"
parameters:
  - {name: steps, type: int, default: 100}
  - {name: lr, type: float, required: true, description: learning rate}
  - {name: layers, type: list, default: [64, 32]}
  - {name: debug, type: bool, default: false}
  - {name: mode, choices: [fast, slow], default: fast}
  - {name: name, type: string, default: run}
  - {name: tag, required: false}
resources:
  - name: worker
    workDir: "runs/{{ .mode }}"
    command: >-
      python train.py --steps {{ .steps }} --lr {{.lr}} --layers {{ .layers }}
      --debug={{ .debug }} --mode {{ .mode }} --tag '{{ .tag }}'
    env:
      OUT: "{{ .name }}/{{ .extra }}"
"""


@pytest.fixture(scope="module")
def spec() -> TaskSpec:
    return load_manifest(TASK)


def test_declarations_are_typed(spec: TaskSpec) -> None:
    assert spec.parameters == [
        ParameterSpec(name="steps", type=ParameterType.INT, default=100),
        ParameterSpec(
            name="lr", type=ParameterType.FLOAT, required=True, description="learning rate"
        ),
        ParameterSpec(name="layers", type=ParameterType.LIST, default=[64, 32]),
        ParameterSpec(name="debug", type=ParameterType.BOOL, default=False),
        ParameterSpec(name="mode", default="fast", choices=["fast", "slow"]),
        ParameterSpec(name="name", default="run"),
        ParameterSpec(name="tag", required=False),
    ]


def test_resolve_fills_commands_env_and_workdir(spec: TaskSpec) -> None:
    resolved, values = resolve_task(spec, {"lr": "0.1", "extra": "x"})
    worker = resolved.resources[0]
    assert worker.command == (
        "python train.py --steps 100 --lr 0.1 --layers 64 32 --debug=false --mode fast --tag ''"
    )
    assert worker.work_dir == "runs/fast"
    assert worker.env == {"OUT": "run/x"}
    assert resolved.env == {"RUN_NAME": "run-100"}
    assert values == {
        "steps": 100,
        "lr": 0.1,
        "layers": [64, 32],
        "debug": False,
        "mode": "fast",
        "name": "run",
        "extra": "x",
    }
    # The stored task keeps its placeholders: every run resolves afresh.
    assert "{{ .steps }}" in spec.resources[0].command


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"steps": "200"}, 200),
        ({"steps": " -3 "}, -3),
        ({"steps": 7}, 7),
    ],
)
def test_int_values(spec: TaskSpec, given: dict[str, object], expected: int) -> None:
    _, values = resolve_task(spec, {"lr": 1, "extra": "", **given})
    assert values["steps"] == expected


@pytest.mark.parametrize(
    ("given", "expected", "rendered"),
    [("0.1", 0.1, "0.1"), ("1e-4", 0.0001, "0.0001"), (3, 3.0, "3.0"), ("-2.5", -2.5, "-2.5")],
)
def test_float_values(spec: TaskSpec, given: object, expected: float, rendered: str) -> None:
    resolved, values = resolve_task(spec, {"lr": given, "extra": ""})
    assert values["lr"] == expected
    assert f"--lr {rendered} " in resolved.resources[0].command


@pytest.mark.parametrize(
    ("given", "expected"),
    [("true", True), ("False", False), ("yes", True), ("0", False), ("on", True), (True, True)],
)
def test_bool_values(spec: TaskSpec, given: object, expected: bool) -> None:
    resolved, values = resolve_task(spec, {"lr": 1, "extra": "", "debug": given})
    assert values["debug"] is expected
    assert f"--debug={'true' if expected else 'false'} " in resolved.resources[0].command


@pytest.mark.parametrize(
    ("given", "expected", "rendered"),
    [
        ("[1, 2.5, a]", [1, 2.5, "a"], "1 2.5 a"),
        ("a, b,c", ["a", "b", "c"], "a b c"),
        ("single", ["single"], "single"),
        ("", [], ""),
        ([3, 4], [3, 4], "3 4"),
    ],
)
def test_list_values(spec: TaskSpec, given: object, expected: list[object], rendered: str) -> None:
    resolved, values = resolve_task(spec, {"lr": 1, "extra": "", "layers": given})
    assert values["layers"] == expected
    assert f"--layers {rendered} --debug" in resolved.resources[0].command


def _problems(spec: TaskSpec, params: dict[str, object], **kwargs: str) -> list[str]:
    with pytest.raises(ParameterError) as info:
        resolve_task(spec, params, **kwargs)
    assert info.value.code == "invalid_parameter"
    return info.value.message.splitlines()


def test_missing_required_parameter_and_unfilled_placeholder(spec: TaskSpec) -> None:
    assert _problems(spec, {}) == [
        "missing required parameter 'lr' (float); give it with --param lr=0.01",
        "placeholder {{ .extra }} in resources[0].env.OUT has no value; give it with --param "
        "extra=VALUE or declare it under 'parameters' with a default",
    ]


def test_api_callers_get_messages_in_their_words(spec: TaskSpec) -> None:
    assert _problems(spec, {"extra": ""}, source="parameters") == [
        "missing required parameter 'lr' (float); give it with 'lr' in parameters"
    ]


def test_every_ill_typed_value_is_reported(spec: TaskSpec) -> None:
    problems = _problems(
        spec,
        {
            "lr": "fast",
            "steps": "1.5",
            "debug": "maybe",
            "layers": "[1, [2]]",
            "mode": "medium",
            "extra": "",
        },
    )
    assert problems == [
        "parameter 'steps' (int): expected an integer such as 200, got '1.5'; give e.g. "
        "--param steps=200",
        "parameter 'lr' (float): expected a number such as 0.01, got 'fast'; give e.g. "
        "--param lr=0.01",
        "parameter 'layers' (list): list items must be plain values (no nested lists or "
        "mappings); give e.g. --param layers=a,b",
        "parameter 'debug' (bool): expected true or false, got 'maybe'; give e.g. "
        "--param debug=true",
        "parameter 'mode': 'medium' is not one of: fast, slow",
    ]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("nan", "expected a finite number, got 'nan'"),
        ("inf", "expected a finite number, got 'inf'"),
        (True, "expected a number such as 0.01, got true"),
        ([1], "expected a number such as 0.01, got a list"),
    ],
)
def test_float_refuses_non_numbers(spec: TaskSpec, value: object, why: str) -> None:
    assert _problems(spec, {"lr": value, "extra": ""}) == [
        f"parameter 'lr' (float): {why}; give e.g. --param lr=0.01"
    ]


def test_unknown_parameter_suggests_the_close_one(spec: TaskSpec) -> None:
    assert _problems(spec, {"lr": 1, "extra": "", "step": 5}) == [
        "unknown parameter 'step' for task 'train'; did you mean 'steps'?"
    ]


def test_unknown_parameter_for_a_task_without_any() -> None:
    spec = load_manifest("name: t\nresources: [{name: w, command: x}]\n")
    assert _problems(spec, {"steps": "1"}) == [
        "unknown parameter 'steps' for task 't'; it takes no parameters"
    ]


def test_null_means_not_given(spec: TaskSpec) -> None:
    _, values = resolve_task(spec, {"lr": 1, "extra": "", "steps": None})
    assert values["steps"] == 100


def test_optional_parameter_without_default_renders_empty(spec: TaskSpec) -> None:
    resolved, values = resolve_task(spec, {"lr": 1, "extra": ""})
    assert "tag" not in values
    assert resolved.resources[0].command.endswith("--tag ''")


def test_undeclared_placeholder_takes_value_as_text() -> None:
    spec = load_manifest("name: t\nresources: [{name: w, command: 'echo {{ .x }} {{.x}}'}]\n")
    resolved, values = resolve_task(spec, {"x": 5})
    assert resolved.resources[0].command == "echo 5 5"
    assert values == {"x": "5"}


def test_values_are_never_expanded_twice_or_evaluated(spec: TaskSpec) -> None:
    resolved, values = resolve_task(
        spec, {"lr": 1, "extra": "{{ .steps }}", "name": "$(rm -rf /){{.lr}}"}
    )
    assert resolved.resources[0].env == {"OUT": "$(rm -rf /){{.lr}}/{{ .steps }}"}
    assert values["name"] == "$(rm -rf /){{.lr}}"


@given(st.text())
def test_any_string_value_round_trips_verbatim(value: str) -> None:
    spec = load_manifest("name: t\nresources: [{name: w, command: 'pre {{ .v }} post'}]\n")
    resolved, values = resolve_task(spec, {"v": value})
    assert resolved.resources[0].command == f"pre {value} post"
    assert values == {"v": value}


@given(st.text(), st.sampled_from(["string", "strings", "str"]))
def test_any_string_parameter_keeps_its_text(value: str, kind: str) -> None:
    spec = load_manifest(
        f"name: t\nparameters: [{{name: v, type: {kind}}}]\n"
        "resources: [{name: w, command: '[{{ .v }}]'}]\n"
    )
    resolved, values = resolve_task(spec, {"v": value})
    assert resolved.resources[0].command == f"[{value}]"
    assert values == {"v": value}


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_integers_round_trip_from_the_command_line(number: int) -> None:
    spec = load_manifest(
        "name: t\nparameters: [{name: n, type: int}]\nresources: [{name: w, command: '{{.n}}'}]\n"
    )
    resolved, values = resolve_task(spec, parse_param_args([f"n={number}"]))
    assert values == {"n": number}
    assert resolved.resources[0].command == str(number)


def test_kibernetika_form_type_aliases() -> None:
    spec = load_manifest(
        """
name: t
parameters:
  - {name: a, type: int64, default: 1}
  - {name: b, type: uint8, default: 2}
  - {name: c, type: double, default: 1}
  - {name: d, type: strings, default: 1.0.0}
  - {name: e, type: string, default: 1.50}
  - {name: f, type: boolean, default: yes}
resources: [{name: w, command: x}]
"""
    )
    assert [(p.type, p.default) for p in spec.parameters] == [
        (ParameterType.INT, 1),
        (ParameterType.INT, 2),
        (ParameterType.FLOAT, 1.0),
        (ParameterType.STRING, "1.0.0"),
        (ParameterType.STRING, "1.50"),  # the text written, not the float 1.5
        (ParameterType.BOOL, True),
    ]


def test_a_parameter_without_default_is_required_unless_it_says_otherwise() -> None:
    spec = load_manifest(
        "name: t\nparameters: [{name: a}, {name: b, required: false}]\n"
        "resources: [{name: w, command: 'x {{ .a }}{{ .b }}'}]\n"
    )
    assert [p.required for p in spec.parameters] == [True, False]
    assert _problems(spec, {}) == [
        "missing required parameter 'a' (string); give it with --param a=text"
    ]


def test_list_default_must_be_a_list() -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(
            "name: t\nparameters: [{name: a, type: list, default: 1}]\n"
            "resources: [{name: w, command: x}]\n"
        )
    assert str(info.value) == (
        "task.yaml:2:45: parameters[0].default: expected a list such as [1, 2] or a,b, got a "
        "number (1)"
    )


def test_choices_must_match_the_type() -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(
            "name: t\nparameters: [{name: a, type: int, choices: [1, two]}]\n"
            "resources: [{name: w, command: x}]\n"
        )
    assert str(info.value) == (
        "task.yaml:2:48: parameters[0].choices[1]: expected an integer such as 200, got a string"
        " ('two')"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["steps=200", "lr=0.1"], {"steps": "200", "lr": "0.1"}),
        (["expr=a=b"], {"expr": "a=b"}),
        (["empty="], {"empty": ""}),
        (["multi=line\nvalue"], {"multi": "line\nvalue"}),
        ([], {}),
    ],
)
def test_parse_param_args(args: list[str], expected: dict[str, str]) -> None:
    assert parse_param_args(args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["steps"], "--param 'steps' is not NAME=VALUE; write e.g. --param steps=200"),
        (["=5"], "--param '=5' is not NAME=VALUE; write e.g. --param steps=200"),
        (["my-param=1"], "--param 'my-param=1' is not NAME=VALUE; write e.g. --param steps=200"),
        (["a=1", "a=2"], "parameter 'a' is given twice; pass each --param once"),
    ],
)
def test_parse_param_args_refuses_bad_forms(args: list[str], message: str) -> None:
    with pytest.raises(ParameterError) as info:
        parse_param_args(args)
    assert info.value.message == message
