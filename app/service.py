"""The per-app service objects, kept in `app.extensions` and reached through `service()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from app.canary import CanaryArm
from app.drift_window import DriftWindow
from app.feedback import FeedbackLedger
from app.metrics import Metrics
from app.model_holder import ModelHolder
from app.prediction_log import JsonLinesLog
from app.scoring_gate import ScoringGate

EXTENSION_KEY = "credit_risk"


@dataclass
class Service:
    """Everything a view needs besides the request: model, logs, metrics, drift window, and
    the turn large scoring requests take."""

    settings: dict[str, Any]
    holder: ModelHolder
    canary: CanaryArm
    metrics: Metrics
    prediction_log: JsonLinesLog
    feedback_log: JsonLinesLog
    drift: DriftWindow
    feedback: FeedbackLedger
    scoring_gate: ScoringGate


def service() -> Service:
    """The service objects of the current app."""
    return current_app.extensions[EXTENSION_KEY]
