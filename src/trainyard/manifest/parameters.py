"""Run parameters: their declaration in a manifest, and typing of the values given for them.

Types are the five of :class:`~trainyard.core.models.ParameterType`; Kibernetika's form types
are accepted as aliases (``int8``…``uint64`` -> int, ``double`` -> float, ``strings`` ->
string). Values arrive either typed (from YAML or JSON) or as command-line strings (``"200"``);
:func:`convert_value` turns both into the declared type or says precisely why it cannot.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from trainyard.core.models import ParameterSpec, ParameterType
from trainyard.manifest.fields import Checker, Fields, describe
from trainyard.manifest.yamlnodes import YNode, YScalar, YSeq

__all__ = [
    "PARAMETER_FIELDS",
    "TYPE_ALIASES",
    "check_parameters",
    "convert_value",
    "render_value",
]

PARAMETER_FIELDS = ("name", "type", "default", "description", "required", "choices")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

TYPE_ALIASES: dict[str, ParameterType] = {
    "int": ParameterType.INT,
    "integer": ParameterType.INT,
    **{f"{u}int{bits}": ParameterType.INT for u in ("", "u") for bits in (8, 16, 32, 64)},
    "float": ParameterType.FLOAT,
    "double": ParameterType.FLOAT,
    "string": ParameterType.STRING,
    "strings": ParameterType.STRING,
    "str": ParameterType.STRING,
    "bool": ParameterType.BOOL,
    "boolean": ParameterType.BOOL,
    "list": ParameterType.LIST,
}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_EXAMPLES = {
    ParameterType.INT: "an integer such as 200",
    ParameterType.FLOAT: "a number such as 0.01",
    ParameterType.STRING: "a string",
    ParameterType.BOOL: "true or false",
    ParameterType.LIST: "a list such as [1, 2] or a,b",
}

# Kibernetika form fields people carry over; each gets a pointed hint instead of "unknown".
_FORM_HINTS = {
    "value": "unknown field; the default value is called 'default' here",
    "label": "unknown field; write the label as 'description'",
    "width": "unknown field; form layout is not part of a task (remove 'width')",
    "listType": "unknown field; list items keep the type they are written with (remove it)",
}


class ValueProblem(ValueError):
    """A value does not fit a parameter type; the message says what was expected."""


def convert_value(kind: ParameterType, value: object) -> object:
    """``value`` (typed, or a command-line string) as ``kind``. Raises :class:`ValueProblem`."""
    expected = _EXAMPLES[kind]
    if kind is ParameterType.LIST:
        return _to_list(value)
    if isinstance(value, list | dict):
        raise ValueProblem(f"expected {expected}, got a {type(value).__name__}")
    if kind is ParameterType.STRING:
        return value if isinstance(value, str) else render_value(value)
    if kind is ParameterType.BOOL:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueProblem(f"expected {expected}, got {value!r}")
    if isinstance(value, bool):
        raise ValueProblem(f"expected {expected}, got {render_value(value)}")
    if kind is ParameterType.INT:
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?[0-9]+\s*", value):
            return int(value)
        raise ValueProblem(f"expected {expected}, got {value!r}")
    # FLOAT
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueProblem(f"expected {expected}, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueProblem(f"expected a finite number, got {value!r}")
    return number


def _to_list(value: object) -> list[Any]:
    if isinstance(value, list | tuple):
        items = list(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            # Flow syntax: "[1, 2.5, a]". Loaded safely; the result must be a flat list.
            try:
                loaded = yaml.safe_load(text)
            except yaml.YAMLError:
                raise ValueProblem(f"'{value}' is not a valid list; write e.g. [1, 2]") from None
            if not isinstance(loaded, list):
                raise ValueProblem(f"'{value}' is not a valid list; write e.g. [1, 2]")
            items = loaded
        else:
            items = [part.strip() for part in text.split(",")] if text else []
    else:
        raise ValueProblem(f"expected {_EXAMPLES[ParameterType.LIST]}, got {value!r}")
    for item in items:
        if not (item is None or isinstance(item, str | int | float | bool)):
            raise ValueProblem("list items must be plain values (no nested lists or mappings)")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueProblem(f"list items must be finite numbers, got {item!r}")
    return items


def render_value(value: object) -> str:
    """How a typed value is written into a command: lists as space-separated words."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return " ".join(render_value(v) for v in value)
    return str(value)


