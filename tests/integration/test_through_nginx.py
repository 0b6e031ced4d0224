"""Requests through the real NGINX to the real Gunicorn: answers, errors, headers, logs."""

from __future__ import annotations

import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from app.config import DEFAULTS
from tests import servers
from tests.helpers import wait_until
from tests.servers import Stack
from training.registry import Registry

pytestmark = pytest.mark.slow

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
STATIC_FILE = "style.css"
# Deadline for a log line of a request that was already answered (written right after).
LOG_WAIT = 30.0
# More requests than the limit lets through at once (burst 20 + 1), sent concurrently so
# they arrive faster than the 10 r/s rate however slowly each one is answered.
BURST_REQUESTS = 60
BURST_THREADS = 30
# limit_conn per client address in nginx/credit-risk.conf.template.
CONNECTIONS_PER_CLIENT = int(re.search(r"limit_conn credit_risk_conn (\d+);",
                                       servers.NGINX_TEMPLATE.read_text()).group(1))


def access_log_lines(stack: Stack) -> list[dict[str, Any]]:
    """Every line of NGINX's access log, parsed (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in stack.edge.log("access").splitlines()]


def access_log_entry(stack: Stack, request_id: str) -> dict[str, Any]:
    """The access log line of one request, waiting for it: NGINX logs after answering."""
    entries = wait_until(
        lambda: [e for e in access_log_lines(stack) if e["request_id"] == request_id],
        LOG_WAIT, f"NGINX's access log line for request {request_id}")
    assert len(entries) == 1, f"{len(entries)} access log lines for {request_id}"
    return entries[0]


def app_log_line(stack: Stack, marker: str) -> str:
    """The one line of Gunicorn's log that contains `marker`, waiting for it."""
    lines = wait_until(lambda: [line for line in stack.app.log().splitlines() if marker in line],
                       LOG_WAIT, f"Gunicorn's log line with {marker}")
    assert len(lines) == 1, f"{len(lines)} Gunicorn log lines with {marker}"
    return lines[0]


# --- answers ---------------------------------------------------------------------------
def test_predict_one_applicant(stack: Stack, applicant: dict[str, Any]) -> None:
    response = requests.post(f"{stack.url}/api/v1/predict", json=applicant, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"]
    [prediction] = body["predictions"]
    assert 0.0 <= prediction["probability_bad"] <= 1.0
    assert prediction["decision"] in ("approve", "decline")


def test_predict_batch(stack: Stack, batch: list[dict[str, Any]]) -> None:
    response = requests.post(f"{stack.url}/api/v1/predict", json={"instances": batch},
                             timeout=10)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == len(batch)


def test_readyz_names_the_production_version(stack: Stack, module_registry: Path) -> None:
    response = requests.get(f"{stack.url}/readyz", timeout=10)
    assert response.status_code == 200
    assert response.json()["model_version"] == Registry(module_registry).production_version()


# --- errors ----------------------------------------------------------------------------
def test_malformed_json_is_400(stack: Stack) -> None:
    response = requests.post(f"{stack.url}/api/v1/predict", data=b'{"status": ',
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


def test_wrong_content_type_is_415(stack: Stack, applicant: dict[str, Any]) -> None:
    response = requests.post(f"{stack.url}/api/v1/predict", data=json.dumps(applicant),
                             headers={"Content-Type": "text/plain"}, timeout=10)
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_oversized_body_is_413_from_nginx_as_json(stack: Stack) -> None:
    request_id = "test-oversized-body"
    body = b'{"padding": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = requests.post(f"{stack.url}/api/v1/predict", data=body, timeout=30,
                             headers={"Content-Type": "application/json",
                                      "X-Request-ID": request_id})
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"error": "payload_too_large", "request_id": request_id,
                               "message": response.json()["message"]}
    # NGINX answered without passing the body on to Gunicorn.
    assert access_log_entry(stack, request_id)["upstream_addr"] == ""


def _padded(size: int) -> bytes:
    """A JSON document of exactly `size` bytes."""
    return b'{"pad": "' + b"x" * (size - 11) + b'"}'


