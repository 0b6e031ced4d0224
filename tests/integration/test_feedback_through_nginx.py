"""Feedback through the real NGINX to two real Gunicorn workers, the token from a secret file."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import servers
from tests.helpers import require_executable
from tests.servers import Stack

pytestmark = pytest.mark.slow

TOKEN = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def feedback_stack(module_registry: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Stack]:
    """Gunicorn (2 workers) behind NGINX, reading the feedback token from a file."""
    require_executable("nginx")
    work = tmp_path_factory.mktemp("feedback-stack")
    secret = work / "feedback_token"
    secret.write_text(TOKEN + "\n")
    with servers.running_stack(module_registry, work,
                               env={"FEEDBACK_TOKEN_FILE": str(secret)}) as running:
        yield running


def post_feedback(stack: Stack, request_id: str, outcome: str = "bad",
                  token: str | None = TOKEN) -> requests.Response:
    """POST /api/v1/feedback through NGINX, from the address its rate limit exempts: these
    tests send a few dozen requests within a second, which is not what they test."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with servers.load_generator_session() as session:
        return session.post(f"{stack.url}/api/v1/feedback", timeout=10, headers=headers,
                            json={"request_id": request_id, "outcome": outcome})


def test_feedback_needs_the_token_and_says_how_through_nginx(
        feedback_stack: Stack, applicant: dict[str, Any]) -> None:
    body = requests.post(f"{feedback_stack.url}/api/v1/predict", json=applicant,
                         timeout=10).json()
    anonymous = post_feedback(feedback_stack, body["request_id"], token=None)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert anonymous.json()["error"] == "unauthorized"
    assert post_feedback(feedback_stack, body["request_id"], token="x" * 43).status_code == 401
    assert post_feedback(feedback_stack, body["request_id"]).status_code == 201


def test_only_issued_ids_once_whichever_worker_answers(
        feedback_stack: Stack, batch: list[dict[str, Any]]) -> None:
    response = requests.post(f"{feedback_stack.url}/api/v1/predict", timeout=10,
                             json={"instances": batch},
                             headers={"X-Request-ID": "client-chosen-7"})
    assert response.headers["X-Request-ID"] == "client-chosen-7"
    ids = [prediction["request_id"] for prediction in response.json()["predictions"]]
    assert post_feedback(feedback_stack, "client-chosen-7").status_code == 422
    assert post_feedback(feedback_stack, "client-chosen-7-0").status_code == 422
    assert [post_feedback(feedback_stack, i).status_code for i in ids] == [201] * len(ids)
    # Each second answer may reach either worker; every one of them knows the first.
    again = [post_feedback(feedback_stack, i, "good").status_code for i in ids * 2]
    assert again == [409] * len(again)
    feedback_log = feedback_stack.app.logs["log"].parent / "feedback.jsonl"
    recorded = [json.loads(line) for line in feedback_log.read_text().splitlines()]
    assert sorted(r["request_id"] for r in recorded if r["request_id"] in ids) == sorted(ids)
    assert {r["outcome"] for r in recorded if r["request_id"] in ids} == {"bad"}
