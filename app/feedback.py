"""Who may report outcomes, and for which predictions: feedback steers retraining.

A caller proves itself with `Authorization: Bearer <FEEDBACK_TOKEN>` (compared in constant
time). An outcome is accepted only for a request id this service issued and logged in the
prediction log, and only once: the first answer stands, across every worker (the check and
the append happen under one lock file beside the feedback log).
"""

from __future__ import annotations

import hmac
from typing import Any

from app.prediction_log import JsonLinesLog, LoggedIds, exclusive, utc_now

AUTH_SCHEME = "bearer"


class UnknownPrediction(LookupError):
    """The request id names no prediction in the prediction log."""


class AlreadyAnswered(LookupError):
    """An outcome was already recorded for this request id."""


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header carries `token` as a bearer token (constant time)."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != AUTH_SCHEME or not token:
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


class FeedbackLedger:
    """Records true outcomes: one per issued request id, first write wins."""

    def __init__(self, prediction_log: JsonLinesLog, feedback_log: JsonLinesLog) -> None:
        self.log = feedback_log
        self.issued = LoggedIds(prediction_log.path)
        self.answered = LoggedIds(feedback_log.path)

    def record(self, request_id: str, outcome: str) -> dict[str, Any]:
        """Append the outcome and return the record; UnknownPrediction, AlreadyAnswered, or
        OSError when the log cannot be written."""
        if request_id not in self.issued:
            raise UnknownPrediction(request_id)
        with exclusive(self.log.path, "answer"):
            if request_id in self.answered:
                raise AlreadyAnswered(request_id)
            record = {"time": utc_now(), "request_id": request_id, "outcome": outcome}
            self.log.append([record])
            self.answered.add(request_id)
        return record
