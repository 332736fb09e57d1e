"""Reading a manifest: decode, parse safely, detect the format, validate, build the TaskSpec."""

from __future__ import annotations

from trainyard.core.errors import ManifestError, ManifestIssue
from trainyard.core.models import ManifestFormat, TaskSpec
from trainyard.manifest.aichor import check_aichor
from trainyard.manifest.fields import Checker, describe
from trainyard.manifest.native import API_VERSION, NATIVE_TASK_FIELDS, check_task
from trainyard.manifest.resources import NATIVE_RESOURCE_FIELDS
from trainyard.manifest.yamlnodes import YMap, YNode, YScalar, YSeq, decode_manifest, parse_yaml

__all__ = ["detect_format", "load_manifest"]

AICHOR_KIND = "AIchorManifest"


def _detect(root: YMap) -> ManifestFormat:
    kind = root.get("kind")
    if isinstance(kind, YScalar) and kind.value == AICHOR_KIND:
        return ManifestFormat.AICHOR
    api_version = root.get("apiVersion")
    if isinstance(api_version, YScalar) and api_version.value == API_VERSION:
        return ManifestFormat.NATIVE
    if any(key in root.index for key in NATIVE_TASK_FIELDS):
        return ManifestFormat.NATIVE
    resources = root.get("resources")
    if isinstance(resources, YSeq):
        for item in resources.items:
            if isinstance(item, YMap) and any(k in item.index for k in NATIVE_RESOURCE_FIELDS):
                return ManifestFormat.NATIVE
    return ManifestFormat.KIBERNETIKA


def _parse_root(text: str | bytes, filename: str) -> YMap:
    decoded = decode_manifest(text, filename)
    root: YNode | None = parse_yaml(decoded, filename)
    if root is None or (isinstance(root, YScalar) and root.value is None):
        raise ManifestError(
            [
                ManifestIssue(
                    filename,
                    1,
                    1,
                    "",
                    "the manifest is empty; a task needs at least `name` and `resources`",
                )
            ]
        )
    if not isinstance(root, YMap):
        raise ManifestError(
            [
                ManifestIssue(
                    filename,
                    root.line,
                    root.column,
                    "",
                    f"expected a mapping (name: …, resources: …) at the top, got {describe(root)}",
                )
            ]
        )
    return root


def detect_format(text: str | bytes, filename: str = "task.yaml") -> ManifestFormat:
    """Which front-end reads ``text``: aichor, trainyard (native) or kibernetika.

    ``kind: AIchorManifest`` -> aichor. ``apiVersion: trainyard/v1``, or any of the task-level
    keys ``parameters``, ``timeout``, ``env``, ``description``, or a resource with
    ``backoffLimit``, ``daemon`` or ``port`` -> trainyard. Anything else -> kibernetika.
    Raises ``ManifestError`` when the text is not a YAML mapping.
    """
    return _detect(_parse_root(text, filename))


def load_manifest(
    text: str | bytes, filename: str = "task.yaml", *, default_name: str | None = None
) -> TaskSpec:
    """Parse and validate a manifest of any supported format into a :class:`TaskSpec`.

    ``filename`` is only used in messages. ``default_name`` names an AIchor task that has no
    ``name`` key (the CLI passes the manifest's directory name); it is made a valid DNS label,
    and ``aichor-experiment`` is used when it is None or nothing valid is left.
    Placeholders are left in place: :func:`~trainyard.manifest.resolve_task` fills them.

    Raises ``ManifestError`` listing every problem found, each with file, line, column and path.
    """
    root = _parse_root(text, filename)
    fmt = _detect(root)
    checker = Checker(filename)
    if fmt is ManifestFormat.AICHOR:
        spec = check_aichor(checker, root, default_name)
    else:
        spec = check_task(checker, root, fmt)
    checker.raise_if_any()
    if spec is None:  # pragma: no cover - every None comes with an issue
        raise ManifestError([ManifestIssue(filename, 1, 1, "", "invalid manifest")])
    return spec
