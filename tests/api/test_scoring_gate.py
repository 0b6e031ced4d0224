"""Large scoring requests take the worker's turn one at a time; small ones never wait for it.

Each case runs with the fast path in front and with Flask alone: both routes to the scoring
view honour the same gate.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from flask import Flask

import app.scoring
from app.scoring_gate import ScoringGate
from app.service import EXTENSION_KEY, Service
from tests.api.conftest import AppFactory
from training.fast_scorer import random_applicants

PATH = "/api/v1/predict"
LARGE_BYTES = 4_000  # a 10-row batch is larger (~5.5 KB), one applicant far smaller
DEADLINE = 30.0  # seconds for a request that must be answered
BLOCKED_FOR = 0.5  # seconds a request the gate holds back is watched not to be answered

BATCH = json.dumps({"instances": random_applicants(10, seed=21)})
ONE_ROW = json.dumps(random_applicants(1, seed=22)[0])


def _state(service: Flask) -> Service:
    return service.extensions[EXTENSION_KEY]


def _post(service: Flask, body: str) -> int:
    """The status of one scoring request."""
    return service.test_client().post(PATH, data=body,
                                      content_type="application/json").status_code


def test_the_gate_is_for_bodies_of_at_least_the_setting_and_never_when_it_is_0() -> None:
    gate = ScoringGate(1_000)
    assert gate.admit(1_000) is gate.admit(5_000) is not gate.admit(999)
    with gate.admit(1_000):
        assert gate.busy()
    with gate.admit(999):
        assert not gate.busy()
    one_byte = ScoringGate(1)
    assert one_byte.admit(1) is not one_byte.admit(0)
    never = ScoringGate(0)
    with never.admit(10 ** 9):
        assert not never.busy()


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "flask"])
@pytest.mark.parametrize(("setting", "body", "gated"), [
    (LARGE_BYTES, BATCH, True),
    (LARGE_BYTES, ONE_ROW, False),
    (0, BATCH, False),
], ids=["large", "small", "gate-off"])
def test_a_large_request_is_scored_holding_the_gate(
        make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, fast_path: bool,
        setting: int, body: str, gated: bool) -> None:
    service = make_app(LARGE_REQUEST_BYTES=setting, PREDICT_FAST_PATH=fast_path)
    gate = _state(service).scoring_gate
    seen: list[bool] = []
    score_rows = app.scoring.score_rows

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(gate.busy())
        return score_rows(*args, **kwargs)

    monkeypatch.setattr(app.scoring, "score_rows", watched)
    assert _post(service, body) == 200
    assert seen == [gated]
    assert not gate.busy()  # and released after the answer


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "flask"])
def test_a_small_request_is_answered_while_a_large_one_holds_the_gate(
        make_app: AppFactory, fast_path: bool) -> None:
    service = make_app(LARGE_REQUEST_BYTES=LARGE_BYTES, PREDICT_FAST_PATH=fast_path)
    statuses: dict[str, int] = {}

    def send(name: str, body: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: statuses.update({name: _post(service, body)}),
                                  daemon=True)
        thread.start()
        return thread

    with _state(service).scoring_gate.admit(LARGE_BYTES):  # a large request in progress
        large = send("large", BATCH)
        small = send("small", ONE_ROW)
        small.join(DEADLINE)
        assert statuses.get("small") == 200
        large.join(BLOCKED_FOR)  # answered in milliseconds if the gate let it through
        assert large.is_alive() and "large" not in statuses
    large.join(DEADLINE)
    assert statuses == {"small": 200, "large": 200}


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "flask"])
def test_a_refused_large_request_releases_the_gate(make_app: AppFactory,
                                                   fast_path: bool) -> None:
    service = make_app(LARGE_REQUEST_BYTES=LARGE_BYTES, PREDICT_FAST_PATH=fast_path)
    invalid = json.dumps({"instances": [{**row, "age": -1}
                                        for row in random_applicants(10, seed=23)]})
    assert len(invalid) >= LARGE_BYTES
    assert _post(service, invalid) == 422
    assert _post(service, "[" * 5_000) == 400
    assert not _state(service).scoring_gate.busy()
    assert _post(service, BATCH) == 200