@pytest.mark.parametrize(("path", "setting", "content_type"), [
    ("/api/v1/predict", "MAX_PREDICT_BYTES", "application/json"),
    ("/api/v1/feedback", "MAX_FEEDBACK_BYTES", "application/json"),
    ("/", "MAX_CONTENT_LENGTH", "application/x-www-form-urlencoded"),
])
def test_nginx_body_limit_of_each_path_is_the_apps(stack: Stack, path: str, setting: str,
                                                   content_type: str) -> None:
    """A body of exactly the app's limit reaches the app; one byte more is NGINX's 413."""
    limit = DEFAULTS[setting]
    with servers.load_generator_session() as session:
        # With the feedback token: feedback checks it before it reads the body.
        at_limit = session.post(f"{stack.url}{path}", data=_padded(limit), timeout=10,
                                headers={"Content-Type": content_type, **servers.FEEDBACK_AUTH})
        over = session.post(f"{stack.url}{path}", data=_padded(limit + 1), timeout=10,
                            headers={"Content-Type": content_type, **servers.FEEDBACK_AUTH,
                                     "X-Request-ID": f"over-{setting}"})
    assert at_limit.status_code in (400, 422), at_limit.text[:300]
    assert over.status_code == 413
    assert access_log_entry(stack, f"over-{setting}")["upstream_addr"] == ""


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "FOOBAR",
                                    "CONNECT"])
@pytest.mark.parametrize("path", ["/api/v1/predict", "/", "/healthz", "/no-such-page"])
def test_methods_the_api_does_not_use_get_405_json_from_nginx(
        stack: Stack, method: str, path: str) -> None:
    request_id = f"junk-{method}-{len(path)}"
    response = requests.request(method, f"{stack.url}{path}", timeout=10,
                                headers={"X-Request-ID": request_id})
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, POST"
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "method_not_allowed"
    assert response.json()["request_id"] == request_id
    assert access_log_entry(stack, request_id)["upstream_addr"] == "", "never reaches the app"


def test_a_used_method_on_the_wrong_path_is_the_apps_405(stack: Stack) -> None:
    response = requests.get(f"{stack.url}/api/v1/predict", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST", "the app's own Allow, once"
    assert access_log_entry(stack, response.headers["X-Request-ID"])["upstream_addr"]


def test_concurrent_requests_per_client_are_limited_with_429(stack: Stack) -> None:
    """Requests whose body never comes hold a connection each; past limit_conn, 429.

    They go to /healthz, which has no rate limit, so limit_req cannot refuse them first."""
    with servers.running_nginx(stack.app.url) as edge:
        port = int(edge.url.rsplit(":", 1)[1])
        held = []
        try:
            for _ in range(CONNECTIONS_PER_CLIENT):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
                held.append(sock)
            # NGINX counts a request once its header is read: wait until all are counted,
            # probing at 2 r/s, far under the rate limit, so a 429 is limit_conn's.
            deadline = time.monotonic() + 30
            while True:
                response = requests.get(f"{edge.url}/api/v1/model", timeout=10)
                if response.status_code == 429 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert response.status_code == 429
            assert response.json()["error"] == "too_many_requests"
            assert 'limiting connections by zone "credit_risk_conn"' in edge.log("error")
            exempt = servers.load_generator_session().get(f"{edge.url}/api/v1/model",
                                                          timeout=10)
            assert exempt.status_code == 200, "the load generator address is not limited"
        finally:
            for sock in held:
                sock.close()
        assert requests.get(f"{edge.url}/api/v1/model", timeout=10).status_code == 200


def test_invalid_fields_are_422_naming_each_field(stack: Stack,
                                                  applicant: dict[str, Any]) -> None:
    bad = {**applicant, "amount": -5, "purpose": "yacht"}
    del bad["age"]
    response = requests.post(f"{stack.url}/api/v1/predict", json=bad, timeout=10)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed"
    assert {"amount", "purpose", "age"} <= set(body["fields"])


def test_unknown_api_path_is_404_json(stack: Stack) -> None:
    response = requests.get(f"{stack.url}/api/v1/no-such-thing", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_burst_is_refused_with_429_json(stack: Stack) -> None:
    """A fresh NGINX (empty rate-limit zone) in front of the same Gunicorn."""
    with servers.running_nginx(stack.app.url) as edge, \
            ThreadPoolExecutor(BURST_THREADS) as pool:
        responses = list(pool.map(
            lambda _: requests.get(f"{edge.url}/api/v1/model", timeout=60),
            range(BURST_REQUESTS)))
    statuses = [response.status_code for response in responses]
    # The burst allowance (20 at once beyond the rate) always passes: normal use is served.
    assert statuses.count(200) >= 21, statuses
    assert set(statuses) == {200, 429}, statuses
    refused = next(response for response in responses if response.status_code == 429)
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.json()["error"] == "too_many_requests"


# --- what NGINX adds ---------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/api/v1/model", f"/static/{STATIC_FILE}", "/metrics",
                                  "/api/v1/no-such-thing"])
