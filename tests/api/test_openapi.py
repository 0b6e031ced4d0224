"""The OpenAPI document agrees with training.schema, and its example is a valid request."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app.validation import validate_request
from training.schema import FEATURES, INPUTS, PROTECTED


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    """The served OpenAPI document."""
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_openapi_is_version_3_with_every_route(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.0.")
    assert {"/api/v1/predict", "/api/v1/model", "/api/v1/feedback", "/api/v1/openapi.json",
            "/healthz", "/readyz"} <= set(document["paths"])


def test_openapi_applicant_matches_the_schema_column_by_column(document: dict[str, Any]) -> None:
    applicant = document["components"]["schemas"]["Applicant"]
    assert list(applicant["properties"]) == [c.name for c in INPUTS]
    assert applicant["required"] == [c.name for c in FEATURES]
    assert applicant["additionalProperties"] is False
    for column in INPUTS:
        prop = applicant["properties"][column.name]
        if column.is_numeric:
            assert prop["type"] == "integer"
            assert (prop["minimum"], prop["maximum"]) == (column.minimum, column.maximum)
        else:
            assert prop["type"] == "string"
            assert prop["enum"] == list(column.categories)
    for column in PROTECTED:
        assert "never used for scoring" in applicant["properties"][column.name]["description"]


def test_openapi_batch_limit_is_the_configured_one(make_app: Any) -> None:
    document = make_app(MAX_BATCH_SIZE=7).test_client().get("/api/v1/openapi.json").get_json()
    batch = document["components"]["schemas"]["Batch"]["properties"]["instances"]
    assert batch["maxItems"] == 7


def test_openapi_example_validates_and_scores(client: FlaskClient,
                                              document: dict[str, Any]) -> None:
    example = document["components"]["schemas"]["Applicant"]["example"]
    rows, batch = validate_request(example, max_batch_size=1)
    assert rows == [example] and not batch
    assert client.post("/api/v1/predict", json=example).status_code == 200


def test_openapi_references_resolve(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [v for k, v in node.items() if k == "$ref"] + \
                [r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    found = refs(document)
    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas


def test_openapi_is_served_without_a_model(make_app: Any, tmp_path: Any) -> None:
    client = make_app(MODEL_REGISTRY=str(tmp_path / "empty")).test_client()
    document = client.get("/api/v1/openapi.json").get_json()
    example = document["components"]["schemas"]["Applicant"]["example"]
    validate_request(example, max_batch_size=1)


def test_model_card_is_served_without_the_reference_profile(
        client: FlaskClient, trained_model: Any) -> None:
    card = client.get("/api/v1/model").get_json()
    assert "reference" not in card
    assert card["threshold"] == trained_model.card["threshold"]
    assert card["metrics"] == trained_model.card["metrics"]
    assert card["version"] == client.get("/readyz").get_json()["model_version"]


def test_healthz_is_a_tiny_json_answer(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
