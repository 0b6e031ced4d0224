"""POST /api/v1/feedback: true outcomes by request id, read by the monitor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from training.monitor import live_performance, prediction_frame, read_json_lines


def test_feedback_is_appended_to_the_feedback_log(client: FlaskClient, app: Flask) -> None:
    response = client.post("/api/v1/feedback", json={"request_id": "abc-1", "outcome": "bad"})
    assert response.status_code == 201
    (record,) = read_json_lines(Path(app.config["FEEDBACK_LOG"]))
    assert record["request_id"] == "abc-1" and record["outcome"] == "bad"
    assert set(record) == {"time", "request_id", "outcome"}


def test_feedback_joins_logged_predictions_in_the_monitor(
        client: FlaskClient, app: Flask, applicant: dict[str, Any]) -> None:
    risky = {**applicant, "duration": 72, "amount": 18000, "status": "< 0 DM"}
    body = client.post("/api/v1/predict", json={"instances": [applicant, risky] * 3}).get_json()
    for n, prediction in enumerate(body["predictions"]):
        outcome = "good" if n % 2 == 0 else "bad"
        assert client.post("/api/v1/feedback", json={"request_id": prediction["request_id"],
                                                     "outcome": outcome}).status_code == 201
    predictions = prediction_frame(read_json_lines(Path(app.config["PREDICTION_LOG"])), 1000)
    live = live_performance(predictions, read_json_lines(Path(app.config["FEEDBACK_LOG"])),
                            body["threshold"])
    assert live is not None and live["rows"] == 6


@pytest.mark.parametrize(("payload", "fields"), [
    ({"request_id": "abc"}, {"outcome"}),
    ({"outcome": "good"}, {"request_id"}),
    ({}, {"request_id", "outcome"}),
    ({"request_id": "abc", "outcome": "maybe"}, {"outcome"}),
    ({"request_id": "abc", "outcome": "GOOD"}, {"outcome"}),
    ({"request_id": "abc", "outcome": 1}, {"outcome"}),
    ({"request_id": 12, "outcome": "good"}, {"request_id"}),
    ({"request_id": "has space", "outcome": "good"}, {"request_id"}),
    ({"request_id": "abc\n", "outcome": "good"}, {"request_id"}),
    ({"request_id": "abc", "outcome": "good", "note": "x"}, {"note"}),
    (["abc", "good"], {"body"}),
], ids=["missing-outcome", "missing-request-id", "empty", "unknown-outcome", "uppercase-outcome",
        "numeric-outcome", "numeric-request-id", "unsafe-request-id", "trailing-newline",
        "unknown-field", "array"])
def test_feedback_bad_input_returns_422_naming_the_fields(
        client: FlaskClient, app: Flask, payload: Any, fields: set[str]) -> None:
    response = client.post("/api/v1/feedback", json=payload)
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == fields
    assert not Path(app.config["FEEDBACK_LOG"]).exists()


def test_feedback_malformed_json_returns_400_and_wrong_type_415(client: FlaskClient) -> None:
    assert client.post("/api/v1/feedback", data="{", content_type="application/json"
                       ).status_code == 400
    assert client.post("/api/v1/feedback", data=json.dumps({"request_id": "a", "outcome": "bad"}),
                       content_type="text/plain").status_code == 415


def test_feedback_write_failure_returns_503_and_is_counted(
        make_app: Any, tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    directory.mkdir()
    client = make_app(FEEDBACK_LOG=str(directory)).test_client()
    response = client.post("/api/v1/feedback", json={"request_id": "a", "outcome": "bad"})
    assert response.status_code == 503
    assert "credit_feedback_log_write_failures_total 1.0" in client.get("/metrics").get_data(
        as_text=True)
