"""Typed access to manifest mappings that records every problem instead of stopping at the first.

A front-end walks the node tree with a :class:`Checker`; each getter returns the value (or None
when it is missing or wrong) and appends a ``ManifestIssue`` pointing at the offending key or
value. At the end the front-end raises one ``ManifestError`` with every issue, in document order.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation

from trainyard.core.errors import ManifestError, ManifestIssue
from trainyard.manifest.yamlnodes import YMap, YNode, YScalar, YSeq

__all__ = ["DNS_LABEL_HINT", "Checker", "Fields", "describe", "is_dns_label", "join", "where"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_LABEL_HINT = (
    "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
)


def is_dns_label(name: str) -> bool:
    """True for a DNS-1123 label: ≤ 63 characters of ``[a-z0-9-]``, alphanumeric at both ends."""
    return len(name) <= 63 and bool(_DNS_LABEL.match(name))


def join(path: str, key: str | int) -> str:
    """``join("resources", 1)`` -> ``resources[1]``; ``join("a", "b")`` -> ``a.b``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def where(node: YNode) -> tuple[int, int]:
    return node.line, node.column


def describe(node: YNode) -> str:
    """What a node is, for "expected X, got Y" messages."""
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    value = node.value
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({node.raw})"
    if isinstance(value, int | float):
        return f"a number ({node.raw})"
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"a string ('{shown}')"


# A NUL cannot be passed to a process (argv, environment) and is never meant.
NUL_MESSAGE = "must not contain a NUL character (\\0)"