def _node_value(kind: ParameterType, node: YNode) -> object:
    """A default or choice written in YAML, checked against ``kind``."""
    if kind is ParameterType.LIST:
        if not isinstance(node, YSeq):
            raise ValueProblem(f"expected {_EXAMPLES[kind]}, got {describe(node)}")
        values: list[object] = []
        for item in node.items:
            if not isinstance(item, YScalar):
                raise ValueProblem("list items must be plain values (no nested lists or mappings)")
            values.append(item.value)
        return convert_value(kind, values)
    if not isinstance(node, YScalar):
        raise ValueProblem(f"expected {_EXAMPLES[kind]}, got {describe(node)}")
    if kind is ParameterType.STRING:
        # `default: 1.0` for a string parameter means the text "1.0", not the float 1.0.
        return node.value if isinstance(node.value, str) else node.raw
    if kind is ParameterType.BOOL and not isinstance(node.value, bool):
        raise ValueProblem(f"expected true or false, got {describe(node)}")
    if kind in (ParameterType.INT, ParameterType.FLOAT) and not isinstance(node.value, int | float):
        raise ValueProblem(f"expected {_EXAMPLES[kind]}, got {describe(node)}")
    return convert_value(kind, node.value)


def check_parameters(checker: Checker, fields: Fields) -> list[ParameterSpec]:
    """The ``parameters`` list of a native manifest (empty when absent)."""
    items = fields.sequence("parameters")
    if items is None:
        return []
    specs: list[ParameterSpec] = []
    seen: dict[str, int] = {}
    for path, item in items:
        p = checker.fields(item, path, PARAMETER_FIELDS, required=("name",), hints=_FORM_HINTS)
        if p is None:
            continue
        spec = _check_parameter(checker, p)
        if spec is None:
            continue
        if spec.name in seen:
            p.error("name", f"duplicate parameter '{spec.name}' (first at line {seen[spec.name]})")
            continue
        name_node = p.get("name")
        seen[spec.name] = name_node.line if name_node else 0
        specs.append(spec)
    return specs


def _check_parameter(checker: Checker, p: Fields) -> ParameterSpec | None:
    ok = True
    name = p.string("name", nonempty=True)
    if name is not None and not _NAME.match(name):
        p.error(
            "name",
            f"'{name}' is not a valid parameter name: use letters, digits and '_', not "
            "starting with a digit (it is written {{ .name }} in commands)",
        )
        ok = False
    kind = ParameterType.STRING
    type_text = p.string("type", nonempty=True)
    if type_text is not None:
        if type_text in TYPE_ALIASES:
            kind = TYPE_ALIASES[type_text]
        else:
            p.error("type", f"unknown type '{type_text}'; use int, float, string, bool or list")
            ok = False
    choices: list[Any] | None = None
    choice_items = p.sequence("choices")
    if choice_items is not None and ok:
        choices = []
        for choice_path, choice_node in choice_items:
            try:
                choices.append(_node_value(kind, choice_node))
            except ValueProblem as exc:
                checker.error(choice_node, choice_path, str(exc))
                ok = False
        if not choices and ok:
            p.error("choices", "must list at least one value (or remove 'choices')")
            ok = False
    default: Any = None
    default_node = p.get("default")
    if default_node is not None and ok:
        try:
            default = _node_value(kind, default_node)
        except ValueProblem as exc:
            p.error("default", str(exc))
            ok = False
        else:
            if choices is not None and default not in choices:
                p.error("default", f"{render_value(default)!r} is not one of the choices")
                ok = False
    required = p.boolean("required")
    if required and default is not None:
        p.error("required", "a required parameter cannot have a default; remove one of them")
        ok = False
    description = p.string("description") or ""
    if not ok or name is None:
        return None
    return ParameterSpec(
        name=name,
        type=kind,
        default=default,
        # Without a default, a parameter must be given unless it says `required: false`.
        required=required if required is not None else default is None,
        description=description,
        choices=choices,
    )
