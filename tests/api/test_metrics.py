"""GET /metrics: Prometheus text with request, prediction, model and drift series."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask.testing import FlaskClient

from tests.api.conftest import metric_value, wait_for_metric
from tests.conftest import ROOT
from training.config import TrainingConfig
from training.drift import drift_report
from training.schema import FEATURES


def test_metrics_count_requests_by_route_method_and_status(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    client.post("/api/v1/predict", json=applicant)
    client.post("/api/v1/predict", json={})
    client.get("/api/v1/nowhere")
    assert metric_value(client, 'credit_http_requests_total{method="POST",'
                                'route="/api/v1/predict",status="200"}') == 1.0
    assert metric_value(client, 'credit_http_requests_total{method="POST",'
                                'route="/api/v1/predict",status="422"}') == 1.0
    assert metric_value(client, 'credit_http_requests_total{method="GET",'
                                'route="<unmatched>",status="404"}') == 1.0
    assert metric_value(client, 'credit_http_request_duration_seconds_count{method="POST",'
                                'route="/api/v1/predict",status="200"}') == 1.0


def test_metrics_count_predictions_by_decision_and_rows_scored(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    risky = {**applicant, "duration": 72, "amount": 18000, "status": "< 0 DM"}
    body = client.post("/api/v1/predict",
                       json={"instances": [applicant, risky, risky]}).get_json()
    decisions = [p["decision"] for p in body["predictions"]]
    for decision in set(decisions):
        assert metric_value(client, f'credit_predictions_total{{decision="{decision}"}}') == \
            decisions.count(decision)
    assert metric_value(client, "credit_rows_scored_total") == 3.0


def test_rows_fall_in_tenth_wide_bands_per_version_and_arm_across_requests() -> None:
    from app.metrics import Metrics
    metrics = Metrics()
    assert metrics.registry is not None  # tests run single-process: a registry of its own
    metrics.arm_scored("v1", "production", 0.002, [0.0, 0.0999, 0.1, 0.55])
    metrics.arm_scored("v1", "production", 0.003, [0.9, 1.0])
    metrics.arm_scored("v2", "canary", 0.004, [0.1])

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    rows = "credit_arm_probability_rows_total"
    assert value(rows, version="v1", arm="production", band="0.0-0.1") == 2.0
    assert value(rows, version="v1", arm="production", band="0.1-0.2") == 1.0
    assert value(rows, version="v1", arm="production", band="0.5-0.6") == 1.0
    assert value(rows, version="v1", arm="production", band="0.9-1.0") == 2.0  # 1.0 included
    assert value(rows, version="v1", arm="production", band="0.2-0.3") is None
    assert value(rows, version="v2", arm="canary", band="0.1-0.2") == 1.0
    assert value("credit_arm_rows_total", version="v1", arm="production") == 6.0
    assert value("credit_arm_scoring_seconds_count", version="v1", arm="production") == 2.0
    assert value("credit_arm_scoring_seconds_sum", version="v1", arm="production") == \
        pytest.approx(0.005)
    assert value("credit_arm_rows_total", version="v2", arm="canary") == 1.0
    metrics.rows_decided(["approve", "decline", "approve"])
    metrics.rows_decided(["decline"])
    assert value("credit_predictions_total", decision="approve") == 2.0
    assert value("credit_predictions_total", decision="decline") == 2.0
    assert value("credit_rows_scored_total") == 4.0


def test_metrics_expose_the_serving_model_version(client: FlaskClient) -> None:
    version = client.get("/readyz").get_json()["model_version"]
    assert metric_value(client, f'credit_model_info{{version="{version}"}}') == 1.0
    assert metric_value(client, "credit_model_loads_total") == 1.0


def test_metrics_start_failure_counters_at_zero(client: FlaskClient) -> None:
    for name in ("credit_model_reload_failures_total",
                 "credit_prediction_log_write_failures_total"):
        assert metric_value(client, name) == 0.0


def test_metrics_are_prometheus_text(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "# TYPE credit_http_requests_total counter" in response.get_data(as_text=True)


def test_metrics_publish_feature_drift_of_the_recent_window(
        make_app: Any, applicant: dict[str, Any], trained_model: Any) -> None:
    client = make_app(DRIFT_WINDOW=20, DRIFT_EVERY=10, DRIFT_MIN_ROWS=10).test_client()
    rows = [{**applicant, "amount": 1000 + 500 * n, "age": 20 + n} for n in range(10)]
    client.post("/api/v1/predict", json={"instances": rows[:9]})
    assert metric_value(client, 'credit_feature_drift_psi{feature="amount"}') is None, \
        "not computed before DRIFT_EVERY rows"
    client.post("/api/v1/predict", json={"instances": rows[9:]})
    # The drift thread publishes the row count after the PSI of every input.
    assert wait_for_metric(client, "credit_drift_window_rows", 10.0)
    expected = drift_report(pd.DataFrame(rows), trained_model.card["reference"],
                            TrainingConfig().drift_psi_threshold)
    for item in expected.features:
        assert metric_value(client, f'credit_feature_drift_psi{{feature="{item.feature}"}}') \
            == pytest.approx(item.psi)
    assert len(expected.features) == len(FEATURES)


def test_metrics_drift_window_keeps_only_the_last_rows(
        make_app: Any, applicant: dict[str, Any], trained_model: Any) -> None:
    client = make_app(DRIFT_WINDOW=5, DRIFT_EVERY=5, DRIFT_MIN_ROWS=5).test_client()
    old = [{**applicant, "age": 70}] * 5
    new = [{**applicant, "age": 25}] * 5
    client.post("/api/v1/predict", json={"instances": old})
    client.post("/api/v1/predict", json={"instances": new})
    expected = drift_report(pd.DataFrame(new), trained_model.card["reference"], 0.25)
    age = next(item.psi for item in expected.features if item.feature == "age")
    assert wait_for_metric(client, 'credit_feature_drift_psi{feature="age"}',
                           pytest.approx(age))


MULTIPROCESS_SCRIPT = """
import json, sys
from app import create_app
app = create_app(json.loads(sys.argv[1]))
client = app.test_client()
client.post("/api/v1/predict", json=json.loads(sys.argv[2]))
sys.stdout.write(client.get("/metrics").get_data(as_text=True))
"""


def test_metrics_merge_worker_files_in_prometheus_multiprocess_mode(
        tmp_path: Path, promoted_registry: Path, applicant: dict[str, Any]) -> None:
    """Under Gunicorn (PROMETHEUS_MULTIPROC_DIR set before import) every process writes
    its samples to files; /metrics in any process shows the sum of all of them."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    config = {"MODEL_REGISTRY": str(promoted_registry),
              "PREDICTION_LOG": str(tmp_path / "predictions.jsonl")}
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    outputs = [subprocess.run([sys.executable, "-c", MULTIPROCESS_SCRIPT, json.dumps(config),
                               json.dumps(applicant)], cwd=ROOT, env=env, capture_output=True,
                              text=True, check=True, timeout=300).stdout
               for _ in range(2)]
    assert "credit_rows_scored_total 1.0" in outputs[0]
    assert "credit_rows_scored_total 2.0" in outputs[1], "the second process sees both"
    assert any(name.endswith(".db") for name in os.listdir(metrics_dir))
