"""The scoring route's fast path answers exactly as Flask does, and hands on what it must.

Every request is sent to two apps on the same model: one with the fast path in front
(the default) and one with PREDICT_FAST_PATH off, where Flask answers everything. Their
answers, log lines and counts must match; request ids, times and scoring times are random
or measured, so they are compared for shape, not value.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, signals
from werkzeug.test import EnvironBuilder, run_wsgi_app

import app.scoring
from app import predict_fast_path
from app.predict_fast_path import PredictFastPath, bypassed_hooks
from app.request_id import HEADER, SANE
from app.service import EXTENSION_KEY
from tests.api.conftest import AppFactory, metric_value

PATH = "/api/v1/predict"
ROUTE_SAMPLE = 'credit_http_requests_total{method="POST",route="/api/v1/predict",status="%d"}'
RANDOM_FIELDS = ("request_id", "trace_id", "time", "scoring_ms")


class Pair:
    """The same service twice: the fast path in front, and Flask alone; each counts the
    requests its Flask view was handed."""

    def __init__(self, make_app: AppFactory, tmp_path: Path, **settings: Any) -> None:
        self.fast = self._counted(make_app(PREDICTION_LOG=str(tmp_path / "fast.jsonl"),
                                           **settings))
        self.flask = self._counted(make_app(PREDICTION_LOG=str(tmp_path / "flask.jsonl"),
                                            PREDICT_FAST_PATH=False, **settings))

    @staticmethod
    def _counted(service: Flask) -> Flask:
        view = service.view_functions["api.predict"]
        service.config["VIEW_CALLS"] = 0

        def counting_view() -> Any:
            service.config["VIEW_CALLS"] += 1
            return view()

        service.view_functions["api.predict"] = counting_view
        return service

    def both(self, **request: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The answer of each app to the same request (EnvironBuilder's arguments)."""
        return answer(self.fast, request), answer(self.flask, request)


def answer(service: Flask, request: dict[str, Any]) -> dict[str, Any]:
    """Status, headers, body and new log lines of one request, random values masked."""
    environ = request.pop("environ", None) or EnvironBuilder(
        path=PATH, method="POST", **request).get_environ()
    log = Path(service.config["PREDICTION_LOG"])
    lines_before = len(log.read_text().splitlines()) if log.exists() else 0
    body, status, headers = run_wsgi_app(service, environ, buffered=True)
    text = b"".join(body).decode()
    request_id = headers.get(HEADER)
    assert request_id is not None and SANE.fullmatch(request_id), "every answer has an id"
    lines = log.read_text().splitlines()[lines_before:] if log.exists() else []
    return {"status": status, "headers": sorted((name, value) for name, value in headers.items()
                                                if name != HEADER),
            "request_id": request_id, "body": masked(json.loads(text)) if text else None,
            "raw": text, "log": [masked(json.loads(line)) for line in lines]}


