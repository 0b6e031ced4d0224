"""The OpenAPI 3.0 document of the API, generated from `training.schema`.

Categories become enums, integer bounds become minimum/maximum, model inputs are the
required list and protected columns are optional and marked as not used for scoring. The
example applicant is the production model's training reference (median or most frequent
value of each input) when a model is loaded, so it is a realistic, valid request.
"""

from __future__ import annotations

from typing import Any

from training import __version__
from training.canary_release import ARMS, MODES
from training.schema import FEATURES, INPUTS, Column, Role

from app.errors import MAX_REPORTED_FIELDS
from app.model_card import CARD_SCHEMA
from app.request_id import SANE
from app.validation import BATCH_KEY, outcome_values

JSON = "application/json"


def column_schema(column: Column) -> dict[str, Any]:
    """The JSON Schema (OpenAPI 3.0 dialect) of one input column."""
    description = column.description
    if column.unit:
        description += f" Unit: {column.unit}."
    if column.role is Role.PROTECTED:
        description += (" Optional: recorded for fairness monitoring, never used for "
                        "scoring.")
    schema: dict[str, Any] = {"title": column.label, "description": description}
    if column.is_numeric:
        schema.update(type="integer", minimum=column.minimum, maximum=column.maximum)
    else:
        schema.update(type="string", enum=list(column.categories))
    return schema


def example_applicant(reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid applicant: the reference's typical values, else a value inside each domain."""
    example: dict[str, Any] = {}
    for column in FEATURES:
        entry = (reference or {}).get(column.name)
        if column.is_numeric:
            value = int(entry["median"]) if entry else (column.minimum + column.maximum) // 2
            example[column.name] = min(max(value, column.minimum), column.maximum)
        else:
            mode = entry.get("mode") if entry else None
            example[column.name] = mode if mode in column.categories else column.categories[0]
    return example


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _schemas(max_batch_size: int, example: dict[str, Any]) -> dict[str, Any]:
    applicant = {"type": "object", "additionalProperties": False,
                 "required": [c.name for c in INPUTS if c.required],
                 "properties": {c.name: column_schema(c) for c in INPUTS},
                 "example": example}
    prediction = {"type": "object", "required": ["request_id", "probability_bad", "decision"],
                  "properties": {
                      "request_id": {"type": "string"},
                      "probability_bad": {"type": "number", "minimum": 0, "maximum": 1,
                                          "description": "Probability of a bad credit risk."},
                      "decision": {"type": "string", "enum": ["approve", "decline"]}}}
    return {
        "Applicant": applicant,
        "Batch": {"type": "object", "additionalProperties": False, "required": [BATCH_KEY],
                  "properties": {BATCH_KEY: {"type": "array", "minItems": 1,
                                             "maxItems": max_batch_size,
                                             "items": {"$ref": "#/components/schemas/Applicant"}}}},
        "Prediction": prediction,
        "PredictionResponse": {
            "type": "object", "required": ["request_id", "model_version", "predictions"],
            "properties": {"request_id": {"type": "string"},
                           "model_version": {"type": "string"},
                           "arm": {"type": "string", "enum": list(ARMS),
                                   "description": "Which arm scored every row: production, "
                                                  "or the canary while one runs."},
                           "threshold": {"type": "number"},
                           "predictions": {"type": "array",
                                           "items": {"$ref": "#/components/schemas/Prediction"}}}},
        "Feedback": {"type": "object", "additionalProperties": False,
                     "required": ["request_id", "outcome"],
                     "properties": {"request_id": {"type": "string", "pattern": SANE.pattern},
                                    "outcome": {"type": "string",
                                                "enum": list(outcome_values())}}},
        "FeedbackRecorded": {
            "type": "object", "required": ["status", "time", "request_id", "outcome"],
            "properties": {"status": {"type": "string", "enum": ["recorded"]},
                           "time": {"type": "string"},
                           "request_id": {"type": "string"},
                           "outcome": {"type": "string", "enum": list(outcome_values())}}},
        "Error": {"type": "object", "required": ["error", "message"],
                  "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                                 "request_id": {"type": "string"},
                                 "fields": {"type": "object",
                                            "maxProperties": MAX_REPORTED_FIELDS,
                                            "additionalProperties": {"type": "string"},
                                            "description": "Problem of each bad field, by "
                                                           "path (e.g. instances[0].amount); "
                                                           "the first "
                                                           f"{MAX_REPORTED_FIELDS} only."},
                                 "field_count": {"type": "integer", "minimum": 1,
                                                 "description": "How many fields were bad "
                                                                "in all."}}},
        "ModelCard": CARD_SCHEMA,
        "Status": {"type": "object", "required": ["status"],
                   "properties": {"status": {"type": "string"},
                                  "model_version": {"type": "string"},
                                  "canary": {"type": "object", "nullable": True,
                                             "description": "The canary release this "
                                                            "worker applies, if any.",
                                             "properties": {
                                                 "version": {"type": "string"},
                                                 "mode": {"type": "string",
                                                          "enum": list(MODES)},
                                                 "share": {"type": "number"}}}}},
    }


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description,
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


