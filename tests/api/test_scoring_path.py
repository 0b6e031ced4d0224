"""Which path scores requests is exported, and the Pipeline serves when the fast one is refused."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from flask.testing import FlaskClient

import training.fast_scorer as fast_scorer
from tests.api.conftest import AppFactory, metric_value
from training.artifact import LoadedModel
from training.fast_scorer import FastScorerRefused
from training.schema import feature_names


def test_metrics_say_the_fast_scorer_serves(client: FlaskClient) -> None:
    assert metric_value(client, 'credit_model_scoring_path{path="fast"}') == 1.0
    assert metric_value(client, 'credit_model_scoring_path{path="pipeline"}') == 0.0


def test_a_refused_fast_scorer_leaves_the_pipeline_serving_and_says_so(
        make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, applicant: dict[str, Any],
        trained_model: LoadedModel, caplog: pytest.LogCaptureFixture) -> None:
    def refuse(*args: Any) -> None:
        raise FastScorerRefused("refused by the test")

    monkeypatch.setattr(fast_scorer, "build_fast_scorer", refuse)
    client = make_app().test_client()
    assert metric_value(client, 'credit_model_scoring_path{path="pipeline"}') == 1.0
    assert metric_value(client, 'credit_model_scoring_path{path="fast"}') == 0.0
    assert "no fast scorer: refused by the test" in caplog.text
    response = client.post("/api/v1/predict", json=applicant)
    assert response.status_code == 200
    expected = float(trained_model.predict_proba_bad(
        pd.DataFrame([applicant], columns=feature_names()))[0])
    assert response.get_json()["predictions"][0]["probability_bad"] == round(expected, 6)
