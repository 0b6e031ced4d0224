"""Requests through the real NGINX to the real Gunicorn: answers, errors, headers, logs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import servers
from tests.servers import Stack
from training.registry import Registry

pytestmark = pytest.mark.slow

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
STATIC_FILE = "style.css"


def access_log_lines(stack: Stack) -> list[dict[str, Any]]:
    """Every line of NGINX's access log, parsed (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in stack.edge.log("access").splitlines()]


def access_log_entry(stack: Stack, request_id: str) -> dict[str, Any]:
    """The access log line of one request, waiting a little: NGINX logs after answering."""
    for _ in range(50):
        entries = [e for e in access_log_lines(stack) if e["request_id"] == request_id]
        if entries:
            break
        time.sleep(0.1)
    assert len(entries) == 1, f"{len(entries)} access log lines for {request_id}"
    return entries[0]


def app_log_line(stack: Stack, marker: str) -> str:
    """The one line of Gunicorn's log that contains `marker`, waiting a little for it."""
    for _ in range(50):
        lines = [line for line in stack.app.log().splitlines() if marker in line]
        if lines:
            break
        time.sleep(0.1)
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
    with servers.running_nginx(stack.app.url) as edge, requests.Session() as session:
        statuses = []
        for _ in range(300):  # bounded; at 10 r/s + 20 burst the limit trips long before
            response = session.get(f"{edge.url}/api/v1/model", timeout=10)
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
    # The burst allowance (20 at once beyond the rate) always passes: normal use is served.
    assert statuses[:21] == [200] * 21
    assert statuses[-1] == 429, f"no 429 after {len(statuses)} requests"
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "too_many_requests"


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
