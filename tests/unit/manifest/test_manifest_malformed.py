"""Malformed manifests: every problem reported, each as ``file:line:col: path: message``."""

from __future__ import annotations

import textwrap

import pytest

from trainyard.core.errors import ManifestError
from trainyard.manifest import load_manifest


def _errors(text: str, filename: str = "task.yaml") -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(textwrap.dedent(text).lstrip("\n"), filename)
    # The message is the issues, one per line; the fields carry the same, machine-readable.
    issues = info.value.fields["issues"]
    assert [f"{i['filename']}:{i['line']}:{i['column']}" for i in issues] == [
        line.split(": ", 1)[0] for line in info.value.message.splitlines()
    ]
    return info.value.message.splitlines()


CASES: list[tuple[str, str, list[str]]] = [
    (
        "replicas-zero",
        """
        name: train
        resources:
          - name: ps
            command: python ps.py
          - name: worker
            replicas: 0
            command: python worker.py
        """,
        ["task.yaml:6:15: resources[1].replicas: must be ≥ 1"],
    ),
    (
        "replicas-too-many",
        """
        name: train
        resources:
          - {name: worker, replicas: 300, command: x}
        """,
        [
            "task.yaml:3:30: resources[0].replicas: must be ≤ 254 (each replica gets its own "
            "address)"
        ],
    ),
    (
        "replicas-not-a-number",
        """
        name: train
        resources:
          - {name: worker, replicas: two, command: x}
        """,
        ["task.yaml:3:30: resources[0].replicas: expected a whole number, got a string ('two')"],
    ),
    (
        "unknown-field-did-you-mean",
        """
        name: train
        resources:
          - name: worker
            replica: 2
            comand: python train.py
        """,
        [
            "task.yaml:3:5: resources[0]: missing required field 'command'",
            "task.yaml:4:5: resources[0].replica: unknown field; did you mean 'replicas'?",
            "task.yaml:5:5: resources[0].comand: unknown field; did you mean 'command'?",
        ],
    ),
    (
        "unknown-top-level-field",
        """
        name: train
        resorces: []
        """,
        [
            "task.yaml:1:1: missing required field 'resources'",
            "task.yaml:2:1: resorces: unknown field; did you mean 'resources'?",
        ],
    ),
    (
        "bad-names-and-duplicates",
        """
        name: Train_Job
        resources:
          - name: worker
            command: a
          - name: worker
            command: b
          - name: -ps
            command: c
        """,
        [
            "task.yaml:1:7: name: 'Train_Job' is not a valid task name: use at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit",
            "task.yaml:5:11: resources[1].name: duplicate resource name 'worker' (first at line "
            "3); give each resource its own name",
            "task.yaml:7:11: resources[2].name: '-ps' is not a valid resource name: use at most 63"
            " lowercase letters, digits and '-', starting and ending with a letter or digit",
        ],
    ),
    (
        "name-too-long",
        f"""
        name: {"a" * 64}
        resources: [{{name: w, command: x}}]
        """,
        [
            f"task.yaml:1:7: name: '{'a' * 64}' is not a valid task name: use at most 63 "
            "lowercase letters, digits and '-', starting and ending with a letter or digit"
        ],
    ),
    (
        "restart-policy",
        """
        name: train
        resources:
          - {name: a, command: x, restartPolicy: Always}
          - {name: b, command: x, restartPolicy: onfailure}
          - {name: c, command: x, restartPolicy: Sometimes, backoffLimit: -1}
        """,
        [
            "task.yaml:3:42: resources[0].restartPolicy: Always makes no sense for a batch task: "
            "a replica that finished would be started again forever; use Never or OnFailure",
            "task.yaml:4:42: resources[1].restartPolicy: unknown policy 'onfailure'; did you mean"
            " 'OnFailure'?",
            "task.yaml:5:42: resources[2].restartPolicy: unknown policy 'Sometimes'; use Never or"
            " OnFailure",
            "task.yaml:5:67: resources[2].backoffLimit: must be ≥ 0",
        ],
    ),
    (
        "quantities",
        """
        name: train
        resources:
          - name: worker
            command: x
            resources:
              requests:
                cpu: 2
                memory: 16Gi
                gpu: -1
              limits:
                cpu: 1500m
                memory: 8GB
                nvidia.com/gpu: 1
        """,
        [
            "task.yaml:7:14: resources[0].resources.requests.cpu: request 2 is more than the "
            "limit 1500m",
            "task.yaml:9:14: resources[0].resources.requests.gpu: must not be negative",
            "task.yaml:12:17: resources[0].resources.limits.memory: '8GB' is not a quantity "
            "(expected e.g. 100m, 0.5, 2, 64Mi, 8Gi, 1G); did you mean '8G' or '8Gi'?",
            "task.yaml:13:9: resources[0].resources.limits.nvidia.com/gpu: unknown field; write "
            "it as 'gpu'",
        ],
    ),
    (
        "quantity-misplaced-and-zero-limit",
        """
        name: train
        resources:
          - name: worker
            command: x
            resources:
              cpu: 1
              limits: {memory: 0}
        """,
        [
            "task.yaml:6:7: resources[0].resources.cpu: unknown field; put it under 'requests' or"
            " 'limits'",
            "task.yaml:7:24: resources[0].resources.limits.memory: a limit of 0 leaves the replica"
            " nothing; raise or remove it",
        ],
    ),
    (
        "command-shapes",
        """
        name: train
        resources:
          - name: a
            command: ["python", "train.py"]
          - name: b
            command: "   "
          - name: c
            command:
        """,
        [
            "task.yaml:4:14: resources[0].command: expected one shell string, got a list; write "
            "it on one line, e.g. command: python train.py --steps 10",
            "task.yaml:6:14: resources[1].command: must not be empty",
            "task.yaml:8:5: resources[2].command: needs a value",
        ],
    ),
    (
        "templates-that-are-not-placeholders",
        """
        name: train
        resources:
          - name: worker
            command: python t.py --steps {{ steps }} --lr {{ .lr | default 1 }}
            workDir: "{{ $x }}"
        """,
        [
            "task.yaml:4:14: resources[0].command: '{{ steps }}' is not a placeholder: write "
            "{{ .steps }}",
            "task.yaml:4:14: resources[0].command: '{{ .lr | default 1 }}' is not supported: only"
            " {{ .name }} placeholders are filled in, templates are never evaluated",
            "task.yaml:5:14: resources[0].workDir: '{{ $x }}' is not supported: only {{ .name }}"
            " placeholders are filled in, templates are never evaluated",
        ],
    ),
    (
        "workdir-escapes",
        """
        name: train
        resources:
          - {name: a, command: x, workDir: /etc}
          - {name: b, command: x, workDir: src/../../..}
          - {name: c, command: x, workDir: $SRC_DIR/../x}
        """,
        [
            "task.yaml:3:36: resources[0].workDir: '/etc' must be relative to the task's code "
            "directory, not absolute",
            "task.yaml:4:36: resources[1].workDir: 'src/../../..' leads outside the task's code "
            "directory",
            "task.yaml:5:36: resources[2].workDir: '$SRC_DIR/../x' leads outside the task's code "
            "directory",
        ],
    ),
    (
        "env-problems",
        """
        name: train
        env:
          - name: A
            value: 1
          - name: A
            value: 2
          - value: 3
        resources:
          - name: worker
            command: x
            env:
              MY-VAR: x
              LIST: [1, 2]
        """,
        [
            "task.yaml:5:11: env[1].name: duplicate variable 'A'",
            "task.yaml:7:5: env[2]: missing required field 'name'",
            "task.yaml:12:7: resources[0].env.MY-VAR: 'MY-VAR' is not a valid variable name: use "
            "letters, digits and '_', not starting with a digit",
            "task.yaml:13:13: resources[0].env.LIST: expected a string, got a list",
        ],
    ),
    (
        "timeout",
        """
        name: train
        timeout: 5 minutes
        resources: [{name: w, command: x}]
        """,
        [
            "task.yaml:2:10: timeout: '5 minutes' is not a duration: write seconds (300) or 300s,"
            " 5m, 1h, 1h30m"
        ],
    ),
    (
        "timeout-zero",
        """
        name: train
        timeout: 0s
        resources: [{name: w, command: x}]
        """,
        ["task.yaml:2:10: timeout: must be greater than 0 seconds"],
    ),
    (
        "parameters",
        """
        name: train
        parameters:
          - name: steps
            type: int
            default: "many"
          - name: lr
            type: decimal
          - name: steps-2
          - name: mode
            choices: [fast, slow]
            default: medium
          - name: flag
            type: bool
            default: true
            required: true
          - name: mode
            label: Mode
        resources: [{name: w, command: x}]
        """,
        [
            "task.yaml:5:14: parameters[0].default: expected an integer such as 200, got a string"
            " ('many')",
            "task.yaml:7:11: parameters[1].type: unknown type 'decimal'; use int, float, string, "
            "bool or list",
            "task.yaml:8:11: parameters[2].name: 'steps-2' is not a valid parameter name: use "
            "letters, digits and '_', not starting with a digit (it is written {{ .name }} in "
            "commands)",
            "task.yaml:11:14: parameters[3].default: 'medium' is not one of the choices",
            "task.yaml:15:15: parameters[4].required: a required parameter cannot have a default;"
            " remove one of them",
            "task.yaml:17:5: parameters[5].label: unknown field; write the label as 'description'",
        ],
    ),
    (
        "duplicate-parameter",
        """
        name: train
        parameters:
          - {name: steps, type: int, default: 1}
          - {name: steps, type: int, default: 2}
        resources: [{name: w, command: x}]
        """,
        ["task.yaml:4:12: parameters[1].name: duplicate parameter 'steps' (first at line 3)"],
    ),
    (
        "wrong-shapes",
        """
        name: [train]
        resources:
          worker:
            command: x
        """,
        [
            "task.yaml:1:7: name: expected a string, got a list",
            "task.yaml:3:3: resources: expected a list, got a mapping",
        ],
    ),
    (
        "resource-not-a-mapping",
        """
        name: train
        resources:
          - worker
        """,
        ["task.yaml:3:5: resources[0]: expected a mapping, got a string ('worker')"],
    ),
    (
        "empty-resources",
        """
        name: train
        resources: []
        """,
        ["task.yaml:2:12: resources: a task needs at least one resource"],
    ),
    (
        "volumes",
        """
        name: train
        resources:
          - name: worker
            command: x
            volumes:
              - name: data
                mountPath: data
                subPath: ../secrets
              - name: data
                mountPath: /data
                hostPath: {path: /srv}
                nfs: {server: 10.0.0.1, path: /x}
        """,
        [
            "task.yaml:7:20: resources[0].volumes[0].mountPath: 'data' must be an absolute path "
            "without '..'",
            "task.yaml:8:18: resources[0].volumes[0].subPath: '../secrets' must not contain '..'",
            "task.yaml:9:15: resources[0].volumes[1].name: duplicate volume 'data'",
            "task.yaml:12:14: resources[0].volumes[1].nfs: a volume has one source; it already "
            "has 'hostPath'",
        ],
    ),
    (
        "kind-and-apiversion",
        """
        apiVersion: trainyard/v2
        kind: Task
        name: train
        resources: [{name: w, command: x}]
        """,
        [
            "task.yaml:1:13: apiVersion: unsupported apiVersion 'trainyard/v2'; this trainyard "
            "reads trainyard/v1",
            "task.yaml:2:1: kind: only `kind: AIchorManifest` is understood; leave `kind` out of "
            "a trainyard task",
        ],
    ),
    (
        "native-extensions",
        """
        name: train
        resources:
          - {name: ps, command: x, daemon: "yes", port: 70000}
        """,
        [
            "task.yaml:3:36: resources[0].daemon: expected true or false, got a string ('yes')",
            "task.yaml:3:49: resources[0].port: must be ≤ 65535",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_manifest_reports_every_problem_with_position(
    text: str, expected: list[str]
) -> None:
    assert _errors(text) == expected


def test_there_are_at_least_fifteen_malformed_cases() -> None:
    assert len(CASES) >= 15
    assert sum(len(c[2]) for c in CASES) >= 40


def test_filename_appears_in_every_issue() -> None:
    errors = _errors("name: x\nresources: 3\n", filename="jobs/train.yml")
    assert errors == ["jobs/train.yml:2:12: resources: expected a list, got a number (3)"]


def test_issues_carry_structured_fields() -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest("name: t\nresources:\n  - {name: w, replicas: 0, command: x}\n")
    assert info.value.code == "invalid_manifest"
    assert info.value.fields == {
        "issues": [
            {
                "filename": "task.yaml",
                "line": 3,
                "column": 25,
                "path": "resources[0].replicas",
                "message": "must be ≥ 1",
            }
        ]
    }
    issue = info.value.issues[0]
    assert (issue.line, issue.column, issue.path) == (3, 25, "resources[0].replicas")


def test_a_run_has_at_most_254_replicas_in_all() -> None:
    errors = _errors(
        """
        name: big
        resources:
          - {name: a, replicas: 200, command: x}
          - {name: b, replicas: 100, command: x}
        """
    )
    assert errors == [
        "task.yaml:3:3: resources: 300 replicas in all; a run has at most 254 "
        "(each replica gets its own address)"
    ]


def test_nul_characters_are_refused_in_commands_and_env() -> None:
    text = 'name: t\nresources:\n  - name: w\n    command: "echo a\\0b"\n    env: {A: "x\\0"}\n'
    with pytest.raises(ManifestError) as info:
        load_manifest(text)
    assert [str(i) for i in info.value.issues] == [
        "task.yaml:4:14: resources[0].command: must not contain a NUL character (\\0)",
        "task.yaml:5:14: resources[0].env.A: must not contain a NUL character (\\0)",
    ]