# Answers every route can give: NGINX refuses methods the API does not use (405), the app
# refuses a known path's other methods (405), and NGINX answers 502/503/504 when the app is
# down or slow. Rate-limited routes add 429 (NGINX's limit_req and limit_conn).
_EVERY_ROUTE = {"405": _error_response("Method not allowed on this path (see Allow)."),
                "502": _error_response("The scoring service is not answering (NGINX)."),
                "503": _error_response("Unavailable: no verified model is loaded, or the "
                                       "service is down (NGINX)."),
                "504": _error_response("The scoring service took too long (NGINX).")}
_RATE_LIMITED = {"429": _error_response("Too many requests or connections from this client.")}


def _operation(operation_id: str, summary: str, responses: dict[str, Any],
               rate_limited: bool = True, body: str | None = None) -> dict[str, Any]:
    """One operation with the answers common to every route added to `responses`."""
    operation: dict[str, Any] = {"summary": summary, "operationId": operation_id}
    if body:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": {
            "$ref": f"#/components/schemas/{body}"}}}}
    # A route's own description of a status (feedback's 503) wins over the common one.
    operation["responses"] = {**_EVERY_ROUTE, **(_RATE_LIMITED if rate_limited else {}),
                              **responses}
    return operation


def _paths(max_batch_size: int) -> dict[str, Any]:
    body_errors = {"400": _error_response("Malformed JSON or an empty body."),
                   "413": _error_response("Body larger than this route accepts."),
                   "415": _error_response("Content-Type is not application/json."),
                   "422": _error_response("Fields that do not match the schema, each named "
                                          "(also a batch over the size limit).")}
    predict = _operation(
        "predict", "Probability of bad credit risk and decision, for one applicant or a "
                   f"batch of up to {max_batch_size}.",
        {"200": _json_response("One prediction per applicant.", "PredictionResponse"),
         **body_errors})
    predict["requestBody"] = {"required": True, "content": {JSON: {"schema": {"oneOf": [
        {"$ref": "#/components/schemas/Applicant"},
        {"$ref": "#/components/schemas/Batch"}]}}}}
    return {
        "/api/v1/predict": {"post": predict},
        "/api/v1/feedback": {"post": {
            **_operation(
                "feedback", "Record the true outcome of a prediction this service made, once.",
                {"201": _json_response("Recorded.", "FeedbackRecorded"),
                 **body_errors,
                 "401": {**_error_response("Missing or wrong bearer token."),
                         "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
                 "409": _error_response("This request_id already has an outcome."),
                 "422": _error_response("Fields that do not match the schema, each named, or "
                                        "a request_id the service never issued and logged."),
                 "503": _error_response("Feedback is disabled (no token configured, error "
                                        "'feedback_disabled') or could not be recorded.")},
                body="Feedback"),
            "description": "Needs `Authorization: Bearer <feedback token>`. The request_id is "
                           "that of a prediction's answer; the first outcome stands.",
            "security": [{"feedbackToken": []}]}},
        "/api/v1/model": {"get": _operation(
            "model", "What clients need of the serving model's card.",
            {"200": _json_response("Model card.", "ModelCard")})},
        "/api/v1/openapi.json": {"get": _operation(
            "openapi", "This document.",
            {"200": {"description": "OpenAPI 3.", "content": {JSON: {"schema": {
                "type": "object", "required": ["openapi", "paths"]}}}}})},
        "/healthz": {"get": _operation(
            "healthz", "Liveness.", {"200": _json_response("Alive.", "Status")},
            rate_limited=False)},
        "/readyz": {"get": _operation(
            "readyz", "Readiness: a verified model is loaded.",
            {"200": _json_response("Ready, with the version.", "Status")},
            rate_limited=False)},
    }


def build_openapi(max_batch_size: int,
                  reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.0 document."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "Credit risk scoring API", "version": __version__,
                 "description": "Scores consumer credit applications (South German Credit "
                                "data) with the production model of the registry."},
        "paths": _paths(max_batch_size),
        "components": {"schemas": _schemas(max_batch_size, example_applicant(reference)),
                       "securitySchemes": {"feedbackToken": {"type": "http",
                                                             "scheme": "bearer"}}},
    }
