"""Production monitoring: is retraining needed, given what the service saw and learned?

Reads a bounded window of the service's prediction log (JSON lines) and of the feedback log
(true outcomes by request id): the newest lines across the current and the rotated files,
read from their ends, never whole files. It asks for retraining when the recent inputs
drifted from the training reference, or when live performance on labelled requests fell
under the gate's floor.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from training.config import TrainingConfig
from training.drift import drift_report
from training.evaluate import classification_metrics
from training.jsonlines import read_json_lines
from training.schema import INPUTS, POSITIVE_LABEL

# How long the remote trigger may take to answer before the monitor reports Jenkins down.
TRIGGER_TIMEOUT_SECONDS = 30.0
# The longest cause (and error body) passed on: Jenkins shows the cause on the build page.
TRIGGER_TEXT_LIMIT = 200

logger = logging.getLogger(__name__)


@dataclass
class MonitorDecision:
    """Whether to retrain, and the evidence for it."""

    retrain: bool
    reasons: list[str]
    window_rows: int
    drift: dict[str, Any] | None = None
    live: dict[str, Any] | None = None
    actions: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)  # requests per model version

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, written to reports/monitor.json."""
        return {"retrain": self.retrain, "reasons": self.reasons,
                "window_rows": self.window_rows, "versions": self.versions,
                "drift": self.drift, "live": self.live, "actions": self.actions}


def prediction_frame(records: list[dict[str, Any]], window: int) -> pd.DataFrame:
    """The last `window` logged predictions: inputs, request id, probability and the model
    version that answered."""
    rows = [{**record["inputs"], "request_id": record.get("request_id"),
             "probability_bad": (record.get("output") or {}).get("probability_bad"),
             "model_version": record.get("model_version")}
            for record in records[-window:] if isinstance(record.get("inputs"), dict)]
    columns = [c.name for c in INPUTS] + ["request_id", "probability_bad", "model_version"]
    return pd.DataFrame(rows).reindex(columns=columns)


def live_performance(predictions: pd.DataFrame, feedback: list[dict[str, Any]],
                     threshold: float, version: str | None = None) -> dict[str, Any] | None:
    """Metrics on the logged predictions whose true outcome came back, if any did; with
    `version`, only on that model's own predictions (a newly promoted model must not be
    blamed for its predecessor's mistakes)."""
    outcomes = {item["request_id"]: item["outcome"] for item in feedback
                if "request_id" in item and item.get("outcome") in ("good", "bad")}
    if version is not None:
        predictions = predictions[predictions["model_version"] == version]
    labelled = predictions[predictions["request_id"].isin(outcomes)]
    labelled = labelled[labelled["probability_bad"].notna()]
    if labelled.empty:
        return None
    is_bad = labelled["request_id"].map(outcomes).eq(POSITIVE_LABEL).to_numpy()
    return classification_metrics(is_bad, labelled["probability_bad"].to_numpy(dtype=float),
                                  threshold)


def assess(log_path: Path, feedback_path: Path, card: dict[str, Any],
           config: TrainingConfig) -> MonitorDecision:
    """Decide whether the production model needs retraining, with the reasons."""
    predictions = prediction_frame(read_json_lines(log_path, config.monitor_window_rows),
                                   config.monitor_window_rows)
    reasons: list[str] = []
    decision = MonitorDecision(retrain=False, reasons=reasons, window_rows=len(predictions))
    decision.versions = {str(k): int(v) for k, v in
                         predictions["model_version"].value_counts().items()}
    if len(predictions) >= config.monitor_min_rows:
        report = drift_report(predictions, card["reference"], config.drift_psi_threshold)
        decision.drift = report.to_dict()
        if report.drifted:
            decision.retrain = True
            worst = max(report.features, key=lambda f: f.psi)
            reasons.append(f"input drift in {', '.join(report.drifted)} over the last "
                           f"{len(predictions)} requests (worst: {worst.feature} "
                           f"PSI {worst.psi:.3f} >= {config.drift_psi_threshold})")
        else:
            reasons.append(f"no input drift over the last {len(predictions)} requests")
    else:
        reasons.append(f"only {len(predictions)} logged requests; drift is judged from "
                       f"{config.monitor_min_rows}")
    feedback = read_json_lines(feedback_path, config.monitor_window_feedback)
    live = live_performance(predictions, feedback, card["threshold"], card.get("version"))
    decision.live = live
    if live is None or live["rows"] < config.monitor_min_feedback:
        reasons.append(f"{0 if live is None else live['rows']} labelled outcomes of model "
                       f"{card.get('version')}; live performance is judged from "
                       f"{config.monitor_min_feedback}")
    else:
        under = [f"{name} {live[name]:.3f} < {floor}" for name, floor in
                 (("roc_auc", config.floor_roc_auc), ("recall_bad", config.floor_recall_bad))
                 if live[name] is not None and not np.isnan(live[name]) and live[name] < floor]
        if under:
            decision.retrain = True
            reasons.append(f"live performance on {live['rows']} labelled requests under the "
                           f"floor: {'; '.join(under)}")
        else:
            reasons.append(f"live performance on {live['rows']} labelled requests holds")
    return decision


def trigger_jenkins(reason: str, environ: dict[str, str] | None = None) -> str:
    """Ask the Jenkins job to run with RETRAIN=true; return Jenkins's queue location."""
    environ = dict(os.environ if environ is None else environ)
    url = environ.get("JENKINS_TRIGGER_URL")
    if not url:
        raise ValueError("JENKINS_TRIGGER_URL is not set (the job's buildWithParameters URL)")
    auth = None
    if environ.get("JENKINS_USER") and environ.get("JENKINS_API_TOKEN"):
        auth = (environ["JENKINS_USER"], environ["JENKINS_API_TOKEN"])
    params = {"RETRAIN": "true", "cause": reason[:TRIGGER_TEXT_LIMIT]}
    if environ.get("JENKINS_TRIGGER_TOKEN"):
        params["token"] = environ["JENKINS_TRIGGER_TOKEN"]
    try:
        response = requests.post(url, params=params, auth=auth,
                                 timeout=TRIGGER_TIMEOUT_SECONDS)
    except requests.RequestException as error:
        raise ValueError(f"cannot reach Jenkins at {url}: {error}") from None
    if response.status_code not in (200, 201):
        raise ValueError(f"Jenkins answered HTTP {response.status_code} to {url}: "
                         f"{response.text[:TRIGGER_TEXT_LIMIT]}")
    return response.headers.get("Location", url)
