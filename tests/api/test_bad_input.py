"""Every class of bad input gets the right 4xx status and a JSON body naming the problem.

Cases are generated from training.schema, so a new column brings its own cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.errors import MAX_FIELD_NAME_CHARS, MAX_REPORTED_FIELDS
from app.validation import describe
from training.schema import FEATURES, INPUTS, PROTECTED

Mutation = Callable[[dict[str, Any]], Any]

NUMERIC = [c for c in INPUTS if c.is_numeric]
CATEGORICAL = [c for c in INPUTS if not c.is_numeric]


def _without(name: str) -> Mutation:
    return lambda row: {k: v for k, v in row.items() if k != name}


def _with(name: str, value: Any) -> Mutation:
    return lambda row: {**row, name: value}


def _cases() -> list[Any]:
    """(mutation of a valid applicant, the field that must be named) for each bad input."""
    cases = []
    for column in FEATURES:
        cases.append(pytest.param(_without(column.name), column.name,
                                  id=f"missing-{column.name}"))
        cases.append(pytest.param(_with(column.name, None), column.name,
                                  id=f"null-{column.name}"))
    for column in NUMERIC:
        for label, value in (("below-minimum", column.minimum - 1),
                             ("above-maximum", column.maximum + 1),
                             ("bool", True), ("float", column.minimum + 0.5),
                             ("integral-float", float(column.minimum)),
                             ("string-number", str(column.minimum)), ("array", [1]),
                             ("object", {"value": 1})):
            cases.append(pytest.param(_with(column.name, value), column.name,
                                      id=f"{label}-{column.name}"))
    for column in CATEGORICAL:
        for label, value in (("unknown-category", "no such category"),
                             ("case-changed-category", column.categories[0].upper() + "!"),
                             ("integer", 1), ("bool", False),
                             ("array", list(column.categories[:1]))):
            cases.append(pytest.param(_with(column.name, value), column.name,
                                      id=f"{label}-{column.name}"))
    cases.append(pytest.param(_with("favourite_colour", "blue"), "favourite_colour",
                              id="unknown-field"))
    cases.append(pytest.param(_with("credit_risk", "good"), "credit_risk",
                              id="target-is-not-an-input"))
    return cases


def assert_names_fields(response: Any, status: int, *fields: str) -> dict[str, Any]:
    """The response has `status`, is JSON and names each of `fields`."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] and body["message"]
    for field in fields:
        assert field in body.get("fields", {}), body
        assert body["fields"][field]
    return body


@pytest.mark.parametrize(("mutate", "field"), _cases())
def test_predict_bad_field_returns_422_naming_the_field(
        client: FlaskClient, applicant: dict[str, Any], mutate: Mutation, field: str) -> None:
    response = client.post("/api/v1/predict", json=mutate(applicant))
    body = assert_names_fields(response, 422, field)
    assert body["error"] == "validation_failed"
    assert set(body["fields"]) == {field}, "only the bad field is named"


@pytest.mark.parametrize(("mutate", "field"), _cases())
def test_predict_bad_field_in_a_batch_returns_422_naming_its_row(
        client: FlaskClient, applicant: dict[str, Any], mutate: Mutation, field: str) -> None:
    payload = {"instances": [applicant, mutate(applicant)]}
    response = client.post("/api/v1/predict", json=payload)
    assert_names_fields(response, 422, f"instances[1].{field}")


@pytest.mark.parametrize("column", CATEGORICAL[:1] + [c for c in PROTECTED], ids=lambda c: c.name)
def test_predict_unknown_category_message_lists_the_allowed_values(
        client: FlaskClient, applicant: dict[str, Any], column: Any) -> None:
    response = client.post("/api/v1/predict", json={**applicant, column.name: "nope"})
    message = assert_names_fields(response, 422, column.name)["fields"][column.name]
    allowed = ", ".join(f"'{category}'" for category in column.categories)
    assert message == f"must be one of {allowed} (got 'nope')"


@pytest.mark.parametrize(("value", "kind"), [
    ({"years": 30}, "object"), ([30], "array"), ("30", "string"), (30.5, "number"),
    (True, "boolean")])
def test_a_value_of_the_wrong_json_type_is_named_by_its_type(
        client: FlaskClient, applicant: dict[str, Any], value: Any, kind: str) -> None:
    response = client.post("/api/v1/predict", json={**applicant, "age": value})
    message = assert_names_fields(response, 422, "age")["fields"]["age"]
    assert message.endswith(f" (got {kind})") and message.startswith("must be an integer")


