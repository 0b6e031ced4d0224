"""The JSON API: scoring, the model card, feedback, the OpenAPI document, health and metrics.

Batch size: a batch over MAX_BATCH_SIZE is a well-formed request the service declines to
process, so it is a 422 naming `instances`; 413 is kept for bodies over the route's limit
(BODY_LIMITS; MAX_CONTENT_LENGTH for every other route).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from app import json_body
from app.errors import ApiError, error_response, invalid_fields
from app.feedback import AlreadyAnswered, UnknownPrediction, bearer_matches
from app.model_card import public_card
from app.openapi import build_openapi
from app.scoring import answer_request_body, current_model
from app.service import service
from app.validation import ValidationFailed, validate_feedback
from training.follower_status import registry_status

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__)

# The setting that bounds the body of each JSON route (app/config.py explains the sizes).
BODY_LIMITS = {"api.predict": "MAX_PREDICT_BYTES", "api.feedback": "MAX_FEEDBACK_BYTES"}

FEEDBACK_REALM = "credit-risk feedback"


def read_json() -> Any:
    """The request's JSON document: 415 for another content type, 400 when malformed."""
    return json_body.document(read_json_body())


def read_json_body() -> bytes:
    """The request's body, unparsed: 415 for a content type other than JSON, 413 over the
    route's limit."""
    if request.mimetype != json_body.MIMETYPE:
        raise ApiError(415, "Send the body as JSON with the header "
                            "'Content-Type: application/json'.")
    setting = BODY_LIMITS.get(request.endpoint or "")
    if setting:
        request.max_content_length = current_app.config[setting]
    return request.get_data(cache=False)  # 413 from Flask over the limit


@bp.post("/api/v1/predict")
def predict() -> Any:
    """Score one applicant, or {"instances": [...]}, with the production model. Most
    requests are answered before they reach Flask (app/predict_fast_path.py); this view
    answers the rest, and every error."""
    return json_body.response(*answer_request_body(
        service(), read_json_body(), current_app.config["MAX_BATCH_SIZE"], g.get("request_id")))


@bp.get("/api/v1/model")
def model_card() -> Any:
    """What clients need of the serving model's card (no paths, config or profile), and
    where the service's versions come from (a followed MLflow server, and whether the last
    check reached it)."""
    registry = registry_status(Path(service().settings["MODEL_REGISTRY"]))
    return jsonify({**public_card(current_model().card), "registry": registry})


@bp.post("/api/v1/feedback")
def feedback() -> Any:
    """Record the true outcome of a prediction this service made (bearer token required)."""
    token = current_app.config["FEEDBACK_TOKEN"]
    if not token:
        return error_response(503, "Feedback is disabled: the service has no feedback token "
                                   "(FEEDBACK_TOKEN_FILE or FEEDBACK_TOKEN).",
                              error="feedback_disabled")
    authorization = request.headers.get("Authorization")
    if not bearer_matches(authorization, token):
        challenge = f'Bearer realm="{FEEDBACK_REALM}"'
        if authorization:
            challenge += ', error="invalid_token"'
        return error_response(401, "Send the feedback token as 'Authorization: Bearer "
                                   "<token>'.", error="unauthorized",
                              headers={"WWW-Authenticate": challenge})
    try:
        claim = validate_feedback(read_json())
    except ValidationFailed as error:
        raise invalid_fields(error.fields) from None
    state = service()
    try:
        record = state.feedback.record(claim["request_id"], claim["outcome"])
    except UnknownPrediction:
        raise ApiError(422, "No prediction with this request_id was logged by this service.",
                       {"request_id": "is not the request_id of a logged prediction"}
                       ) from None
    except AlreadyAnswered:
        raise ApiError(409, "An outcome was already recorded for this request_id; the first "
                            "one stands.", {"request_id": "already has an outcome"},
                       error="conflict") from None
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
    """Readiness: 200 with the version (and the canary this worker applies) once a verified
    model is loaded, else 503."""
    state = service()
    model = state.holder.get()
    if model is None:
        return error_response(503, "No verified model is loaded yet.")
    if not state.metrics.writable():
        # A worker that cannot write its metrics file dies of SIGBUS on the next sample.
        return error_response(503, "The metrics directory is full or missing.")
    canary = state.canary.active()
    # The canary this worker applies (None: none runs, it is still loading, or this worker's
    # guard dropped it): the deployment check reports it per replica.
    release = None if canary is None else {"version": canary.release.version,
                                           "mode": canary.release.mode,
                                           "share": canary.release.share}
    return jsonify(status="ready", model_version=model.version, canary=release)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition (not routed through NGINX)."""
    return service().metrics.exposition()
