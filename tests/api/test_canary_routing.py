"""The canary arm in the app: routing by trace id, shadow scoring, the guard, the metrics."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import AppFactory, metric_value
from tests.canary_models import (CANARY_VERSION, FAULTY_ABOVE_AGE, FAULTY_VERSION, register_faulty,
                                 register_twin, release)
from training.canary_release import MIN_ERRORS, MIN_SCORINGS, arm_position
from training.jsonlines import read_json_lines
from training.registry import Registry


@pytest.fixture
def registry(promoted_registry: Path) -> Registry:
    """The promoted registry, with the trained model again as a gated canary candidate."""
    registry = Registry(promoted_registry)
    register_twin(registry, promoted_registry / registry.production_version())
    return registry


def predict(client: FlaskClient, applicant: dict[str, Any], trace_id: str) -> Any:
    """POST one applicant with a trace id; the response."""
    return client.post("/api/v1/predict", json=applicant, headers={"X-Request-ID": trace_id})


def test_without_a_canary_production_answers_every_request(
        make_app: AppFactory, registry: Registry, applicant: dict[str, Any]) -> None:
    client = make_app().test_client()
    response = predict(client, applicant, "trace-1")
    assert response.status_code == 200
    assert response.get_json()["arm"] == "production"
    assert response.headers["X-Model-Arm"] == "production"
    assert response.headers["X-Model-Version"] == registry.production_version()


def test_the_canary_answers_the_trace_ids_in_its_share_and_says_so(
        make_app: AppFactory, registry: Registry, applicant: dict[str, Any]) -> None:
    release(registry, CANARY_VERSION, share=0.2)
    client = make_app().test_client()
    traces = [f"applicant-{n}" for n in range(300)]
    answers = {trace: predict(client, applicant, trace) for trace in traces}
    for trace, response in answers.items():
        expected = "canary" if arm_position(trace) < 0.2 else "production"
        body = response.get_json()
        assert (body["arm"], response.headers["X-Model-Arm"]) == (expected, expected), trace
        version = CANARY_VERSION if expected == "canary" else registry.production_version()
        assert body["model_version"] == version
    log = read_json_lines(Path(client.application.config["PREDICTION_LOG"]))
    assert {(line["trace_id"], line["arm"], line["model_version"]) for line in log} == {
        (trace, response.get_json()["arm"], response.get_json()["model_version"])
        for trace, response in answers.items()}
    # Neither arm failed: no line says so, nor carries a shadow answer.
    assert all("canary_error" not in line and "shadow" not in line for line in log)


def test_a_retried_trace_id_gets_the_same_arm(
        make_app: AppFactory, registry: Registry, applicant: dict[str, Any]) -> None:
    release(registry, CANARY_VERSION, share=0.5)
    client = make_app().test_client()
    for trace in ("retry-a", "retry-b", "retry-c", "retry-d"):
        arms = {predict(client, applicant, trace).get_json()["arm"] for _ in range(5)}
        assert len(arms) == 1, trace


def test_shadow_scores_every_request_logs_both_and_answers_with_production(
        make_app: AppFactory, registry: Registry, applicant: dict[str, Any]) -> None:
    release(registry, CANARY_VERSION, mode="shadow")
    client = make_app().test_client()
    response = client.post("/api/v1/predict", json={"instances": [applicant] * 3})
    body = response.get_json()
    assert body["arm"] == "production"
    assert body["model_version"] == registry.production_version()
    log = read_json_lines(Path(client.application.config["PREDICTION_LOG"]))
    assert len(log) == 3
    for line, answered in zip(log, body["predictions"]):
        assert line["output"]["probability_bad"] == answered["probability_bad"]
        assert line["shadow"]["model_version"] == CANARY_VERSION
        # The twin is the same model: its shadow answer equals production's.
        assert line["shadow"]["probability_bad"] == answered["probability_bad"]
        assert line["shadow"]["scoring_ms"] >= 0


def test_a_failing_canary_is_answered_by_production_then_dropped_by_the_guard(
        make_app: AppFactory, registry: Registry, applicant: dict[str, Any],
        tmp_path: Path) -> None:
    faulty = register_faulty(registry, registry.root / registry.production_version(), tmp_path)
    release(registry, faulty, share=0.9)
    client = make_app().test_client()
    old = {**applicant, "age": FAULTY_ABOVE_AGE + 5}
    traces = [f"old-{n}" for n in range(200) if arm_position(f"old-{n}") < 0.9]
    answers = [predict(client, old, trace) for trace in traces[:MIN_SCORINGS + 5]]
    assert [r.status_code for r in answers] == [200] * len(answers)
    assert {r.get_json()["arm"] for r in answers} == {"production"}
    log = read_json_lines(Path(client.application.config["PREDICTION_LOG"]))
    failed = [line for line in log if "canary_error" in line]
    # The guard trips on the MIN_SCORINGS-th scoring (MIN_ERRORS failures are needed too):
    # after that, the canary is not even tried.
    assert len(failed) == max(MIN_SCORINGS, MIN_ERRORS)
    assert failed[0]["canary_error"]["model_version"] == FAULTY_VERSION
    assert "cannot encode age" in failed[0]["canary_error"]["error"]
    young = predict(client, applicant, traces[-1])
    assert young.get_json()["arm"] == "production"  # dropped for good in this worker
    assert metric_value(client, f'credit_canary_tripped{{version="{faulty}"}}') == 1.0
    assert metric_value(client, f'credit_canary_failures_total{{version="{faulty}"}}') == \
        float(len(failed))


def test_an_ended_release_stops_the_canary_at_once(
        make_app: AppFactory, registry: Registry, applicant: dict[str, Any]) -> None:
    release(registry, CANARY_VERSION, share=0.99)
    client = make_app().test_client()
    trace = next(f"t{n}" for n in range(100) if arm_position(f"t{n}") < 0.99)
    assert predict(client, applicant, trace).get_json()["arm"] == "canary"
    registry.clear_canary("canary-abort", "test")
    assert predict(client, applicant, trace).get_json()["arm"] == "production"


def test_metrics_count_rows_time_and_bands_per_version_and_arm(
        make_app: AppFactory, registry: Registry, applicant: dict[str, Any]) -> None:
    release(registry, CANARY_VERSION, mode="shadow")
    client = make_app().test_client()
    client.post("/api/v1/predict", json={"instances": [applicant] * 4})
    production = registry.production_version()
    for version, arm in ((production, "production"), (CANARY_VERSION, "shadow")):
        labels = f'arm="{arm}",version="{version}"'  # exposition sorts labels
        assert metric_value(client, f"credit_arm_rows_total{{{labels}}}") == 4.0
        assert metric_value(client, f"credit_arm_scoring_seconds_count{{{labels}}}") == 1.0
        text = client.get("/metrics").get_data(as_text=True)
        bands = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("credit_arm_probability_rows_total{")
                 and f'arm="{arm}"' in line and f'version="{version}"' in line]
        assert bands and sum(bands) == 4.0


def test_readyz_names_the_canary_this_worker_applies(
        make_app: AppFactory, registry: Registry, applicant: dict[str, Any],
        tmp_path: Path) -> None:
    client = make_app().test_client()
    assert client.get("/readyz").get_json()["canary"] is None
    release(registry, CANARY_VERSION, mode="shadow", share=0.3)
    assert client.get("/readyz").get_json()["canary"] == {
        "version": CANARY_VERSION, "mode": "shadow", "share": 0.3}
    registry.clear_canary("canary-abort", "test")
    faulty = register_faulty(registry, registry.root / registry.production_version(), tmp_path)
    release(registry, faulty, share=0.99)
    assert client.get("/readyz").get_json()["canary"]["version"] == faulty
    old = {**applicant, "age": FAULTY_ABOVE_AGE + 5}
    traces = [f"r{n}" for n in range(100) if arm_position(f"r{n}") < 0.99]
    for trace in traces[:MIN_SCORINGS]:
        predict(client, old, trace)
    assert client.get("/readyz").get_json()["canary"] is None  # dropped by the guard


def test_each_arms_scoring_time_is_logged_in_milliseconds_to_the_microsecond(
        make_app: AppFactory, registry: Registry, applicant: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    release(registry, CANARY_VERSION, mode="shadow")
    client = make_app().test_client()
    # The clock readings around production's scoring, then around the shadow's.
    readings = iter([1.0, 1.0123456, 2.0, 2.0456789])
    monkeypatch.setattr("app.scoring.time", SimpleNamespace(perf_counter=lambda: next(readings)))
    body = client.post("/api/v1/predict", json=applicant).get_json()
    [line] = read_json_lines(Path(client.application.config["PREDICTION_LOG"]))
    assert line["scoring_ms"] == 12.346
    [answered] = body["predictions"]
    assert line["shadow"] == {"model_version": CANARY_VERSION, "scoring_ms": 45.679,
                              "probability_bad": answered["probability_bad"],
                              "decision": answered["decision"]}
