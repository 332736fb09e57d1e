"""A JSON Schema of the trainyard task format, for editors (YAML language servers) and docs.

The schema describes shapes and types; the loader checks more (quantities, request ≤ limit,
placeholders, unique names) and is what decides. A test keeps the schema's field lists equal
to the loader's.
"""

from __future__ import annotations

from typing import Any

from trainyard.manifest.native import API_VERSION
from trainyard.manifest.parameters import TYPE_ALIASES
from trainyard.manifest.resources import MAX_REPLICAS

__all__ = ["dump_manifest_json_schema"]

_DNS_LABEL = {
    "type": "string",
    "maxLength": 63,
    "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
}
_QUANTITY = {"type": ["string", "number"], "description": "e.g. 100m, 0.5, 2, 64Mi, 8Gi, 1G"}
_ENV = {
    "description": "NAME: value, or a list of {name, value}",
    "oneOf": [
        {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "value": {"type": ["string", "number", "boolean", "null"]},
                },
            },
        },
    ],
}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        out["required"] = required
    return out


def _amounts() -> dict[str, Any]:
    return _obj({"cpu": _QUANTITY, "memory": _QUANTITY, "gpu": {"type": ["integer", "string"]}})


def dump_manifest_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a trainyard task manifest (Kibernetika's is a subset)."""
    source = {"type": "object"}
    volume = _obj(
        {
            "name": _DNS_LABEL,
            "mountPath": {"type": "string"},
            "subPath": {"type": "string"},
            "readOnly": {"type": "boolean"},
            "clusterStorage": {"type": "string"},
            "hostPath": source,
            "nfs": source,
            "gitRepo": source,
            "s3bucket": source,
            "emptyDir": source,
        },
        ["name"],
    )
    resource = _obj(
        {
            "name": _DNS_LABEL,
            "replicas": {"type": "integer", "minimum": 1, "maximum": MAX_REPLICAS, "default": 1},
            "command": {"type": "string", "minLength": 1},
            "workDir": {"type": "string"},
            "images": _obj({"cpu": {"type": "string"}, "gpu": {"type": "string"}}),
            "resources": _obj({"requests": _amounts(), "limits": _amounts()}),
            "env": _ENV,
            "restartPolicy": {"enum": ["Never", "OnFailure"], "default": "Never"},
            "backoffLimit": {"type": "integer", "minimum": 0, "default": 3},
            "daemon": {"type": "boolean", "default": False},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "default_volume_mapping": {"type": "boolean", "default": False},
            "volumes": {"type": "array", "items": volume},
        },
        ["name", "command"],
    )
    parameter = _obj(
        {
            "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "type": {"enum": sorted(TYPE_ALIASES), "default": "string"},
            "default": {},
            "description": {"type": "string"},
            "required": {"type": "boolean"},
            "choices": {"type": "array", "minItems": 1},
        },
        ["name"],
    )
    schema = _obj(
        {
            "apiVersion": {"const": API_VERSION},
            "name": _DNS_LABEL,
            "description": {"type": "string"},
            "timeout": {
                "type": ["integer", "string"],
                "description": "seconds, or 300s, 5m, 1h, 1h30m",
            },
            "env": _ENV,
            "parameters": {"type": "array", "items": parameter},
            "resources": {"type": "array", "minItems": 1, "items": resource},
        },
        ["name", "resources"],
    )
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "trainyard task"
    return schema
