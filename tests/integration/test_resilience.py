"""The service under change and damage: a new model, a corrupt model, a killed worker.

Each test has its own registry and its own Gunicorn + NGINX, and keeps a background load
running through NGINX while the change happens; every request of that load is counted.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import require_executable
from tests.servers import BackgroundLoad, Server, Stack, running_stack, worker_pids
from training.artifact import MODEL_FILE, atomic_write
from training.registry import POINTER_FILE, Registry

pytestmark = pytest.mark.slow

WORKERS = 2
THREADS = 4


@pytest.fixture(autouse=True)
def _nginx() -> None:
    require_executable("nginx")


@contextmanager
def stack_under_load(registry_dir: Path, work_dir: Path, applicant: dict[str, Any],
                     clients: int, warm_up: int) -> Iterator[tuple[Stack, BackgroundLoad]]:
    """Gunicorn + NGINX on `registry_dir`, with `clients` counted client threads that have
    already completed `warm_up` requests."""
    with running_stack(registry_dir, work_dir, workers=WORKERS, threads=THREADS) as stack, \
            BackgroundLoad(stack.url, applicant, threads=clients) as load:
        assert load.wait_until(lambda done: len(done) >= warm_up, timeout=60)
        yield stack, load


def wait_for_log(server: Server, text: str, timeout: float = 60.0) -> int:
    """Wait until `text` appears in the server's log; the number of occurrences (0: never)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log():
            break
        time.sleep(0.2)
    return server.log().count(text)


def test_promoted_model_is_picked_up_without_failed_requests(
        promoted_registry: Path, trained_model_dir: Path, tmp_path: Path,
        applicant: dict[str, Any]) -> None:
    registry = Registry(promoted_registry)
    old = registry.production_version()
    with stack_under_load(promoted_registry, tmp_path, applicant, clients=2,
                          warm_up=20) as (stack, load):
        # The same bytes registered under another name: a new version as far as serving goes.
        new = registry.register(trained_model_dir, version="integration-challenger")
        registry.promote(new, reason="integration test: reload under load")
        # Each worker follows the pointer on its own; wait until answers name only the new one.
        assert load.wait_until(
            lambda done: len(done) >= 30 and all(o.version == new for o in done[-30:]),
            timeout=90), f"{new} never served; last: {load.outcomes[-5:]}"
        # The load may be answered by one worker only (NGINX keeps its upstream connection),
        # so wait until every worker has swapped before asking /readyz, whichever answers.
        swapped = f"serving model version {new}"
        deadline = time.monotonic() + 60
        while stack.app.log().count(swapped) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stack.app.log().count(swapped) == WORKERS
        ready = requests.get(f"{stack.url}/readyz", timeout=10)
        assert ready.json()["model_version"] == new
    assert load.failures() == []
    assert {outcome.version for outcome in load.outcomes} == {old, new}


def test_every_worker_swaps_with_zero_traffic_and_answers_name_the_version(
        promoted_registry: Path, trained_model_dir: Path, tmp_path: Path,
        applicant: dict[str, Any]) -> None:
    registry = Registry(promoted_registry)
    reload_seconds = 1.0
    with running_stack(promoted_registry, tmp_path, workers=WORKERS, threads=THREADS,
                       env={"MODEL_RELOAD_SECONDS": str(reload_seconds)}) as stack:
        new = registry.register(trained_model_dir, version="zero-traffic")
        started = time.monotonic()
        registry.promote(new, reason="integration test: swap without traffic")
        # No request at all until every worker logged its swap: the watchers alone act.
        swapped = f"serving model version {new}"
        deadline = started + 60
        while stack.app.log().count(swapped) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        assert stack.app.log().count(swapped) == WORKERS, "a worker kept the old version"
        print(f"\nzero-traffic swap: every worker served {new} {elapsed:.2f}s after the "
              f"promotion (reload interval {reload_seconds:g}s)")
        with BackgroundLoad(stack.url, applicant, threads=2, max_requests=40) as load:
            assert load.wait_until(lambda done: len(done) >= 40, timeout=60)
        assert {outcome.version for outcome in load.outcomes} == {new}
        answer = requests.post(f"{stack.url}/api/v1/predict", json=applicant, timeout=10)
        assert answer.headers["X-Model-Version"] == answer.json()["model_version"] == new


def test_corrupt_model_is_refused_while_the_old_one_keeps_answering(
        promoted_registry: Path, trained_model_dir: Path, tmp_path: Path,
        applicant: dict[str, Any]) -> None:
    registry = Registry(promoted_registry)
    old = registry.production_version()
    with stack_under_load(promoted_registry, tmp_path, applicant, clients=2,
                          warm_up=20) as (stack, load):
        bad = registry.register(trained_model_dir, version="integration-corrupt")
        model_file = registry.root / bad / MODEL_FILE
        model_file.chmod(0o644)
        with open(model_file, "ab") as handle:  # the bytes no longer match the card's sha256
            handle.write(b"corrupted after registration")
        # What a broken copy or a hand edit would do; promote() itself refuses such a model.
        atomic_write(registry.root / POINTER_FILE, bad + "\n")
        assert wait_for_log(stack.app, f"refused model version {bad}") >= 1
        seen = len(load.outcomes)
        assert load.wait_until(lambda done: len(done) >= seen + 40, timeout=60)
        ready = requests.get(f"{stack.url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["model_version"] == old
    assert load.failures() == []
    assert {outcome.version for outcome in load.outcomes} == {old}


def test_killed_worker_is_replaced_and_only_its_in_flight_requests_may_fail(
        promoted_registry: Path, tmp_path: Path, applicant: dict[str, Any]) -> None:
    with stack_under_load(promoted_registry, tmp_path, applicant, clients=4,
                          warm_up=50) as (stack, load):
        before = worker_pids(stack.app.pid)
        assert len(before) == WORKERS, before
        victim = before[0]
        os.kill(victim, signal.SIGKILL)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = worker_pids(stack.app.pid)
            if len(after) == WORKERS and victim not in after:
                break
            time.sleep(0.1)
        assert victim not in after and len(after) == WORKERS, f"not replaced: {after}"
        replaced_at = len(load.outcomes)
        assert load.wait_until(lambda done: len(done) >= replaced_at + 100, timeout=60)
        assert stack.app.process.poll() is None  # the master itself never went down
    outcomes = load.outcomes
    failures = load.failures()
    # At most the requests the killed worker was running (one per thread) may fail.
    assert len(failures) <= THREADS, failures
    assert all(outcome.status == 200 for outcome in outcomes[replaced_at:])
