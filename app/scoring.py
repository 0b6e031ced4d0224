"""Score validated rows with the serving model, then log, count and watch them.

Views call `score_rows`; it holds one model reference for the whole request, so a swap
in the middle never mixes two versions in one answer.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from flask import g

from app.errors import ApiError
from app.prediction_log import utc_now
from app.service import Service, service
from training.artifact import LoadedModel
from training.fast_scorer import Columns

logger = logging.getLogger(__name__)


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
    model = service().holder.get()
    if model is None:
        raise ApiError(503, "No verified model is loaded yet; try again shortly.")
    return model


def row_request_ids(prediction_id: str, count: int, batch: bool) -> list[str]:
    """One id per row: the issued id for a single row, `<id>-<n>` within a batch (32 hex
    digits, a dash and the index: unique, and far under the 128-character id limit)."""
    return [prediction_id] if not batch else [f"{prediction_id}-{n}" for n in range(count)]


def score_rows(rows: list[dict[str, Any]], prediction_id: str, batch: bool,
               columns: Columns | None = None) -> tuple[LoadedModel, ScoredRows]:
    """Score rows under `prediction_id` (issued by `new_request_id()`, never a client's);
    log every one, count them, feed the drift window. `columns`: the rows field by field,
    when validation read them so."""
    state = service()
    model = current_model()
    probabilities = model.predict_proba_bad_rows(rows, columns)
    decisions = model.decide(probabilities)
    # tolist(): Python floats at once, not one numpy scalar per row; the same rounding.
    scored = ScoredRows(row_request_ids(prediction_id, len(rows), batch),
                        [round(p, 6) for p in probabilities.tolist()], decisions, rows)
    _log(state, model, scored)
    for decision, count in Counter(decisions).items():  # one update per decision, not per row
        state.metrics.predictions.labels(decision=decision).inc(count)
    state.metrics.rows_scored.inc(len(scored))
    state.drift.add(rows, model.card["reference"])
    return model, scored


def _log(state: Service, model: LoadedModel, scored: ScoredRows) -> None:
    """Append one line per row; when that fails (a full disk), count it and answer 503:
    a prediction the log does not hold is never answered (drift, feedback, retraining)."""
    # Once per request, not per row. trace_id: the request's X-Request-ID (NGINX's or the
    # client's), for following it through the access logs; the request_id is the service's.
    time, version, trace_id = utc_now(), model.version, g.get("request_id")
    records = [{"time": time, "request_id": request_id, "trace_id": trace_id, "inputs": inputs,
                "output": {"probability_bad": probability, "decision": decision},
                "model_version": version}
               for request_id, probability, decision, inputs
               in zip(scored.request_ids, scored.probabilities, scored.decisions, scored.rows)]
    try:
        state.prediction_log.append(records)
    except OSError as error:
        state.metrics.prediction_log_failures.inc()
        logger.error("could not write %d line(s) to the prediction log %s: %s",
                     len(records), state.prediction_log.path, error)
        raise ApiError(503, "The prediction could not be recorded; try again shortly.") \
            from None