def masked(value: Any) -> Any:
    """`value` with random ids, times and durations replaced by their type's name."""
    if isinstance(value, dict):
        return {key: type(item).__name__ if key in RANDOM_FIELDS else masked(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


@pytest.fixture
def pair(make_app: AppFactory, tmp_path: Path) -> Pair:
    """The default settings, both ways."""
    return Pair(make_app, tmp_path)


def test_the_fast_path_is_in_front_only_when_on(pair: Pair) -> None:
    assert isinstance(pair.fast.wsgi_app, PredictFastPath)
    assert not isinstance(pair.flask.wsgi_app, PredictFastPath)
    assert metric_value(pair.fast.test_client(), "credit_predict_fast_path") == 1.0
    assert metric_value(pair.flask.test_client(), "credit_predict_fast_path") == 0.0


@pytest.mark.parametrize("headers", [
    {},
    {"Content-Type": "application/json; charset=utf-8"},
    {"Content-Type": "Application/JSON"},
    {HEADER: "client-trace-7"},  # sane: kept, logged as the trace id
    {HEADER: "two words"},  # not sane: replaced
], ids=["plain", "charset", "case", "sane-id", "insane-id"])
@pytest.mark.parametrize("rows", [1, 3], ids=["one-row", "batch"])
def test_plain_requests_get_flasks_answer_without_flask(
        pair: Pair, applicant: dict[str, Any], rows: int, headers: dict[str, str]) -> None:
    document = applicant if rows == 1 else {"instances": [applicant] * rows}
    request = {"data": json.dumps(document), "headers": headers,
               "content_type": headers.pop("Content-Type", "application/json")}
    fast, flask = pair.both(**dict(request, headers=dict(headers)))
    assert fast["status"] == "200 OK"
    assert {key: fast[key] for key in ("status", "headers", "body", "log")} == \
        {key: flask[key] for key in ("status", "headers", "body", "log")}
    assert len(fast["log"]) == rows
    assert pair.fast.config["VIEW_CALLS"] == 0 and pair.flask.config["VIEW_CALLS"] == 1
    if HEADER in headers and SANE.fullmatch(headers[HEADER]):
        assert fast["request_id"] == flask["request_id"] == headers[HEADER]
    for service, said in ((pair.fast, fast), (pair.flask, flask)):
        log = Path(service.config["PREDICTION_LOG"]).read_text().splitlines()
        assert {json.loads(line)["trace_id"] for line in log} == {said["request_id"]}
        assert metric_value(service.test_client(), ROUTE_SAMPLE % 200) == 1.0


def _oversized(applicant: dict[str, Any]) -> dict[str, Any]:
    return {"data": json.dumps({"instances": [applicant] * 40}),
            "content_type": "application/json"}


def _without_length(applicant: dict[str, Any]) -> dict[str, Any]:
    """A chunked request as Gunicorn hands it on: no Content-Length, the input terminated."""
    environ = EnvironBuilder(path=PATH, method="POST", data=json.dumps(applicant),
                             content_type="application/json").get_environ()
    del environ["CONTENT_LENGTH"]
    environ.update({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True})
    return {"environ": environ}


def _absurd_length(applicant: dict[str, Any]) -> dict[str, Any]:
    """A Content-Length of 5,000 digits (more than int() converts) before a real body."""
    environ = EnvironBuilder(path=PATH, method="POST", data=json.dumps(applicant),
                             content_type="application/json").get_environ()
    environ["CONTENT_LENGTH"] = "9" * 5000
    return {"environ": environ}


def _cut_short(applicant: dict[str, Any]) -> dict[str, Any]:
    """A client that announced more than it sent before it stopped: Gunicorn's input ends
    where the data did (Flask then reads what came)."""
    data = json.dumps(applicant).encode()
    environ = EnvironBuilder(path=PATH, method="POST", data=data,
                             content_type="application/json").get_environ()
    environ.update({"wsgi.input": io.BytesIO(data[:20]), "wsgi.input_terminated": True})
    return {"environ": environ}


def _chunked_with_length(applicant: dict[str, Any]) -> dict[str, Any]:
    """A server that passes a Content-Length beside chunked encoding: the length is not the
    body's (HTTP ignores it then), so only Flask, which ignores it too, may read the body."""
    environ = _without_length(applicant)["environ"]
    environ["CONTENT_LENGTH"] = "10"
    return {"environ": environ}


# Requests Flask answers with an error, or reads in its own way; the fast path answers the
# first group itself (from the same functions), and hands the others to Flask.
ODD_REQUESTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "blank": lambda a: {"data": "  \n", "content_type": "application/json"},
    "malformed": lambda a: {"data": '{"amount": ', "content_type": "application/json"},
    "nan": lambda a: {"data": '{"amount": NaN}', "content_type": "application/json"},
    "invalid-field": lambda a: {"data": json.dumps({**a, "amount": -5}),
                                "content_type": "application/json"},
    "unknown-field": lambda a: {"data": json.dumps({**a, "x": 1}),
                                "content_type": "application/json"},
    "not-an-object": lambda a: {"data": "[1, 2]", "content_type": "application/json"},
    "batch-too-big": lambda a: {"data": json.dumps({"instances": [a] * 6}),
                                "content_type": "application/json"},
    # handed on:
    "text-plain": lambda a: {"data": json.dumps(a), "content_type": "text/plain"},
    "no-content-type": lambda a: {"data": json.dumps(a)},
    "empty": lambda a: {"data": "", "content_type": "application/json"},
    "body-too-big": _oversized,
    "chunked": _without_length,
    "cut-short": _cut_short,
    "chunked-with-length": _chunked_with_length,
    "absurd-length": _absurd_length,
    "get": lambda a: {"method": "GET"},
    "head": lambda a: {"method": "HEAD"},
}
HANDED_ON = ("text-plain", "no-content-type", "empty", "body-too-big", "chunked",
             "chunked-with-length", "cut-short", "absurd-length", "get", "head")


@pytest.mark.parametrize("case", ODD_REQUESTS)
def test_odd_requests_get_flasks_answer_either_way(
        make_app: AppFactory, tmp_path: Path, applicant: dict[str, Any], case: str) -> None:
    pair = Pair(make_app, tmp_path, MAX_BATCH_SIZE=5, MAX_PREDICT_BYTES=8 * 1024)
    request = ODD_REQUESTS[case](applicant)
    method = request.pop("method", "POST")
    if method != "POST":
        request = {"environ": EnvironBuilder(path=PATH, method=method).get_environ()}
    fast = answer(pair.fast, dict(request, environ=_copy(request.get("environ"))))
    flask = answer(pair.flask, dict(request, environ=_copy(request.get("environ"))))
    assert {key: fast[key] for key in ("status", "headers", "body", "log")} == \
        {key: flask[key] for key in ("status", "headers", "body", "log")}
    # Flask's routing answers another method 405; a POST the fast path hands on reaches
    # the view, with the body the fast path read.
    assert pair.flask.config["VIEW_CALLS"] == (1 if method == "POST" else 0)
    assert pair.fast.config["VIEW_CALLS"] == (1 if method == "POST" and case in HANDED_ON
                                              else 0)
    status = int(fast["status"].split()[0])
    if case.startswith("chunked"):  # Gunicorn reads a chunked body; Flask scores it
        assert status == 200 and len(fast["log"]) == 1
    else:
        assert status >= 400 and not fast["log"]
        assert fast["raw"] == flask["raw"].replace(flask["request_id"], fast["request_id"])
        if method != "HEAD":  # an error body names the request it answers
            assert json.loads(fast["raw"])["request_id"] == fast["request_id"]
    sample = ROUTE_SAMPLE % status if method == "POST" else \
        f'credit_http_requests_total{{method="{method}",route="<unmatched>",status="405"}}'
    for service in (pair.fast, pair.flask):  # counted once, by whichever answered
        assert metric_value(service.test_client(), sample) == 1.0


def _copy(environ: dict[str, Any] | None) -> dict[str, Any] | None:
    """A fresh environ with its own input stream (each app reads it once)."""
    if environ is None:
        return None
    return {**environ, "wsgi.input": io.BytesIO(environ["wsgi.input"].getvalue())}


def test_no_model_is_answered_503_as_flask_answers_it(
        make_app: AppFactory, tmp_path: Path, applicant: dict[str, Any]) -> None:
    pair = Pair(make_app, tmp_path, MODEL_REGISTRY=str(tmp_path / "empty-registry"))
    fast, flask = pair.both(data=json.dumps(applicant), content_type="application/json")
    assert fast["status"] == "503 SERVICE UNAVAILABLE"
    assert fast["body"]["message"] == "No verified model is loaded yet; try again shortly."
    assert fast["raw"] == flask["raw"].replace(flask["request_id"], fast["request_id"])
    assert (fast["headers"], fast["body"]) == (flask["headers"], flask["body"])
    assert pair.fast.config["VIEW_CALLS"] == 0
    assert metric_value(pair.fast.test_client(), ROUTE_SAMPLE % 503) == 1.0


def test_a_log_that_refuses_the_rows_is_answered_503_as_flask_answers_it(
        make_app: AppFactory, tmp_path: Path, applicant: dict[str, Any]) -> None:
    unwritable = tmp_path / "a-directory"
    unwritable.mkdir()
    services = [make_app(PREDICTION_LOG=str(unwritable), PREDICT_FAST_PATH=on)
                for on in (True, False)]
    answers = [service.test_client().post(PATH, json=applicant) for service in services]
    assert [response.status_code for response in answers] == [503, 503]
    fast, flask = (response.get_data(as_text=True).replace(response.headers[HEADER], "ID")
                   for response in answers)
    assert fast == flask and "The prediction could not be recorded" in fast
    for service in services:
        client = service.test_client()
        assert metric_value(client, "credit_prediction_log_write_failures_total") == 1.0
        assert metric_value(client, ROUTE_SAMPLE % 503) == 1.0


def test_a_bug_is_answered_500_and_logged_as_flask_does(
        pair: Pair, applicant: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(app.scoring, "score_rows", broken)
    with caplog.at_level(logging.ERROR):
        fast, flask = pair.both(data=json.dumps(applicant), content_type="application/json")
    assert fast["status"] == "500 INTERNAL SERVER ERROR"
    assert (fast["headers"], fast["body"]) == (flask["headers"], flask["body"])
    assert "secret" not in fast["raw"] and fast["body"]["error"] == "internal_error"
    logged = [record for record in caplog.records
              if record.getMessage() == f"unhandled error on POST {PATH}"]
    assert len(logged) == 2, "once by each path, with the traceback"
    assert all(record.exc_info and "secret internal detail" in str(record.exc_info[1])
               for record in logged)
    assert pair.fast.config["VIEW_CALLS"] == 0


def test_a_hook_it_would_skip_keeps_the_fast_path_out(
        make_app: AppFactory, applicant: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    service = make_app(PREDICT_FAST_PATH=False)
    state = service.extensions[EXTENSION_KEY]
    assert bypassed_hooks(service, state) == []
    seen: list[str] = []

    @service.before_request
    def audit() -> None:
        seen.append("audit")

    def receiver(sender: Any, **extra: Any) -> None:
        seen.append("signal")

    with signals.request_finished.connected_to(receiver, service):
        skipped = bypassed_hooks(service, state)
        assert skipped == [f"before_request {audit.__qualname__}", "signal request-finished"]
        service.config["PREDICT_FAST_PATH"] = True
        with caplog.at_level(logging.WARNING):
            assert predict_fast_path.install(service) is False
        assert "the fast path would skip before_request" in caplog.text
        assert service.test_client().post(PATH, json=applicant).status_code == 200
    assert seen == ["audit", "signal"]
    assert not isinstance(service.wsgi_app, PredictFastPath)
    assert metric_value(service.test_client(), "credit_predict_fast_path") == 0.0
