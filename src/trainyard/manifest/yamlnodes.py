"""Safe YAML loading into a small tree of nodes that remember where they were written.

PyYAML composes the document: with libyaml's ``CSafeLoader`` when PyYAML has it, for speed,
else with our ``SafeLoader`` subclass. A small document that libyaml refuses is read again by
the Python loader, so syntax messages are the same everywhere (a big one keeps libyaml's).
We then convert the node graph ourselves instead of letting PyYAML construct Python objects,
because every later error must point at a line and a column, and because the conversion is
where the hostile-input guards live:

- only the standard data tags are accepted (``!!python/object`` and friends, custom ``!Tags``,
  ``!!binary``, ``!!set``… are errors at their own line) — manifests are data, never code;
- duplicate keys are errors (PyYAML silently keeps the last one);
- anchors and aliases work, but a document that *expands* to more than :data:`MAX_NODES` nodes
  (the "billion laughs" attack) or refers to itself is refused before anything walks it;
- nesting deeper than :data:`MAX_DEPTH` is refused before the (recursive) composer runs;
- ``<<`` merge keys work as in YAML 1.1.

Lines and columns are 1-based, columns count characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import yaml
from yaml.constructor import ConstructorError

from trainyard.core.errors import ManifestError, ManifestIssue

__all__ = [
    "MAX_DEPTH",
    "MAX_MANIFEST_BYTES",
    "MAX_NODES",
    "YMap",
    "YNode",
    "YScalar",
    "YSeq",
    "decode_manifest",
    "parse_yaml",
    "to_plain",
]

# A real manifest is a few kilobytes; these bounds keep a hostile one to well under a second
# of CPU (with libyaml) and a few tens of megabytes of memory.
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_YAML}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_MERGE_TAG = f"{_YAML}merge"


@dataclass(eq=False)
class YScalar:
    """A scalar: ``value`` is a str, int, float, bool or None; ``raw`` is the text as written."""

    value: str | int | float | bool | None
    raw: str
    line: int
    column: int
    # True for an empty value (``key:`` with nothing after it): errors then point at the key.
    implicit_null: bool = False


@dataclass(eq=False)
class YSeq:
    items: list[YNode]
    line: int
    column: int


@dataclass(eq=False)
class YMap:
    """A mapping. ``entries`` keeps document order; keys are the key text as written."""

    entries: list[tuple[YScalar, YNode]]
    line: int
    column: int
    index: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> YNode | None:
        i = self.index.get(key)
        return None if i is None else self.entries[i][1]

    def key_node(self, key: str) -> YScalar | None:
        i = self.index.get(key)
        return None if i is None else self.entries[i][0]


YNode: TypeAlias = YScalar | YSeq | YMap


class _Loader(yaml.SafeLoader):
    """SafeLoader used only to compose nodes and to build the standard scalar types."""


# libyaml's loader, when PyYAML was built with it: ~15 times faster on big documents. Its
# nodes are the same classes, with the same (character-based) marks.
_FastLoader: type[Any] | None = getattr(yaml, "CSafeLoader", None)
_SLOW_PATH_MAX_CHARS = 64 * 1024


def _issue(filename: str, line: int, column: int, message: str) -> ManifestIssue:
    return ManifestIssue(filename, line, column, "", message)


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def decode_manifest(data: str | bytes, filename: str) -> str:
    """Bytes -> text (UTF-8, optional BOM). Raises ``ManifestError`` at the first bad byte."""
    if isinstance(data, str):
        text = data
    else:
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError([_too_big(filename, len(data))])
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            good = data[: exc.start].decode("utf-8", errors="replace")
            line, column = _position(good, len(good))
            raise ManifestError(
                [
                    _issue(
                        filename,
                        line,
                        column,
                        f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                        "save it as UTF-8",
                    )
                ]
            ) from exc
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError([_too_big(filename, size)])
    return text.removeprefix("\ufeff")


def _char(character: int | str) -> str:
    code = character if isinstance(character, int) else ord(character[:1] or "\0")
    return f"U+{code:04X}"


def _too_big(filename: str, size: int) -> ManifestIssue:
    return _issue(
        filename,
        1,
        1,
        f"the manifest is {size} bytes, more than the {MAX_MANIFEST_BYTES} allowed; "
        "keep data out of the manifest",
    )


def parse_yaml(text: str, filename: str) -> YNode | None:
    """Compose ``text`` (one YAML document) into a node tree; None for an empty document.

    Raises ``ManifestError`` for invalid YAML, several documents, disallowed tags, duplicate
    keys, recursive or exploding aliases, and documents nested deeper than :data:`MAX_DEPTH`.
    """
    _check_flow_depth(text, filename)
    if _FastLoader is not None:
        try:
            # libyaml's composer recurses in C with no depth check (a long `- - - - x` line
            # crashes the interpreter), so the depth is measured first on its iterative parser.
            _check_depth(_FastLoader, text, filename)
            return _convert(_compose(_FastLoader, text), filename)
        except yaml.YAMLError as exc:
            # Small documents are read again by the pure-Python loader, whose messages and
            # positions are the documented ones; a big one would take seconds, so it gets
            # libyaml's own message.
            if len(text) > _SLOW_PATH_MAX_CHARS:
                raise _yaml_error(exc, text, filename) from exc
    try:
        return _convert(_compose(_Loader, text), filename)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, filename) from exc
    except RecursionError as exc:
        raise ManifestError(
            [_issue(filename, 1, 1, f"the document is nested more than {MAX_DEPTH} levels deep")]
        ) from exc


def _compose(loader_class: type[Any], text: str) -> yaml.Node | None:
    # The reader checks for non-printable characters as soon as the loader is built.
    loader = loader_class(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


def _convert(root: yaml.Node | None, filename: str) -> YNode | None:
    return None if root is None else _Converter(filename).run(root)


def _check_depth(loader_class: type[Any], text: str, filename: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=loader_class):
        if isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
                raise ManifestError(
                    [
                        _issue(
                            filename,
                            line,
                            column,
                            f"the document is nested more than {MAX_DEPTH} levels deep",
                        )
                    ]
                )
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            depth -= 1


def _yaml_error(exc: yaml.YAMLError, text: str, filename: str) -> ManifestError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if exc.problem == "but found another document":
            message = "the file holds more than one YAML document (`---`); a manifest is one"
        else:
            context = f" {exc.context}" if exc.context and exc.problem else ""
            message = f"invalid YAML{context}: {exc.problem or exc.context}"
        return ManifestError([_issue(filename, line, column, message)])
    if isinstance(exc, yaml.reader.ReaderError):
        line, column = _position(text, exc.position)
        return ManifestError(
            [
                _issue(
                    filename,
                    line,
                    column,
                    f"invalid YAML: the control character {_char(exc.character)} is not allowed",
                )
            ]
        )
    return ManifestError([_issue(filename, 1, 1, f"invalid YAML: {exc}")])


def _check_flow_depth(text: str, filename: str) -> None:
    """Refuse deeply nested ``[[[…`` / ``{{{…`` before PyYAML sees them.

    PyYAML's scanner does work proportional to the flow depth for every token (quadratic
    overall) and its composer recurses per level, so a megabyte of brackets would cost seconds.
    The count is naive (brackets inside quotes count too), which is harmless: no real manifest
    has more than a handful of unclosed brackets at any point.
    """
    depth = 0
    for offset, char in enumerate(text):
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line, column = _position(text, offset)
                raise ManifestError(
                    [
                        _issue(
                            filename,
                            line,
                            column,
                            f"the document is nested more than {MAX_DEPTH} levels deep",
                        )
                    ]
                )
        elif char in "]}" and depth:
            depth -= 1


class _Converter:
    """yaml.Node graph -> YNode tree, with the guards described in the module docstring."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.issues: list[ManifestIssue] = []
        self.constructor = _Loader("")
        self.sizes: dict[int, int] = {}

    def run(self, root: yaml.Node) -> YNode:
        # Size first, on the (shared) graph: linear in the graph, so an alias bomb is caught
        # before anything expands it.
        size = self._size(root, set(), 0)
        if size > MAX_NODES:
            raise ManifestError(
                [
                    _issue(
                        self.filename,
                        root.start_mark.line + 1,
                        root.start_mark.column + 1,
                        f"the document holds more than {MAX_NODES} values once aliases are "
                        "expanded; a manifest describes a task, it does not carry data",
                    )
                ]
            )
        node = self._convert(root)
        if self.issues:
            raise ManifestError(sorted(self.issues, key=lambda i: (i.line, i.column)))
        return node

    def _size(self, node: yaml.Node, active: set[int], depth: int) -> int:
        key = id(node)
        if key in self.sizes:
            return self.sizes[key]
        if key in active:
            mark = node.start_mark
            raise ManifestError(
                [
                    _issue(
                        self.filename,
                        mark.line + 1,
                        mark.column + 1,
                        "an alias refers to a node that contains it (recursive anchor)",
                    )
                ]
            )
        if depth > MAX_DEPTH:
            mark = node.start_mark
            raise ManifestError(
                [
                    _issue(
                        self.filename,
                        mark.line + 1,
                        mark.column + 1,
                        f"the document is nested more than {MAX_DEPTH} levels deep",
                    )
                ]
            )
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += self._size(child, active, depth + 1)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += self._size(k, active, depth + 1) + self._size(v, active, depth + 1)
                if total > MAX_NODES:
                    break
        active.discard(key)
        self.sizes[key] = total
        return total

    def _error(self, node: yaml.Node, message: str) -> None:
        mark = node.start_mark
        self.issues.append(_issue(self.filename, mark.line + 1, mark.column + 1, message))

    def _check_tag(self, node: yaml.Node, allowed: set[str]) -> bool:
        tag = node.tag or ""
        if tag in allowed:
            return True
        shown = "!!" + tag.removeprefix(_YAML) if tag.startswith(_YAML) else tag
        if "python/" in tag:
            self._error(
                node,
                f"the tag {shown} is not allowed: manifests are data and are never turned into "
                "objects; remove the tag",
            )
        else:
            self._error(node, f"the tag {shown} is not supported in a manifest; remove it")
        return False

    def _convert(self, node: yaml.Node) -> YNode:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, {f"{_YAML}seq"})
            return YSeq([self._convert(child) for child in node.value], line, column)
        assert isinstance(node, yaml.MappingNode)
        self._check_tag(node, {f"{_YAML}map"})
        return self._mapping(node, line, column)

    def _scalar(self, node: yaml.ScalarNode) -> YScalar:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        raw = str(node.value)
        implicit_null = raw == "" and node.style is None
        if not self._check_tag(node, _SCALAR_TAGS):
            return YScalar(raw, raw, line, column)
        tag = node.tag
        if tag in (f"{_YAML}str", f"{_YAML}timestamp"):
            # Dates stay text: a manifest never needs a datetime object.
            return YScalar(raw, raw, line, column)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (ConstructorError, ValueError) as exc:
            self._error(node, f"'{raw}' is not a valid {tag.removeprefix(_YAML)}: {exc}")
            return YScalar(raw, raw, line, column)
        assert value is None or isinstance(value, str | int | float | bool)
        return YScalar(value, raw, line, column, implicit_null=implicit_null)

    def _mapping(self, node: yaml.MappingNode, line: int, column: int) -> YMap:
        result = YMap([], line, column)
        merged: list[tuple[YScalar, YNode]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_sources(value_node))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._error(key_node, "a key must be a plain string, not a list or a mapping")
                continue
            key = self._scalar(key_node)
            key.value = key.raw  # keys are names: `on:` is the text "on", not True
            if key.raw in result.index:
                first = result.entries[result.index[key.raw]][0]
                self._error(
                    key_node,
                    f"duplicate key '{key.raw}' (first at line {first.line}); keep only one",
                )
                continue
            result.index[key.raw] = len(result.entries)
            result.entries.append((key, self._convert(value_node)))
        # Explicit keys win over merged ones; earlier merge sources win over later ones.
        for key, value in merged:
            if key.raw not in result.index:
                result.index[key.raw] = len(result.entries)
                result.entries.append((key, value))
        return result

    def _merge_sources(self, node: yaml.Node) -> list[tuple[YScalar, YNode]]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        out: list[tuple[YScalar, YNode]] = []
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self._error(source, "a << merge key takes a mapping or a list of mappings")
                continue
            converted = self._convert(source)
            assert isinstance(converted, YMap)
            out.extend(converted.entries)
        return out


def to_plain(node: YNode) -> object:
    """The node as plain Python data (dicts, lists, scalars)."""
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YSeq):
        return [to_plain(i) for i in node.items]
    return {k.raw: to_plain(v) for k, v in node.entries}
