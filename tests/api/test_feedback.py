"""POST /api/v1/feedback: true outcomes of issued predictions, with a bearer token, once."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import SettingsError
from app.validation import MAX_UNKNOWN_FIELDS
from app.prediction_log import LoggedIds
from training.monitor import live_performance, prediction_frame, read_json_lines

TOKEN = "feedback-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def app(make_app: Any) -> Flask:
    """The service with a feedback token configured."""
    return make_app(FEEDBACK_TOKEN=TOKEN)


def issued_ids(client: FlaskClient, applicant: dict[str, Any], rows: int = 1,
               **headers: str) -> list[str]:
    """The request ids of `rows` fresh predictions (a batch when rows > 1)."""
    payload = applicant if rows == 1 else {"instances": [applicant] * rows}
    body = client.post("/api/v1/predict", json=payload, headers=headers).get_json()
    return [prediction["request_id"] for prediction in body["predictions"]]


def post(client: FlaskClient, request_id: str, outcome: str = "bad",
         headers: dict[str, str] | None = None) -> Any:
    """Report an outcome with the test token (or the given headers)."""
    return client.post("/api/v1/feedback", json={"request_id": request_id, "outcome": outcome},
                       headers=AUTH if headers is None else headers)


def test_feedback_is_appended_to_the_feedback_log(client: FlaskClient, app: Flask,
                                                  applicant: dict[str, Any]) -> None:
    [request_id] = issued_ids(client, applicant)
    response = post(client, request_id)
    assert response.status_code == 201
    assert response.get_json()["status"] == "recorded"
    (record,) = read_json_lines(Path(app.config["FEEDBACK_LOG"]))
    assert record["request_id"] == request_id and record["outcome"] == "bad"
    assert set(record) == {"time", "request_id", "outcome"}


def test_feedback_joins_logged_predictions_in_the_monitor(
        client: FlaskClient, app: Flask, applicant: dict[str, Any]) -> None:
    risky = {**applicant, "duration": 72, "amount": 18000, "status": "< 0 DM"}
    body = client.post("/api/v1/predict", json={"instances": [applicant, risky] * 3}).get_json()
    for n, prediction in enumerate(body["predictions"]):
        outcome = "good" if n % 2 == 0 else "bad"
        assert post(client, prediction["request_id"], outcome).status_code == 201
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
    response = client.post("/api/v1/feedback", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == fields
    assert not Path(app.config["FEEDBACK_LOG"]).exists()


def test_feedback_errors_say_what_each_field_must_hold(client: FlaskClient) -> None:
    body = client.post("/api/v1/feedback", json={"outcome": "maybe"}, headers=AUTH).get_json()
    assert body["fields"] == {
        "request_id": "is required: the request_id of a prediction (letters, digits, '.', "
                      "'_', ':', '-'; at most 128)",
        "outcome": "must be one of 'good', 'bad'"}


@pytest.mark.parametrize(("body", "kind"), [
    ("null", "null"), ("true", "boolean"), ("7", "number"), ("0.5", "number"),
    ('"abc"', "string"), ("[]", "array")])
def test_a_body_that_is_not_an_object_is_named_by_its_json_type(
        client: FlaskClient, body: str, kind: str) -> None:
    response = client.post("/api/v1/feedback", data=body, headers=AUTH,
                           content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["fields"] == {"body": f"must be a JSON object (got {kind})"}


def test_feedback_that_is_not_an_object_or_far_too_big_gets_one_message(
        client: FlaskClient) -> None:
    array = client.post("/api/v1/feedback", json=["abc", "good"], headers=AUTH).get_json()
    assert array["fields"] == {"body": "must be a JSON object (got array)"}
    # One past what is tolerated (within the body-size limit): one line about the body, not
    # an "unknown field" entry per key.
    extra = MAX_UNKNOWN_FIELDS + 1
    crowded = {"request_id": "abc", "outcome": "good", **{f"k{n}": n for n in range(extra)}}
    answer = client.post("/api/v1/feedback", json=crowded, headers=AUTH).get_json()
    assert answer["fields"] == {"body": f"has {2 + extra} fields; at most 2 are known"}
    tolerated = dict(list(crowded.items())[:-1])
    answer = client.post("/api/v1/feedback", json=tolerated, headers=AUTH).get_json()
    assert answer["fields"] == {f"k{n}": "unknown field" for n in range(MAX_UNKNOWN_FIELDS)}


def test_feedback_malformed_json_returns_400_and_wrong_type_415(client: FlaskClient) -> None:
    assert client.post("/api/v1/feedback", data="{", content_type="application/json",
                       headers=AUTH).status_code == 400
    assert client.post("/api/v1/feedback", data=json.dumps({"request_id": "a", "outcome": "bad"}),
                       content_type="text/plain", headers=AUTH).status_code == 415


def test_feedback_write_failure_returns_503_and_is_counted(
        make_app: Any, tmp_path: Path, applicant: dict[str, Any]) -> None:
    directory = tmp_path / "dir"
    directory.mkdir()
    client = make_app(FEEDBACK_LOG=str(directory), FEEDBACK_TOKEN=TOKEN).test_client()
    [request_id] = issued_ids(client, applicant)
    response = post(client, request_id)
    assert response.status_code == 503
    assert "credit_feedback_log_write_failures_total 1.0" in client.get("/metrics").get_data(
        as_text=True)


def test_an_unusable_id_index_returns_503_not_500(client: FlaskClient, app: Flask,
                                                  applicant: dict[str, Any]) -> None:
    [request_id] = issued_ids(client, applicant)
    log = Path(app.config["PREDICTION_LOG"])
    log.with_name(f".{log.name}.ids.sqlite").mkdir()  # SQLite cannot open a directory
    assert post(client, request_id).status_code == 503


# --- the credential ----------------------------------------------------------------------
@pytest.mark.parametrize(("authorization", "challenge"), [
    (None, 'Bearer realm="credit-risk feedback"'),
    ("Bearer wrong-token-0123456789abcdef",
     'Bearer realm="credit-risk feedback", error="invalid_token"'),
    (f"Bearer {TOKEN}x", 'Bearer realm="credit-risk feedback", error="invalid_token"'),
    (f"Basic {TOKEN}", 'Bearer realm="credit-risk feedback", error="invalid_token"'),
    (TOKEN, 'Bearer realm="credit-risk feedback", error="invalid_token"'),
], ids=["missing", "wrong", "longer", "other-scheme", "no-scheme"])
def test_feedback_without_the_token_returns_401_json_with_a_challenge(
        client: FlaskClient, app: Flask, applicant: dict[str, Any], authorization: str | None,
        challenge: str) -> None:
    [request_id] = issued_ids(client, applicant)
    response = post(client, request_id, headers={"Authorization": authorization}
                    if authorization else {})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == challenge
    assert response.get_json()["error"] == "unauthorized"
    assert not Path(app.config["FEEDBACK_LOG"]).exists()


def test_the_bearer_scheme_name_is_case_insensitive(client: FlaskClient,
                                                    applicant: dict[str, Any]) -> None:
    [request_id] = issued_ids(client, applicant)
    assert post(client, request_id, headers={"Authorization": f"bearer {TOKEN}"}
                ).status_code == 201


def test_feedback_without_a_configured_token_is_disabled_with_503(
        make_app: Any, tmp_path: Path, applicant: dict[str, Any]) -> None:
    app = make_app()
    client = app.test_client()
    [request_id] = issued_ids(client, applicant)
    response = post(client, request_id)
    assert response.status_code == 503
    assert response.get_json()["error"] == "feedback_disabled"
    assert not Path(app.config["FEEDBACK_LOG"]).exists()


def test_the_token_can_come_from_a_secret_file(make_app: Any, tmp_path: Path,
                                               applicant: dict[str, Any]) -> None:
    secret = tmp_path / "feedback_token"
    secret.write_text(TOKEN + "\n")  # as `echo` or an editor leaves it
    client = make_app(FEEDBACK_TOKEN_FILE=str(secret)).test_client()
    [request_id] = issued_ids(client, applicant)
    assert post(client, request_id).status_code == 201


def test_an_empty_secret_file_disables_feedback(make_app: Any, tmp_path: Path) -> None:
    secret = tmp_path / "feedback_token"
    secret.write_text("")
    client = make_app(FEEDBACK_TOKEN_FILE=str(secret)).test_client()
    assert post(client, "a" * 32).status_code == 503


@pytest.mark.parametrize(("settings", "message"), [
    ({"FEEDBACK_TOKEN": TOKEN, "FEEDBACK_TOKEN_FILE": "/run/secrets/x"}, "not both"),
    ({"FEEDBACK_TOKEN_FILE": "/nonexistent/feedback_token"}, "FEEDBACK_TOKEN_FILE="),
    ({"FEEDBACK_TOKEN": "x" * 15}, "at least 16 characters"),
    ({"FEEDBACK_TOKEN": "has space in the middle of it"}, "at least 16 characters"),
], ids=["both", "missing-file", "short", "space"])
def test_an_unusable_token_setting_stops_the_service(make_app: Any, settings: dict[str, str],
                                                     message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        make_app(**settings)


def test_a_token_of_exactly_16_characters_is_accepted(make_app: Any) -> None:
    assert make_app(FEEDBACK_TOKEN="x" * 16).config["FEEDBACK_TOKEN"] == "x" * 16


# --- which ids, and how often --------------------------------------------------------------
def test_feedback_for_an_id_never_issued_returns_422(
        client: FlaskClient, app: Flask, applicant: dict[str, Any]) -> None:
    issued_ids(client, applicant)
    response = post(client, "0" * 32)
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == {"request_id"}
    assert not Path(app.config["FEEDBACK_LOG"]).exists()


def test_a_client_chosen_request_id_is_not_a_prediction_id(client: FlaskClient,
                                                           applicant: dict[str, Any]) -> None:
    [issued] = issued_ids(client, applicant, **{"X-Request-ID": "forged-id-1"})
    assert issued != "forged-id-1"
    assert post(client, "forged-id-1").status_code == 422
    assert post(client, issued).status_code == 201


def test_the_first_outcome_stands_and_a_second_answer_is_409(
        client: FlaskClient, app: Flask, applicant: dict[str, Any]) -> None:
    [request_id] = issued_ids(client, applicant)
    assert post(client, request_id, "bad").status_code == 201
    second = post(client, request_id, "good")
    assert second.status_code == 409
    assert second.get_json()["error"] == "conflict"
    assert set(second.get_json()["fields"]) == {"request_id"}
    assert [(r["request_id"], r["outcome"]) for r in
            read_json_lines(Path(app.config["FEEDBACK_LOG"]))] == [(request_id, "bad")]


def test_a_new_worker_knows_the_ids_and_answers_already_on_disk(
        make_app: Any, applicant: dict[str, Any]) -> None:
    first = make_app(FEEDBACK_TOKEN=TOKEN).test_client()
    answered, open_ = issued_ids(first, applicant, rows=2)
    assert post(first, answered).status_code == 201
    second = make_app(FEEDBACK_TOKEN=TOKEN).test_client()  # same logs, fresh memory
    assert post(second, answered, "good").status_code == 409
    assert post(second, open_).status_code == 201
    assert post(first, open_).status_code == 409  # learnt from the log, not from memory


def test_concurrent_answers_for_one_id_record_exactly_one(
        make_app: Any, app: Flask, applicant: dict[str, Any]) -> None:
    ids = issued_ids(app.test_client(), applicant, rows=20)
    workers = [make_app(FEEDBACK_TOKEN=TOKEN).test_client() for _ in range(4)]
    start = threading.Barrier(len(workers))
    statuses: list[int] = []

    def answer_all(client: FlaskClient) -> None:
        start.wait(timeout=30)
        statuses.extend(post(client, request_id).status_code for request_id in ids)

    threads = [threading.Thread(target=answer_all, args=(c,)) for c in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [201] * len(ids) + [409] * (len(ids) * (len(workers) - 1))
    logged = [r["request_id"] for r in read_json_lines(Path(app.config["FEEDBACK_LOG"]))]
    assert sorted(logged) == sorted(ids)


def test_ids_in_rotated_prediction_logs_are_found(make_app: Any,
                                                  applicant: dict[str, Any]) -> None:
    app = make_app(FEEDBACK_TOKEN=TOKEN, PREDICTION_LOG_MAX_BYTES=1)  # rotate every write
    client = app.test_client()
    ids = [issued_ids(client, applicant)[0] for _ in range(3)]
    log = Path(app.config["PREDICTION_LOG"])
    assert not log.exists() and len(list(log.parent.glob(log.name + ".*"))) == 3
    assert [post(client, request_id).status_code for request_id in ids] == [201] * 3


def test_the_feedback_log_is_rotated_and_first_write_still_wins(
        make_app: Any, applicant: dict[str, Any]) -> None:
    app = make_app(FEEDBACK_TOKEN=TOKEN, FEEDBACK_LOG_MAX_BYTES=200)
    client = app.test_client()
    ids = issued_ids(client, applicant, rows=6)
    assert [post(client, request_id).status_code for request_id in ids] == [201] * 6
    log = Path(app.config["FEEDBACK_LOG"])
    assert list(log.parent.glob(log.name + ".*"))  # rotated aside, never deleted
    assert len(read_json_lines(log)) == 6  # the current file and the rotated ones
    fresh = make_app(FEEDBACK_TOKEN=TOKEN, FEEDBACK_LOG_MAX_BYTES=200).test_client()
    assert [post(fresh, request_id, "good").status_code for request_id in ids] == [409] * 6


def test_logged_ids_read_only_what_was_appended_since_the_last_lookup(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    log.write_text('{"request_id":"aaaa"}\n')
    ids = LoggedIds(log)
    assert "aaaa" in ids
    # Rewritten in place (same size and inode): a reader that starts over would see "bbbb".
    with open(log, "r+") as handle:
        handle.write('{"request_id":"bbbb"}\n')
    with open(log, "a") as handle:
        handle.write('{"request_id":"cccc"}\n{"request_id":"dd')  # the last one is torn
    assert "cccc" in ids and "bbbb" not in ids and "aaaa" in ids
    assert "dddd" not in ids
    with open(log, "a") as handle:
        handle.write('dd"}\n')  # the write completes
    assert "dddd" in ids
    another_worker = LoggedIds(log)  # shares the index on disk: reads nothing again
    assert "aaaa" in another_worker and "bbbb" not in another_worker


def test_workers_opening_a_new_index_at_once_all_get_an_answer(tmp_path: Path) -> None:
    # Workers that meet their first feedback together all create the index file at once;
    # unserialised, about one such start in twenty failed one of them with a 503.
    for start in range(100):
        log = tmp_path / f"predictions-{start}.jsonl"
        log.write_text('{"request_id":"aaaa"}\n')
        together = threading.Barrier(8)
        answers: list[object] = []

        def look_up(ids: LoggedIds) -> None:
            together.wait(timeout=30)
            try:
                answers.append("aaaa" in ids)
            except OSError as error:
                answers.append(error)

        threads = [threading.Thread(target=look_up, args=(LoggedIds(log),)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert answers == [True] * 8, f"start {start}: {answers}"


def test_openapi_documents_the_credential_and_every_feedback_answer(
        client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/feedback"]["post"]
    assert {"201", "400", "401", "409", "413", "415", "422", "503"} <= set(
        operation["responses"])
    [requirement] = operation["security"]
    [scheme] = [document["components"]["securitySchemes"][name] for name in requirement]
    assert scheme == {"type": "http", "scheme": "bearer"}
    assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
