"""Score validated rows with the serving model, then log, count and watch them.

The scoring route (its Flask view and its fast path) calls `answer_request_body`, the form
`score_rows`; it holds one model reference for the whole request, so a swap in the middle
never mixes two versions in one answer. Nothing here reads Flask's request context.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.canary import ActiveCanary
from app import json_body
from app.errors import ApiError, invalid_fields
from app.model_holder import MODEL_ARM_HEADER, MODEL_VERSION_HEADER
from app.prediction_log import utc_now
from app.request_id import new_request_id
from app.service import Service, service
from app.validation import ScoringRequest, ValidationFailed, validate_request
from training.artifact import LoadedModel
from training.canary_release import CANARY_ARM, PRODUCTION_ARM, SHADOW
from training.fast_scorer import Columns

logger = logging.getLogger(__name__)

ANSWER_DECIMALS = 6  # probabilities are answered and logged rounded to this many decimals
# From this many rows numpy's per-call set-up costs less than rounding one value at a time.
VECTOR_ROUNDING_ROWS = 16


@dataclass(frozen=True)
class Scored:
    """One scored row."""

    request_id: str
    probability_bad: float
    decision: str
    inputs: dict[str, Any]


@dataclass(frozen=True)
class ScoredRows:
    """The scored rows of one request, field by field (one entry per row in each list): a
    1,000-row batch is answered and logged without an object per row."""

    request_ids: list[str]
    probabilities: list[float]
    decisions: list[str]
    rows: list[dict[str, Any]]
    arm: str = PRODUCTION_ARM  # which arm answered (the whole request is one arm's)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Scored:
        return Scored(self.request_ids[index], self.probabilities[index],
                      self.decisions[index], self.rows[index])

    def predictions(self) -> list[dict[str, Any]]:
        """The rows as the API answers them."""
        return [{"request_id": request_id, "probability_bad": probability,
                 "decision": decision} for request_id, probability, decision
                in zip(self.request_ids, self.probabilities, self.decisions)]


def current_model() -> LoadedModel:
    """The serving model, or a 503 ApiError when none is loaded."""
    return serving_model(service())


def serving_model(state: Service) -> LoadedModel:
    """The serving model of `state`, or a 503 ApiError when none is loaded."""
    model = state.holder.get()
    if model is None:
        raise ApiError(503, "No verified model is loaded yet; try again shortly.")
    return model


def row_request_ids(prediction_id: str, count: int, batch: bool) -> list[str]:
    """One id per row: the issued id for a single row, `<id>-<n>` within a batch (32 hex
    digits, a dash and the index: unique, and far under the 128-character id limit)."""
    return [prediction_id] if not batch else [f"{prediction_id}-{n}" for n in range(count)]


def rounded_probabilities(probabilities: np.ndarray) -> list[float]:
    """Each probability exactly as round(p, ANSWER_DECIMALS) gives it, as Python floats."""
    probabilities = np.asarray(probabilities, dtype=np.float64)  # the scaling's precision
    values = probabilities.tolist()
    if len(values) < VECTOR_ROUNDING_ROWS:
        return [round(p, ANSWER_DECIMALS) for p in values]
    scale = 10.0 ** ANSWER_DECIMALS
    scaled = probabilities * scale
    nearest = np.rint(scaled)
    result = (nearest / scale).tolist()
    # The product p * scale is within one unit in its last place of the exact one, so the
    # nearest integer is round()'s (exact decimal rounding) except next to a half, where
    # round() itself decides; dividing that integer back is round()'s nearest float.
    for index in np.flatnonzero(0.5 - np.abs(scaled - nearest) < 1e-6).tolist():
        result[index] = round(values[index], ANSWER_DECIMALS)
    return result


def answer_request_body(state: Service, data: bytes, max_batch_size: int,
                        trace_id: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The scoring route's answer to a request body read whole: its JSON body and headers;
    ApiError 400 (not JSON), 422 (not the schema) or 503. A large body is parsed, scored
    and logged under the worker's gate (app/scoring_gate.py), one at a time."""
    with state.scoring_gate.admit(len(data)):
        try:
            valid = validate_request(json_body.document(data), max_batch_size)
        except ValidationFailed as error:
            raise invalid_fields(error.fields) from None
        return answer_prediction(state, valid, trace_id)


