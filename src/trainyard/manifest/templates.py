"""``{{ .name }}`` placeholders: finding, checking and filling them — never evaluating them.

The syntax is the one Kibernetika's form templates use (Go templates), restricted to its
simplest form: a dot and a name, with any whitespace inside the braces. Anything else between
``{{`` and ``}}`` is rejected when the manifest is loaded, so a typo such as
``{{ steps }}`` cannot silently reach the shell. Filling is a single pass of plain text
substitution: a value that itself contains ``{{ .x }}`` is not expanded again.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["PLACEHOLDER", "fill", "placeholder_names", "template_problems"]

PLACEHOLDER = re.compile(r"\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_ANY_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_BARE_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


def placeholder_names(text: str) -> list[str]:
    """Names of the placeholders in ``text``, in order of first appearance."""
    return list(dict.fromkeys(m.group(1) for m in PLACEHOLDER.finditer(text)))


def template_problems(text: str) -> list[str]:
    """Messages for each ``{{ … }}`` in ``text`` that is not a ``{{ .name }}`` placeholder."""
    problems: list[str] = []
    for match in _ANY_TEMPLATE.finditer(text):
        if PLACEHOLDER.fullmatch(match.group(0)):
            continue
        inner = match.group(1)
        bare = _BARE_NAME.match(inner)
        if bare:
            problems.append(
                f"'{match.group(0)}' is not a placeholder: write {{{{ .{bare.group(1)} }}}}"
            )
        else:
            problems.append(
                f"'{match.group(0)}' is not supported: only {{{{ .name }}}} placeholders are "
                "filled in, templates are never evaluated"
            )
    return problems


def fill(text: str, render: Callable[[str], str]) -> str:
    """Replace every placeholder with ``render(name)``, in one pass (no re-expansion)."""
    return PLACEHOLDER.sub(lambda m: render(m.group(1)), text)
