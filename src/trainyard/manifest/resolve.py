"""Filling a task's ``{{ .name }}`` placeholders from run parameters, before anything starts."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

from trainyard.core.errors import ParameterError
from trainyard.core.models import ParameterSpec, ParameterType, TaskSpec
from trainyard.manifest.parameters import ValueProblem, convert_value, render_value
from trainyard.manifest.templates import fill, placeholder_names

__all__ = ["parse_param_args", "resolve_task", "task_placeholders"]

_PARAM_ARG = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)


def parse_param_args(args: Sequence[str]) -> dict[str, str]:
    """``["steps=200", "lr=0.1"]`` -> ``{"steps": "200", "lr": "0.1"}``.

    The value is everything after the first ``=`` (it may be empty or contain ``=``).
    Raises ``ParameterError`` for an argument without ``=``, a bad name, or a name given twice.
    """
    out: dict[str, str] = {}
    for arg in args:
        m = _PARAM_ARG.match(arg)
        if not m:
            raise ParameterError(
                f"--param '{arg}' is not NAME=VALUE; write e.g. --param steps=200",
                fields={"argument": arg},
            )
        name, value = m.groups()
        if name in out:
            raise ParameterError(
                f"parameter '{name}' is given twice; pass each --param once",
                fields={"parameter": name},
            )
        out[name] = value
    return out


def task_placeholders(spec: TaskSpec) -> dict[str, str]:
    """Placeholder name -> where it first appears (``resources[0].command``), in order."""
    found: dict[str, str] = {}

    def scan(text: str, where: str) -> None:
        for name in placeholder_names(text):
            found.setdefault(name, where)

    for key, value in spec.env.items():
        scan(value, f"env.{key}")
    for i, resource in enumerate(spec.resources):
        base = f"resources[{i}]"
        scan(resource.command, f"{base}.command")
        scan(resource.work_dir, f"{base}.workDir")
        for key, value in resource.env.items():
            scan(value, f"{base}.env.{key}")
    return found


def _how(source: str, name: str, example: str) -> str:
    """How to give a value, in the words of where values come from."""
    if source.startswith("-"):
        return f"{source} {name}={example}"
    return f"'{name}' in {source}"


def resolve_task(
    spec: TaskSpec, params: Mapping[str, object], *, source: str = "--param"
) -> tuple[TaskSpec, dict[str, object]]:
    """Fill every ``{{ .name }}`` in commands, env values and workDirs from ``params``.

    Declared parameters take their given value converted to their type (command-line strings
    such as ``"200"`` included), else their default; undeclared placeholders take the given
    value as a string. Values are inserted verbatim, once: nothing is evaluated and a value
    containing ``{{ .x }}`` is not expanded again. Lists are written as space-separated words,
    booleans as ``true``/``false``.

    ``source`` names where values come from, for messages (``--param`` on the command line,
    ``parameters`` in the API). Returns the resolved copy of ``spec`` and the typed values used
    (every declared parameter that has a value, then each undeclared placeholder given).
    Raises ``ParameterError`` listing every missing, unknown, ill-typed or unfilled parameter.
    """
    declared: dict[str, ParameterSpec] = {p.name: p for p in spec.parameters}
    placeholders = task_placeholders(spec)
    problems: list[str] = []
    names: list[str] = []
    values: dict[str, object] = {}

    for name in params:
        if name in declared or name in placeholders:
            continue
        known = sorted(set(declared) | set(placeholders))
        close = difflib.get_close_matches(name, known, n=1)
        hint = (
            f"did you mean '{close[0]}'?"
            if close
            else (f"it takes: {', '.join(known)}" if known else "it takes no parameters")
        )
        problems.append(f"unknown parameter '{name}' for task '{spec.name}'; {hint}")
        names.append(name)

    for p in spec.parameters:
        # None (JSON null) means "not given": the default applies.
        if params.get(p.name) is not None:
            try:
                value = convert_value(p.type, params[p.name])
            except ValueProblem as exc:
                example = _EXAMPLE_VALUE[p.type]
                problems.append(
                    f"parameter '{p.name}' ({p.type.value}): {exc}; "
                    f"give e.g. {_how(source, p.name, example)}"
                )
                names.append(p.name)
                continue
            if p.choices is not None and value not in p.choices:
                allowed = ", ".join(render_value(c) for c in p.choices)
                problems.append(
                    f"parameter '{p.name}': {render_value(value)!r} is not one of: {allowed}"
                )
                names.append(p.name)
                continue
            values[p.name] = value
        elif p.default is not None:
            values[p.name] = p.default
        elif p.required:
            problems.append(
                f"missing required parameter '{p.name}' ({p.type.value}); "
                f"give it with {_how(source, p.name, _EXAMPLE_VALUE[p.type])}"
            )
            names.append(p.name)

    for name, where in placeholders.items():
        if name in declared:
            continue
        if name in params:
            given = params[name]
            values[name] = given if isinstance(given, str) else render_value(given)
        else:
            problems.append(
                f"placeholder {{{{ .{name} }}}} in {where} has no value; give it with "
                f"{_how(source, name, 'VALUE')} or declare it under 'parameters' with a default"
            )
            names.append(name)

    if problems:
        raise ParameterError("\n".join(problems), fields={"parameters": names})

    def render(name: str) -> str:
        return render_value(values.get(name))

    resolved = spec.model_copy(deep=True)
    resolved.env = {k: fill(v, render) for k, v in resolved.env.items()}
    for resource in resolved.resources:
        resource.command = fill(resource.command, render)
        resource.work_dir = fill(resource.work_dir, render)
        resource.env = {k: fill(v, render) for k, v in resource.env.items()}
    return resolved, values


_EXAMPLE_VALUE = {
    ParameterType.INT: "200",
    ParameterType.FLOAT: "0.01",
    ParameterType.STRING: "text",
    ParameterType.BOOL: "true",
    ParameterType.LIST: "a,b",
}