def answer_prediction(state: Service, valid: ScoringRequest,
                      trace_id: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The scoring route's answer to a valid request: its JSON body and headers, under a
    prediction id issued here (a client's X-Request-ID, `trace_id`, only traces)."""
    prediction_id = new_request_id()
    model, scored = score_rows(state, valid.rows, prediction_id, valid.batch, valid.columns,
                               trace_id)
    return ({"request_id": prediction_id, "model_version": model.version, "arm": scored.arm,
             "threshold": model.threshold, "predictions": scored.predictions()},
            {MODEL_VERSION_HEADER: model.version, MODEL_ARM_HEADER: scored.arm})


def score_rows(state: Service, rows: list[dict[str, Any]], prediction_id: str, batch: bool,
               columns: Columns | None = None,
               trace_id: str | None = None) -> tuple[LoadedModel, ScoredRows]:
    """Score rows under `prediction_id` (issued by `new_request_id()`, never a client's)
    with the arm the request belongs to; log every one, count them, feed the drift window.
    `columns`: the rows field by field, when validation read them so. `trace_id`: the
    request's X-Request-ID (NGINX's or the client's), logged with each row and routing the
    request to an arm, so that a client retrying with it gets the same arm."""
    production = serving_model(state)
    canary = state.canary.active()
    answer, canary_error = None, ""
    if canary is not None and canary.release.answers \
            and canary.release.routes_to_canary(trace_id or prediction_id):
        answer, canary_error = _score_canary(state, canary, rows, columns)
    if answer is None:
        started = time.perf_counter()
        probabilities = production.predict_proba_bad_rows(rows, columns)
        answer = _Scoring(production, PRODUCTION_ARM, probabilities,
                          time.perf_counter() - started)
    shadow = None
    if canary is not None and not canary.release.answers:
        shadow, canary_error = _score_canary(state, canary, rows, columns)
    model = answer.model
    decisions = model.decide(answer.probabilities)
    scored = ScoredRows(row_request_ids(prediction_id, len(rows), batch),
                        rounded_probabilities(answer.probabilities), decisions, rows, answer.arm)
    _log(state, answer, scored, trace_id, _shadow_fields(canary, shadow, canary_error))
    state.metrics.rows_decided(decisions)
    state.metrics.arm_scored(model.version, answer.arm, answer.seconds, scored.probabilities)
    if shadow is not None:
        state.metrics.arm_scored(shadow.model.version, SHADOW, shadow.seconds,
                                 shadow.probabilities.tolist())
    state.drift.add(rows, production.card["reference"])
    return model, scored


@dataclass(frozen=True)
class _Scoring:
    """One model's probabilities for a request's rows, and the time they took."""

    model: LoadedModel
    arm: str
    probabilities: np.ndarray
    seconds: float


def _score_canary(state: Service, canary: ActiveCanary, rows: list[dict[str, Any]],
                  columns: Columns | None) -> tuple[_Scoring | None, str]:
    """The canary's scoring, or None and why it failed; its guard counts either."""
    started = time.perf_counter()
    try:
        probabilities = np.asarray(canary.model.predict_proba_bad_rows(rows, columns),
                                   dtype=float)
        if probabilities.shape != (len(rows),) or not np.all(
                (probabilities >= 0.0) & (probabilities <= 1.0)):
            raise ValueError(f"scored {len(rows)} rows as {probabilities.shape[0]} values, "
                             "not one probability in [0, 1] each")
    except Exception as error:  # noqa: BLE001 - whatever breaks, production answers
        state.metrics.canary_failures.labels(version=canary.release.version).inc()
        state.canary.record(canary, None, error)
        return None, f"{type(error).__name__}: {error}"[:300]
    seconds = time.perf_counter() - started
    state.canary.record(canary, seconds * 1000)
    return _Scoring(canary.model, CANARY_ARM, probabilities, seconds), ""


def _shadow_fields(canary: ActiveCanary | None, shadow: _Scoring | None,
                   error: str) -> list[dict[str, Any]] | dict[str, Any] | None:
    """What each row's log line says of the canary beside the answer: its shadow answer
    (one dict per row), or the failure that production answered instead (one for all)."""
    if canary is None:
        return None
    if error:
        return {"canary_error": {"model_version": canary.release.version, "error": error}}
    if shadow is None:
        return None
    version, milliseconds = shadow.model.version, round(shadow.seconds * 1000, 3)
    probabilities = rounded_probabilities(shadow.probabilities)
    return [{"shadow": {"model_version": version, "probability_bad": probability,
                        "decision": decision, "scoring_ms": milliseconds}}
            for probability, decision in zip(probabilities,
                                             shadow.model.decide(shadow.probabilities))]


def _log(state: Service, answer: _Scoring, scored: ScoredRows, trace_id: str | None,
         extra: list[dict[str, Any]] | dict[str, Any] | None) -> None:
    """Append one line per row; when that fails (a full disk), count it and answer 503:
    a prediction the log does not hold is never answered (drift, feedback, retraining)."""
    # Once per request, not per row. trace_id: for following the request through the access
    # logs; the request_id is the service's.
    time_now, version = utc_now(), answer.model.version
    milliseconds = round(answer.seconds * 1000, 3)
    records = [{"time": time_now, "request_id": request_id, "trace_id": trace_id,
                "inputs": inputs,
                "output": {"probability_bad": probability, "decision": decision},
                "model_version": version, "arm": answer.arm, "scoring_ms": milliseconds}
               for request_id, probability, decision, inputs
               in zip(scored.request_ids, scored.probabilities, scored.decisions, scored.rows)]
    if isinstance(extra, dict):
        for record in records:
            record.update(extra)
    elif extra is not None:
        for record, fields in zip(records, extra):
            record.update(fields)
    try:
        state.prediction_log.append(records)
    except OSError as error:
        state.metrics.prediction_log_failures.inc()
        logger.error("could not write %d line(s) to the prediction log %s: %s",
                     len(records), state.prediction_log.path, error)
        raise ApiError(503, "The prediction could not be recorded; try again shortly.") \
            from None