def test_an_unknown_category_is_quoted_and_one_over_40_characters_is_cut(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    column = CATEGORICAL[0]
    for given, shown in (("n" * 40, repr("n" * 40)), ("n" * 41, repr("n" * 40 + "...")),
                         (7, "number")):
        response = client.post("/api/v1/predict", json={**applicant, column.name: given})
        message = assert_names_fields(response, 422, column.name)["fields"][column.name]
        assert message == f"{describe(column)} (got {shown})"


def test_predict_out_of_range_message_gives_the_bounds(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    response = client.post("/api/v1/predict", json={**applicant, "amount": 5})
    body = assert_names_fields(response, 422, "amount")
    assert body["fields"]["amount"].startswith("must be an integer between 100 and 100000")


def test_predict_names_every_bad_field_at_once(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    payload = {**applicant, "amount": -1, "age": True, "purpose": "yacht", "extra": 1}
    del payload["duration"]
    response = client.post("/api/v1/predict", json=payload)
    body = assert_names_fields(response, 422, "amount", "age", "purpose", "extra", "duration")
    assert len(body["fields"]) == 5


def test_predict_empty_object_names_every_required_field(client: FlaskClient) -> None:
    body = assert_names_fields(client.post("/api/v1/predict", json={}), 422,
                               *(c.name for c in FEATURES))
    assert not set(body["fields"]) & {c.name for c in PROTECTED}, "protected are optional"


@pytest.mark.parametrize("payload", [[], [{}], 5, "applicant", None, True],
                         ids=["array", "array-of-objects", "number", "string", "null", "bool"])
def test_predict_non_object_json_returns_422_naming_the_body(
        client: FlaskClient, payload: Any) -> None:
    response = client.post("/api/v1/predict", data=json.dumps(payload),
                           content_type="application/json")
    assert_names_fields(response, 422, "body")


@pytest.mark.parametrize(("instances", "field"), [
    ([], "instances"), ({}, "instances"), ("rows", "instances"), (None, "instances"),
    ([5], "instances[0]"), ([[]], "instances[0]"),
], ids=["empty", "object", "string", "null", "number-row", "array-row"])
def test_predict_malformed_batch_returns_422(client: FlaskClient, instances: Any,
                                             field: str) -> None:
    response = client.post("/api/v1/predict", json={"instances": instances})
    assert_names_fields(response, 422, field)


def test_predict_batch_with_extra_top_level_field_returns_422(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    response = client.post("/api/v1/predict", json={"instances": [applicant], "mode": "x"})
    assert_names_fields(response, 422, "mode")


def test_predict_batch_over_the_limit_returns_422_naming_instances(
        make_app: Any, applicant: dict[str, Any]) -> None:
    client = make_app(MAX_BATCH_SIZE=3).test_client()
    response = client.post("/api/v1/predict", json={"instances": [applicant] * 4})
    body = assert_names_fields(response, 422, "instances")
    assert "at most 3" in body["fields"]["instances"]


@pytest.mark.parametrize("body", [b"", b"   \n", b"{", b'{"amount": }', b"{'single': 1}",
                                  b'{"amount": NaN}', b'{"amount": Infinity}', b"\xff\xfe{",
                                  b"[" * 100_000],
                         ids=["empty", "whitespace", "truncated", "missing-value",
                              "single-quotes", "nan", "infinity", "not-utf8", "deeply-nested"])
def test_predict_malformed_json_returns_400(client: FlaskClient, body: bytes) -> None:
    response = client.post("/api/v1/predict", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "malformed_json"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml",
                                          "text/json"])
def test_predict_wrong_content_type_returns_415(
        client: FlaskClient, applicant: dict[str, Any], content_type: str | None) -> None:
    kwargs = {"content_type": content_type} if content_type else {}
    response = client.post("/api/v1/predict", data=json.dumps(applicant), **kwargs)
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_media_type"


def test_predict_body_over_the_limit_returns_413(make_app: Any,
                                                 applicant: dict[str, Any]) -> None:
    client = make_app(MAX_PREDICT_BYTES=4096).test_client()
    payload = json.dumps({"instances": [applicant] * 20})
    assert len(payload) > 4096
    response = client.post("/api/v1/predict", data=payload, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


FEEDBACK_TOKEN = "a-feedback-token-for-tests"


def _padded(size: int) -> bytes:
    """A JSON document of exactly `size` bytes."""
    return b'{"pad": "' + b"x" * (size - 11) + b'"}'


@pytest.mark.parametrize(("path", "setting"), [("/api/v1/predict", "MAX_PREDICT_BYTES"),
                                               ("/api/v1/feedback", "MAX_FEEDBACK_BYTES")])
def test_each_json_route_has_its_own_body_limit(make_app: Any, path: str,
                                                setting: str) -> None:
    """A body of exactly the limit is read (and judged on its content); one byte more is 413."""
    client = make_app(FEEDBACK_TOKEN=FEEDBACK_TOKEN).test_client()
    auth = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}  # feedback checks it before the body
    limit = client.application.config[setting]
    assert limit < 1024 * 1024, "an API body limit is small, not the old 1 MiB"
    at_limit = client.post(path, data=_padded(limit), content_type="application/json",
                           headers=auth)
    assert at_limit.status_code == 422, at_limit.get_json()
    over = client.post(path, data=_padded(limit + 1), content_type="application/json",
                       headers=auth)
    assert over.status_code == 413
    assert over.get_json()["error"] == "payload_too_large"


def test_the_largest_valid_batch_fits_the_predict_body_limit(client: FlaskClient) -> None:
    """The limit is sized for MAX_BATCH_SIZE applicants at their longest, pretty-printed,
    and no more than twice that."""
    config = client.application.config
    longest = {c.name: (c.maximum if c.is_numeric else max(c.categories, key=len))
               for c in INPUTS}
    batch = json.dumps({"instances": [longest] * config["MAX_BATCH_SIZE"]}, indent=4).encode()
    assert len(batch) <= config["MAX_PREDICT_BYTES"] < 2 * len(batch)
    response = client.post("/api/v1/predict", data=batch, content_type="application/json")
    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == config["MAX_BATCH_SIZE"]


def test_form_body_over_the_default_limit_returns_413(client: FlaskClient) -> None:
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    response = client.post("/", data={"age": "x" * limit})
    assert response.status_code == 413


# --- error bodies stay small whatever the request ------------------------------------------
def _junk_keys(count: int) -> dict[str, int]:
    return {f"k{index}": 0 for index in range(count)}


def test_117k_unknown_keys_get_a_small_422_naming_the_body(client: FlaskClient) -> None:
    """Reproduction of the review: 117,000 unknown keys echoed one by one made a 9 MB 422."""
    payload = json.dumps(_junk_keys(117_000)).encode()
    assert len(payload) > client.application.config["MAX_PREDICT_BYTES"]
    app = client.application
    app.config["MAX_PREDICT_BYTES"] = len(payload)  # what reaches the validator, not the 413
    response = client.post("/api/v1/predict", data=payload, content_type="application/json")
    body = assert_names_fields(response, 422, "body")
    assert len(response.data) < 1024, len(response.data)
    assert "117000 fields" in body["fields"]["body"]
    assert body["field_count"] == 1


@pytest.mark.parametrize("wrap", [lambda row: row, lambda row: {"instances": [row]},
                                  lambda row: {"instances": [{}], **row}],
                         ids=["applicant", "batch-row", "batch-object"])
def test_an_object_with_far_more_keys_than_the_schema_is_refused_whole(
        client: FlaskClient, applicant: dict[str, Any], wrap: Callable[[dict], Any]) -> None:
    payload = wrap({**applicant, **_junk_keys(len(INPUTS) + 25)})
    body = client.post("/api/v1/predict", json=payload).get_json()
    assert body["field_count"] == 1
    [(field, problem)] = body["fields"].items()
    assert field in ("body", "instances[0]") and "fields; at most" in problem


def test_a_few_unknown_keys_are_each_named(client: FlaskClient,
                                           applicant: dict[str, Any]) -> None:
    response = client.post("/api/v1/predict", json={**applicant, **_junk_keys(20)})
    body = assert_names_fields(response, 422, "k0")
    assert body["field_count"] == 20 == len(body["fields"])


def test_error_bodies_list_the_first_problems_and_count_them_all(
        client: FlaskClient) -> None:
    """A full batch of empty rows has 100 x 18 problems; the answer lists 20 of them."""
    size = client.application.config["MAX_BATCH_SIZE"]
    response = client.post("/api/v1/predict", json={"instances": [{}] * size})
    body = assert_names_fields(response, 422, "instances[0].status")
    assert body["field_count"] == size * len(FEATURES)
    assert len(body["fields"]) == MAX_REPORTED_FIELDS
    assert f"{size * len(FEATURES)} fields" in body["message"]
    assert len(response.data) < 8 * 1024


def test_long_field_names_are_truncated_in_error_bodies(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    name = "n" * 10_000
    response = client.post("/api/v1/predict", json={**applicant, name: 1})
    [(field, _)] = response.get_json()["fields"].items()
    assert len(field) == MAX_FIELD_NAME_CHARS and field.endswith("...")
    assert name[:MAX_FIELD_NAME_CHARS - 3] == field[:-3]
    assert len(response.data) < 1024


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/predict"), ("PUT", "/api/v1/predict"), ("DELETE", "/api/v1/predict"),
    ("POST", "/api/v1/model"), ("GET", "/api/v1/feedback"), ("POST", "/healthz"),
    ("POST", "/readyz"), ("POST", "/api/v1/openapi.json"),
])
def test_wrong_method_returns_405_json_with_allow_header(client: FlaskClient, method: str,
                                                         path: str) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
    assert response.headers["Allow"] and "OPTIONS" not in response.headers["Allow"]


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v2/predict", "/api/", "/api/v1/predict/x"])
def test_unknown_api_route_returns_404_json(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_unexpected_exception_returns_json_500_without_a_traceback(
        make_app: Any, applicant: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()

    def explode() -> None:
        raise RuntimeError("secret internal detail")

    app.add_url_rule("/api/v1/explode", view_func=explode)
    response = app.test_client().get("/api/v1/explode")
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"] == "internal_error"
    assert "secret" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert any(r.exc_info and "secret internal detail" in str(r.exc_info[1])
               for r in caplog.records), "the traceback is logged"


def test_predict_without_a_model_returns_503_json(make_app: Any, tmp_path: Any,
                                                  applicant: dict[str, Any]) -> None:
    client = make_app(MODEL_REGISTRY=str(tmp_path / "empty-registry")).test_client()
    response = client.post("/api/v1/predict", json=applicant)
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"
    assert response.get_json()["message"] == \
        "No verified model is loaded yet; try again shortly."
