"""pipeline/smoke.py's version comparison, against a stand-in service on loopback: a service
serving another model version fails the smoke test, and the success line names the version
the service actually served."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipeline import smoke


class StandIn(BaseHTTPRequestHandler):
    """Answers like the service would, with the versions the test sets."""

    readyz_version = "v1"
    predict_version = "v1"
    canary_answers = 0  # how many predictions the canary answers before production does

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        if self.path == "/readyz":
            self._send(200, {"status": "ready", "model_version": self.readyz_version})
        elif self.path == "/api/v1/openapi.json":
            self._send(200, {"components": {"schemas": {"Applicant": {
                "example": {"duration": 12}}}}})
        else:
            self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        arm = "production"
        if type(self).canary_answers > 0:
            type(self).canary_answers -= 1
            arm = "canary"
        version = "canary-v" if arm == "canary" else self.predict_version
        self._send(200, {"model_version": version, "arm": arm, "predictions": [
            {"request_id": "r", "probability_bad": 0.2, "decision": "approve"}]})

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def service() -> Iterator[tuple[str, type[StandIn]]]:
    """(base URL, handler class whose versions the test sets) of a server on loopback."""
    handler = type("Service", (StandIn,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_expected_version_passes_and_the_success_line_names_the_served_one(
        service: tuple[str, type[StandIn]], caplog: pytest.LogCaptureFixture) -> None:
    url, handler = service
    handler.readyz_version = handler.predict_version = "20261201T000000Z-aaaa1111"
    with caplog.at_level(logging.INFO, logger="pipeline.smoke"):
        status = smoke.main(["--url", url, "--expected-version", "20261201T000000Z-aaaa1111",
                             "--wait", "5", "--timeout", "2"])
    assert status == 0
    assert "model version 20261201T000000Z-aaaa1111 is the expected one" in caplog.text


@pytest.mark.parametrize(("readyz", "predict", "reason"), [
    ("old", "old", "serves model old, expected new"),
    ("new", "old", "/readyz names model new but the prediction came from old"),
], ids=["another-version", "prediction-from-another-version"])
def test_a_service_not_serving_the_expected_version_fails_naming_both(
        service: tuple[str, type[StandIn]], caplog: pytest.LogCaptureFixture, readyz: str,
        predict: str, reason: str) -> None:
    url, handler = service
    handler.readyz_version, handler.predict_version = readyz, predict
    with caplog.at_level(logging.INFO, logger="pipeline.smoke"):
        status = smoke.main(["--url", url, "--expected-version", "new", "--wait", "1",
                             "--timeout", "2"])
    assert status == 1
    assert reason in caplog.text
    assert "is the expected one" not in caplog.text


def test_a_prediction_the_canary_answered_is_asked_again_until_production_answers(
        service: tuple[str, type[StandIn]], caplog: pytest.LogCaptureFixture) -> None:
    url, handler = service
    handler.canary_answers = 2
    with caplog.at_level(logging.INFO, logger="pipeline.smoke"):
        status = smoke.main(["--url", url, "--expected-version", "v1", "--wait", "30",
                             "--timeout", "2"])
    assert status == 0
    assert caplog.text.count("answered by the canary (model canary-v); asking again") == 2
    assert "model version v1 is the expected one" in caplog.text


def test_a_service_whose_every_answer_is_the_canarys_fails(
        service: tuple[str, type[StandIn]], caplog: pytest.LogCaptureFixture) -> None:
    url, handler = service
    handler.canary_answers = 10 ** 6
    with caplog.at_level(logging.INFO, logger="pipeline.smoke"):
        status = smoke.main(["--url", url, "--expected-version", "v1", "--wait", "2",
                             "--timeout", "2"])
    assert status == 1
    assert "every prediction until the deadline came from the canary" in caplog.text


def test_the_smoke_tests_production_arm_is_the_services() -> None:
    from training.canary_release import PRODUCTION_ARM
    assert smoke.PRODUCTION_ARM == PRODUCTION_ARM
