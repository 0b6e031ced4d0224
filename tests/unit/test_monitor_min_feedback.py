"""Live performance is judged only from `monitor_min_feedback` labelled outcomes: one fewer,
however bad, asks for nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from training.config import TrainingConfig
from training.data import load_dataset
from training.monitor import assess
from training.schema import INPUTS

MIN_FEEDBACK = 20


def wrong_answers(data_file: Path, rows: int, directory: Path) -> tuple[Path, Path]:
    """A prediction log of `rows` answers that are all wrong, and the true outcomes."""
    frame = load_dataset(data_file).iloc[:rows]
    inputs = json.loads(frame[[c.name for c in INPUTS]].to_json(orient="records"))
    labels = list(frame["credit_risk"])
    predictions: list[dict[str, Any]] = [
        {"request_id": f"r{n}", "inputs": row, "model_version": "v1",
         "output": {"probability_bad": 0.0 if label == "bad" else 1.0}}
        for n, (row, label) in enumerate(zip(inputs, labels))]
    feedback = [{"request_id": f"r{n}", "outcome": label} for n, label in enumerate(labels)]
    log, outcomes = directory / "predictions.jsonl", directory / "feedback.jsonl"
    log.write_text("".join(json.dumps(record) + "\n" for record in predictions))
    outcomes.write_text("".join(json.dumps(record) + "\n" for record in feedback))
    return log, outcomes


@pytest.mark.parametrize(("outcomes", "retrain"), [(MIN_FEEDBACK - 1, False),
                                                   (MIN_FEEDBACK, True)])
def test_live_performance_needs_the_minimum_number_of_outcomes(
        tmp_path: Path, data_file: Path, outcomes: int, retrain: bool) -> None:
    log, feedback = wrong_answers(data_file, outcomes, tmp_path)
    config = TrainingConfig(monitor_min_feedback=MIN_FEEDBACK, monitor_min_rows=10_000)
    # Too few requests for drift, so the card needs no reference profile.
    card = {"version": "v1", "threshold": 0.5, "reference": {}}
    decision = assess(log, feedback, card, config)
    assert decision.live is not None and decision.live["rows"] == outcomes
    assert decision.retrain is retrain
    if retrain:
        assert f"live performance on {outcomes} labelled requests under the floor" \
            in decision.reasons[-1]
    else:
        assert decision.reasons[-1].startswith(f"{outcomes} labelled outcomes of model v1")
        assert f"judged from {MIN_FEEDBACK}" in decision.reasons[-1]
