"""The public view of a model card: what API clients need, nothing of the training host.

The full card (model.json) records paths, the training configuration and the reference
profile for the registry and the monitor; clients get the version, what the model decides
with, and how well it did. CARD_SCHEMA is the one list of what is published: the endpoint
filters by it and the OpenAPI document describes it. Its `registry` entry is the one field
not taken from the card: the endpoint adds it.
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_METRICS = {"type": "object", "additionalProperties": True,
            "description": "Holdout metrics (ROC AUC, F1, recall and precision on the positive "
                           "label, Brier score, ...)."}

CARD_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["version", "threshold", "positive_label", "features", "metrics"],
    "properties": {
        "version": _STRING,
        "created_at": {"type": "string", "description": "ISO 8601 time of training."},
        "model_family": _STRING,
        "package_version": _STRING,
        "artifact_sha256": _STRING,
        "positive_label": {"type": "string",
                           "description": "The class whose probability is returned."},
        "threshold": {"type": "number", "minimum": 0, "maximum": 1,
                      "description": "Probabilities at or above it are declined."},
        "features": {"type": "array", "items": _STRING,
                     "description": "The inputs the model scores with."},
        "metrics": _METRICS,
        "segment_metrics": {"type": "object", "additionalProperties": True,
                            "description": "Holdout metrics per segment (fairness)."},
        "data": {"type": "object", "additionalProperties": False,
                 "description": "The training data: its hash and row counts.",
                 "properties": {"sha256": _STRING, "rows": _COUNT, "train_rows": _COUNT,
                                "holdout_rows": _COUNT}},
        "registry": {
            "type": "object", "additionalProperties": False,
            "required": ["server", "in_step", "checked_at", "error"],
            "description": "Not from the card: where the service's versions come from. "
                           "`server` is the MLflow server whose production alias the "
                           "service follows (null: the local folder alone); `in_step` "
                           "says whether its last check reached the server and brought the "
                           "folder to the alias (false: the server is unreachable or its "
                           "version was refused, and the service keeps serving this "
                           "version).",
            "properties": {"server": _NULLABLE_STRING, "in_step": {"type": "boolean",
                                                                   "nullable": True},
                           "checked_at": _NULLABLE_STRING, "error": _NULLABLE_STRING}},
    },
}


def _pick(values: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The entries of `values` that `schema` lists, nested objects picked the same way."""
    picked = {}
    for name, field_schema in schema["properties"].items():
        if name not in values:
            continue
        value = values[name]
        if "properties" in field_schema and isinstance(value, dict):
            value = _pick(value, field_schema)
        picked[name] = value
    return picked


def public_card(card: dict[str, Any]) -> dict[str, Any]:
    """The published part of `card`, as CARD_SCHEMA lists it."""
    return _pick(card, CARD_SCHEMA)
