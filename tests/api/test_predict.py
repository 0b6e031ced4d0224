"""Scoring through POST /api/v1/predict: single applicants, batches, request ids."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask.testing import FlaskClient

from app.request_id import is_sane
from training.artifact import LoadedModel
from training.schema import PROTECTED, feature_names


def expected_probability(model: LoadedModel, row: dict[str, Any]) -> float:
    """The model's own probability of bad risk for one row, rounded like the API."""
    return round(float(model.predict_proba_bad(pd.DataFrame([row],
                                                            columns=feature_names()))[0]), 6)


def test_predict_single_applicant_returns_probability_decision_and_version(
        client: FlaskClient, applicant: dict[str, Any], trained_model: LoadedModel) -> None:
    response = client.post("/api/v1/predict", json=applicant)
    assert response.status_code == 200
    body = response.get_json()
    (prediction,) = body["predictions"]
    assert prediction["probability_bad"] == pytest.approx(
        expected_probability(trained_model, applicant))
    assert prediction["decision"] == trained_model.decide([prediction["probability_bad"]])[0]
    assert body["threshold"] == trained_model.threshold
    assert prediction["request_id"] == body["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])  # issued by the service


def test_predict_reports_the_registry_version_of_the_serving_model(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    version = client.get("/readyz").get_json()["model_version"]
    assert client.post("/api/v1/predict", json=applicant).get_json()["model_version"] == version


def test_predict_batch_returns_one_prediction_per_instance_in_order(
        client: FlaskClient, applicant: dict[str, Any], trained_model: LoadedModel) -> None:
    risky = {**applicant, "duration": 72, "amount": 18000, "status": "< 0 DM"}
    response = client.post("/api/v1/predict", json={"instances": [applicant, risky, applicant]})
    assert response.status_code == 200
    body = response.get_json()
    probabilities = [p["probability_bad"] for p in body["predictions"]]
    assert probabilities == pytest.approx([expected_probability(trained_model, row)
                                           for row in (applicant, risky, applicant)])
    ids = [p["request_id"] for p in body["predictions"]]
    assert ids == [f"{body['request_id']}-{n}" for n in range(3)]


def test_predict_accepts_a_batch_of_exactly_the_maximum_size(
        make_app: Any, applicant: dict[str, Any]) -> None:
    client = make_app(MAX_BATCH_SIZE=5).test_client()
    response = client.post("/api/v1/predict", json={"instances": [applicant] * 5})
    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == 5


def test_predict_accepts_protected_fields_but_does_not_score_with_them(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    without = client.post("/api/v1/predict", json=applicant).get_json()
    for values in zip(*(column.categories for column in PROTECTED)):
        with_protected = {**applicant, **{c.name: v for c, v in zip(PROTECTED, values)}}
        response = client.post("/api/v1/predict", json=with_protected)
        assert response.status_code == 200
        assert response.get_json()["predictions"][0]["probability_bad"] == \
            without["predictions"][0]["probability_bad"]


def test_predict_treats_null_protected_fields_as_absent(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    payload = {**applicant, **{column.name: None for column in PROTECTED}}
    assert client.post("/api/v1/predict", json=payload).status_code == 200


def test_predict_echoes_a_sane_incoming_request_id_but_never_uses_it_as_the_prediction_id(
        client: FlaskClient, applicant: dict[str, Any], prediction_log: Path) -> None:
    response = client.post("/api/v1/predict", json=applicant,
                           headers={"X-Request-ID": "edge-4f2a.17:9"})
    assert response.headers["X-Request-ID"] == "edge-4f2a.17:9"
    prediction_id = response.get_json()["predictions"][0]["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", prediction_id)
    (record,) = [json.loads(line) for line in prediction_log.read_text().splitlines()]
    assert (record["request_id"], record["trace_id"]) == (prediction_id, "edge-4f2a.17:9")


def test_batch_row_ids_stay_within_the_id_limit_and_never_collide(
        make_app: Any, applicant: dict[str, Any]) -> None:
    client = make_app(MAX_BATCH_SIZE=1000, MAX_PREDICT_BYTES=2 * 1024 * 1024).test_client()
    requests = [({"instances": [applicant] * 1000}, "x" * 128),  # the longest sane id
                ({"instances": [applicant] * 2}, "shared"),  # rows shared-0, shared-1 once
                (applicant, "shared-0")]
    ids = [prediction["request_id"] for payload, trace in requests
           for prediction in client.post("/api/v1/predict", json=payload,
                                         headers={"X-Request-ID": trace}
                                         ).get_json()["predictions"]]
    assert all(is_sane(request_id) for request_id in ids)
    assert len(set(ids)) == len(ids) == 1003


@pytest.mark.parametrize("incoming", ["has space", "quote\"d", "x" * 129, "-leading-dash",
                                      "ünïcode", ""])
def test_predict_replaces_an_unsafe_incoming_request_id(
        client: FlaskClient, applicant: dict[str, Any], incoming: str) -> None:
    response = client.post("/api/v1/predict", json=applicant,
                           headers={"X-Request-ID": incoming})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] != incoming
    assert len(response.headers["X-Request-ID"]) == 32


def test_predict_accepts_json_with_a_charset_parameter(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    response = client.post("/api/v1/predict", data=json.dumps(applicant),
                           content_type="application/json; charset=utf-8")
    assert response.status_code == 200
