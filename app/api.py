"""The JSON API: scoring, the model card, feedback, the OpenAPI document, health and metrics.

Batch size: a batch over MAX_BATCH_SIZE is a well-formed request the service declines to
process, so it is a 422 naming `instances`; 413 is kept for bodies over MAX_CONTENT_LENGTH.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from app.errors import ApiError, error_response
from app.model_holder import MODEL_VERSION_HEADER
from app.openapi import build_openapi
from app.prediction_log import utc_now
from app.scoring import current_model, score_rows
from app.service import service
from app.validation import ValidationFailed, validate_feedback, validate_request

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__)


def read_json() -> Any:
    """The request's JSON document: 415 for another content type, 400 when malformed."""
    if request.mimetype != "application/json":
        raise ApiError(415, "Send the body as JSON with the header "
                            "'Content-Type: application/json'.")
    data = request.get_data(cache=False)  # 413 from Flask when over MAX_CONTENT_LENGTH
    if not data.strip():
        raise ApiError(400, "The request body is empty; send a JSON document.",
                       error="malformed_json")
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise ApiError(400, f"The request body is not valid JSON: {error}",
                       error="malformed_json") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _validation_error(error: ValidationFailed) -> ApiError:
    count = len(error.fields)
    return ApiError(422, f"{count} field{'s' if count != 1 else ''} did not match the "
                         "schema; see 'fields'.", error.fields)


@bp.post("/api/v1/predict")
def predict() -> Any:
    """Score one applicant, or {"instances": [...]}, with the production model."""
    payload = read_json()
    try:
        rows, batch = validate_request(payload, current_app.config["MAX_BATCH_SIZE"])
    except ValidationFailed as error:
        raise _validation_error(error) from None
    model, scored = score_rows(rows, g.request_id, batch)
    response = jsonify({"request_id": g.request_id, "model_version": model.version,
                        "threshold": model.threshold,
                        "predictions": [item.to_dict() for item in scored]})
    response.headers[MODEL_VERSION_HEADER] = model.version
    return response


@bp.get("/api/v1/model")
def model_card() -> Any:
    """The serving model's card, without the bulky training reference profile."""
    card = current_model().card
    return jsonify({key: value for key, value in card.items() if key != "reference"})


@bp.post("/api/v1/feedback")
def feedback() -> Any:
    """Record the true outcome of a scored request, for live performance monitoring."""
    try:
        record = validate_feedback(read_json())
    except ValidationFailed as error:
        raise _validation_error(error) from None
    record = {"time": utc_now(), **record}
    state = service()
    try:
        state.feedback_log.append([record])
    except OSError as error:
        state.metrics.feedback_log_failures.inc()
        logger.error("could not write to the feedback log %s: %s", state.feedback_log.path,
                     error)
        raise ApiError(503, "The outcome could not be recorded; try again.") from None
    return jsonify({"status": "recorded", **record}), 201


@bp.get("/api/v1/openapi.json")
def openapi() -> Any:
    """The OpenAPI 3 document of this API, generated from the schema."""
    model = service().holder.model
    reference = model.card.get("reference") if model is not None else None
    return jsonify(build_openapi(current_app.config["MAX_BATCH_SIZE"], reference))


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness: the process answers. Touches nothing else (the benchmark's floor)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Any:
    """Readiness: 200 with the version once a verified model is loaded, else 503."""
    state = service()
    model = state.holder.get()
    if model is None:
        return error_response(503, "No verified model is loaded yet.")
    if not state.metrics.writable():
        # A worker that cannot write its metrics file dies of SIGBUS on the next sample.
        return error_response(503, "The metrics directory is full or missing.")
    return jsonify(status="ready", model_version=model.version)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition (not routed through NGINX)."""
    return service().metrics.exposition()
