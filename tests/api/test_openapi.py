"""The OpenAPI document agrees with training.schema, and its example is a valid request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.validation import validate_request
from tests.helpers import free_port
from training.alias_follower import AliasFollower, FollowError
from training.registry import Registry
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
    request = validate_request(example, max_batch_size=1)
    assert request.rows == [example] and not request.batch
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


def _strings(node: Any) -> list[str]:
    """Every key and string value inside a JSON document."""
    if isinstance(node, dict):
        return [*map(str, node), *(s for value in node.values() for s in _strings(value))]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []


def test_model_card_publishes_what_clients_need_and_nothing_of_the_training_host(
        client: FlaskClient, trained_model: Any, document: dict[str, Any]) -> None:
    card = client.get("/api/v1/model").get_json()
    assert card["threshold"] == trained_model.card["threshold"]
    assert card["metrics"] == trained_model.card["metrics"]
    assert card["features"] == trained_model.card["features"]
    assert card["version"] == client.get("/readyz").get_json()["model_version"]
    assert card["data"]["sha256"] == trained_model.card["data"]["sha256"]
    # The full card holds the training host's paths (data, registry, reports) and config.
    assert any(text.startswith("/") for text in _strings(trained_model.card))
    assert not [text for text in _strings(card) if text.startswith("/")]
    assert not {"reference", "config", "hyperparameters", "environment"} & set(card)
    schema = document["components"]["schemas"]["ModelCard"]
    assert set(card) <= set(schema["properties"]) and set(schema["required"]) <= set(card)
    assert set(card["data"]) == set(schema["properties"]["data"]["properties"])


def test_model_card_says_the_local_folder_is_the_source_without_a_follower(
        client: FlaskClient) -> None:
    assert client.get("/api/v1/model").get_json()["registry"] == {
        "server": None, "in_step": None, "checked_at": None, "error": None}


def test_model_card_says_the_followed_server_is_unreachable_and_serving_goes_on(
        client: FlaskClient, app: Flask) -> None:
    serving = client.get("/readyz").get_json()["model_version"]
    gone = f"http://ci:s3cret@127.0.0.1:{free_port()}"  # nothing listens there
    follower = AliasFollower(gone, Registry(Path(app.config["MODEL_REGISTRY"])), timeout=5)
    with pytest.raises(FollowError, match="unreachable"):
        follower.sync()
    answer = client.get("/api/v1/model")
    assert answer.status_code == 200 and answer.get_json()["version"] == serving
    registry = answer.get_json()["registry"]
    assert registry["server"] == gone.replace("s3cret", "***")  # never the password
    assert registry["in_step"] is False and "unreachable" in registry["error"]
    assert registry["checked_at"]
    assert client.get("/readyz").status_code == 200


STATUSES_OF_A_JSON_BODY = {"400", "413", "415", "422"}


@pytest.mark.parametrize(("path", "method", "statuses"), [
    ("/api/v1/predict", "post", {"200", "429", "503"} | STATUSES_OF_A_JSON_BODY),
    ("/api/v1/feedback", "post", {"201", "401", "409", "429"} | STATUSES_OF_A_JSON_BODY),
    ("/api/v1/model", "get", {"200", "429", "503"}),
    ("/api/v1/openapi.json", "get", {"200", "429"}),
    ("/healthz", "get", {"200"}), ("/readyz", "get", {"200", "503"}),
])
def test_openapi_documents_every_status_a_route_can_answer(
        document: dict[str, Any], path: str, method: str, statuses: set[str]) -> None:
    """The fuzz test (tests/integration/test_fuzz.py) holds answers to this list."""
    responses = document["paths"][path][method]["responses"]
    every_route = {"405", "502", "503", "504"}
    assert set(responses) == statuses | every_route
    for status, response in responses.items():
        assert "$ref" in str(response.get("content", {})) or status == "200", status


def test_healthz_is_a_tiny_json_answer(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