def test_security_headers_on_every_answer(stack: Stack, path: str) -> None:
    response = requests.get(f"{stack.url}{path}", timeout=10)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (path, name)
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    # Each header once, even where the app sets it too.
    assert "," not in response.headers["X-Frame-Options"]


def test_server_version_is_not_disclosed(stack: Stack) -> None:
    for path in ("/", "/api/v1/model", "/static/no-such-file.css"):
        response = requests.get(f"{stack.url}{path}", timeout=10)
        assert response.headers["Server"] == "nginx"
        assert not re.search(r"nginx/\d", response.text)
        assert "gunicorn" not in response.text.lower()


def test_static_files_are_served_by_nginx_with_caching(stack: Stack) -> None:
    response = requests.get(f"{stack.url}/static/{STATIC_FILE}", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.headers["Cache-Control"] == "max-age=3600"
    assert "Expires" in response.headers and "ETag" in response.headers
    assert response.content == (servers.STATIC_ROOT / STATIC_FILE).read_bytes()
    request_id = response.headers["X-Request-ID"]
    assert access_log_entry(stack, request_id)["upstream_addr"] == ""


def test_json_and_css_are_gzipped(stack: Stack, batch: list[dict[str, Any]]) -> None:
    response = requests.post(f"{stack.url}/api/v1/predict", json={"instances": batch},
                             headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert response.headers.get("Content-Encoding") == "gzip"
    assert response.json()["predictions"]  # requests decompressed it
    css = requests.get(f"{stack.url}/static/{STATIC_FILE}",
                       headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert css.headers.get("Content-Encoding") == "gzip"


def test_metrics_refused_through_nginx_but_served_by_gunicorn(stack: Stack) -> None:
    for path in ("/metrics", "/metrics/", "//metrics", "/%6Detrics", "/static/../metrics"):
        response = requests.get(f"{stack.url}{path}", timeout=10)
        assert response.status_code == 404, path
        assert "credit_" not in response.text
    direct = requests.get(f"{stack.app.url}/metrics", timeout=10)
    assert direct.status_code == 200
    assert "credit_http_requests_total" in direct.text


# --- request ids and logs ------------------------------------------------------------------
def test_client_request_id_travels_to_the_app_and_back(stack: Stack,
                                                       applicant: dict[str, Any]) -> None:
    request_id = "client-chosen-id-42"
    response = requests.post(f"{stack.url}/api/v1/predict", json=applicant, timeout=10,
                             headers={"X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id
    prediction_id = response.json()["request_id"]  # the service's own, never the client's
    assert prediction_id != request_id
    entry = access_log_entry(stack, request_id)
    assert entry["status"] == 200 and entry["uri"] == "/api/v1/predict"
    predictions = stack.app.logs["log"].parent / "predictions.jsonl"
    [record] = [json.loads(line) for line in predictions.read_text().splitlines()
                if json.loads(line)["request_id"] == prediction_id]
    assert record["trace_id"] == request_id


@pytest.mark.parametrize("sent", [None, "has spaces and \"quotes\"", "x" * 300])
def test_missing_or_unsafe_request_id_is_replaced_by_nginx(stack: Stack, sent: str | None
                                                           ) -> None:
    headers = {"X-Request-ID": sent} if sent else {}
    response = requests.get(f"{stack.url}/api/v1/model", headers=headers, timeout=10)
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # NGINX's $request_id
    assert access_log_entry(stack, request_id)["status"] == 200


def test_access_log_is_json_lines_with_upstream_timing(stack: Stack) -> None:
    response = requests.get(f"{stack.url}/readyz", timeout=10)
    entry = access_log_entry(stack, response.headers["X-Request-ID"])
    assert entry["status"] == 200
    assert float(entry["upstream_response_time"]) >= 0.0
    assert float(entry["request_time"]) >= 0.0
    assert entry["upstream_addr"] == stack.app.url.split("://")[1]
    assert all(isinstance(line["status"], int) for line in access_log_lines(stack))


def test_client_address_reaches_the_app_unspoofed(stack: Stack) -> None:
    request_id = "forwarded-for-check"
    requests.get(f"{stack.url}/healthz", timeout=10,
                 headers={"X-Request-ID": request_id, "X-Forwarded-For": "203.0.113.9"})
    line = app_log_line(stack, request_id)
    assert '"127.0.0.1"' in line and "203.0.113.9" not in line
