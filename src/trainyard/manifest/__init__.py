"""Task manifests: three YAML front-ends (trainyard, Kibernetika, AIchor) to one ``TaskSpec``.

::

    spec = load_manifest(path.read_bytes(), filename=path.name)   # ManifestError with line:col
    resolved, values = resolve_task(spec, parse_param_args(["steps=200"]))  # ParameterError

The format is detected from the document (:func:`detect_format`); see ``docs/manifest.md`` for
every field. This package depends on ``trainyard.core`` and PyYAML only, so any layer may use it.
"""

from __future__ import annotations

from trainyard.core.models import ManifestFormat
from trainyard.manifest.aichor import RAY_JOB_COMMAND, RAY_WORKER_COMMAND
from trainyard.manifest.loader import detect_format, load_manifest
from trainyard.manifest.native import API_VERSION, parse_duration
from trainyard.manifest.resolve import parse_param_args, resolve_task, task_placeholders
from trainyard.manifest.schema import dump_manifest_json_schema

__all__ = [
    "API_VERSION",
    "RAY_JOB_COMMAND",
    "RAY_WORKER_COMMAND",
    "ManifestFormat",
    "detect_format",
    "dump_manifest_json_schema",
    "load_manifest",
    "parse_duration",
    "parse_param_args",
    "resolve_task",
    "task_placeholders",
]