class Checker:
    """Collects issues for one manifest file."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.issues: list[ManifestIssue] = []

    def error(self, node: YNode, path: str, message: str) -> None:
        line, column = where(node)
        self.issues.append(ManifestIssue(self.filename, line, column, path, message))

    def raise_if_any(self) -> None:
        if self.issues:
            # Document order; stable, so two issues on one node keep the order they were found.
            raise ManifestError(sorted(self.issues, key=lambda i: (i.line, i.column)))

    def fields(
        self,
        node: YNode,
        path: str,
        allowed: Sequence[str],
        *,
        required: Sequence[str] = (),
        hints: dict[str, str] | None = None,
    ) -> Fields | None:
        """Check ``node`` is a mapping with only ``allowed`` keys and every ``required`` one.

        ``hints`` maps a known-but-unsupported key to the message to show for it.
        """
        if not isinstance(node, YMap):
            self.error(node, path, f"expected a mapping, got {describe(node)}")
            return None
        for key, _value in node.entries:
            if key.raw in allowed:
                continue
            key_path = join(path, key.raw)
            if hints and key.raw in hints:
                self.error(key, key_path, hints[key.raw])
                continue
            close = difflib.get_close_matches(key.raw, allowed, n=1, cutoff=0.6)
            if not close:
                # Case slips (`WorkDir`, `restartpolicy`) are the most common typo.
                close = [a for a in allowed if a.lower() == key.raw.lower()][:1]
            if close:
                self.error(key, key_path, f"unknown field; did you mean '{close[0]}'?")
            else:
                self.error(key, key_path, f"unknown field; expected one of: {', '.join(allowed)}")
        for name in required:
            value = node.get(name)
            if value is None:
                self.error(node, path, f"missing required field '{name}'")
            elif isinstance(value, YScalar) and value.value is None:
                key_node = node.key_node(name)
                assert key_node is not None
                self.error(key_node, join(path, name), "needs a value")
        return Fields(self, node, path)


class Fields:
    """The keys of one mapping, with typed getters that report problems to the checker."""

    def __init__(self, checker: Checker, node: YMap, path: str) -> None:
        self.checker = checker
        self.node = node
        self.path = path

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def get(self, key: str) -> YNode | None:
        """The value node; None when the key is missing or has an empty value."""
        value = self.node.get(key)
        if isinstance(value, YScalar) and value.value is None:
            return None
        return value

    def sub(self, key: str) -> str:
        return join(self.path, key)

    def error(self, key: str, message: str) -> None:
        """Report a problem with the value of ``key`` (at the value, or at the key if empty)."""
        value = self.node.get(key)
        key_node = self.node.key_node(key)
        target: YNode = self.node
        if isinstance(value, YScalar) and value.implicit_null and key_node is not None:
            target = key_node
        elif value is not None:
            target = value
        self.checker.error(target, self.sub(key), message)

    def string(self, key: str, *, nonempty: bool = False) -> str | None:
        node = self.get(key)
        if node is None:
            return None
        if not isinstance(node, YScalar) or not isinstance(node.value, str):
            self.error(key, f"expected a string, got {describe(node)}")
            return None
        if nonempty and not node.value.strip():
            self.error(key, "must not be empty")
            return None
        if "\x00" in node.value:
            self.error(key, NUL_MESSAGE)
            return None
        return node.value

    def text(self, key: str) -> str | None:
        """A scalar as the text written (numbers and booleans included, e.g. env values)."""
        node = self.get(key)
        if node is None:
            return None
        if not isinstance(node, YScalar):
            self.error(key, f"expected a string, got {describe(node)}")
            return None
        if isinstance(node.value, str) and "\x00" in node.value:
            self.error(key, NUL_MESSAGE)
            return None
        return node.value if isinstance(node.value, str) else node.raw

    def integer(
        self, key: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        node = self.get(key)
        if node is None:
            return None
        if (
            not isinstance(node, YScalar)
            or isinstance(node.value, bool)
            or not isinstance(node.value, int)
        ):
            self.error(key, f"expected a whole number, got {describe(node)}")
            return None
        value = node.value
        if minimum is not None and value < minimum:
            self.error(key, f"must be ≥ {minimum}")
            return None
        if maximum is not None and value > maximum:
            self.error(key, f"must be ≤ {maximum}")
            return None
        return value

    def number(self, key: str, *, positive: bool = False) -> Decimal | None:
        """An int or float as an exact Decimal of the text written (``0.1`` stays 0.1)."""
        node = self.get(key)
        if node is None:
            return None
        if (
            not isinstance(node, YScalar)
            or isinstance(node.value, bool)
            or not isinstance(node.value, int | float)
        ):
            self.error(key, f"expected a number, got {describe(node)}")
            return None
        if isinstance(node.value, float) and not math.isfinite(node.value):
            self.error(key, f"expected a finite number, got {node.raw}")
            return None
        try:
            value = Decimal(node.raw.replace("_", "")) if isinstance(node.value, float) else None
        except InvalidOperation:
            value = None
        exact = value if value is not None else Decimal(str(node.value))
        if exact < 0 or (positive and exact == 0):
            self.error(key, "must be greater than 0" if positive else "must not be negative")
            return None
        return exact

    def boolean(self, key: str) -> bool | None:
        node = self.get(key)
        if node is None:
            return None
        if not isinstance(node, YScalar) or not isinstance(node.value, bool):
            self.error(key, f"expected true or false, got {describe(node)}")
            return None
        return node.value

    def mapping(
        self,
        key: str,
        allowed: Sequence[str],
        *,
        required: Sequence[str] = (),
        hints: dict[str, str] | None = None,
    ) -> Fields | None:
        node = self.get(key)
        if node is None:
            return None
        return self.checker.fields(node, self.sub(key), allowed, required=required, hints=hints)

    def sequence(self, key: str) -> Iterator[tuple[str, YNode]] | None:
        """``(path, item)`` for each item of the list under ``key``."""
        node = self.get(key)
        if node is None:
            return None
        if not isinstance(node, YSeq):
            self.error(key, f"expected a list, got {describe(node)}")
            return None
        base = self.sub(key)
        return ((join(base, i), item) for i, item in enumerate(node.items))
