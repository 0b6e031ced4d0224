"""Canary and shadow releases through the real NGINX to two real Gunicorn workers.

Each test starts a release in the registry folder the workers follow and waits for the
event that says every live worker applies it (each worker's own latest line about the canary
in Gunicorn's log: workers are recycled under load, so the live ones are asked for by pid),
never for a fixed time.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import servers
from tests.canary_models import (CANARY_VERSION, FAULTY_ABOVE_AGE, FAULTY_VERSION,
                                 INVERTED_VERSION, register_faulty, register_inverted,
                                 register_twin, release)
from tests.conftest import DATA_FILE, ROOT
from tests.helpers import require_executable, wait_until
from tests.servers import Stack
from training.jsonlines import read_json_lines
from training.registry import Registry
from training.schema import FEATURES, TARGET

pytestmark = pytest.mark.slow

WORKERS = 2
DEADLINE = 90.0  # seconds for every worker to follow a release (1 s watcher, busy cores)


@pytest.fixture(scope="module")
def registry(module_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The module's registry with three canary candidates: a twin of production, a model
    that ranks backwards, and one that fails on older applicants."""
    registry = Registry(module_registry)
    production_dir = registry.root / registry.production_version()
    work = tmp_path_factory.mktemp("canary-models")
    register_twin(registry, production_dir)
    register_inverted(registry, production_dir, work)
    register_faulty(registry, production_dir, work)
    return registry


@pytest.fixture(scope="module")
def canary_stack(registry: Registry, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Stack]:
    """Gunicorn (2 workers, watchers every second) behind NGINX, feedback switched on."""
    require_executable("nginx")
    with servers.running_stack(registry.root, tmp_path_factory.mktemp("canary-stack"),
                               workers=WORKERS,
                               env={"FEEDBACK_TOKEN": servers.FEEDBACK_TOKEN}) as running:
        yield running


@pytest.fixture
def released(registry: Registry, canary_stack: Stack) -> Iterator[Any]:
    """Start a release and wait until every worker serves it; end it after the test."""

    versions: list[str] = []

    def start(version: str, **options: Any) -> Any:
        started = release(registry, version, **options)
        versions.append(version)
        wait_for_workers(canary_stack, version, serving=True)
        return started

    yield start
    if registry.canary_release() is not None:
        registry.clear_canary("canary-abort", "end of test")
    for version in versions:
        wait_for_workers(canary_stack, version, serving=False)


def workers_serving(stack: Stack, version: str) -> dict[int, bool]:
    """Whether each live worker serves `version` as its canary, from its own log lines."""
    log = stack.app.log()
    return {pid: log.rfind(f"[{pid}] app.model_holder: serving model version {version} ")
            > log.rfind(f"[{pid}] app.model_holder: canary release names no version")
            for pid in servers.worker_pids(stack.app.pid)}


def wait_for_workers(stack: Stack, version: str, serving: bool) -> None:
    """Wait until every live worker serves (or no longer serves) canary `version`."""
    wait_until(lambda: (states := workers_serving(stack, version)) and set(
        states.values()) == {serving}, DEADLINE,
        f"every worker {'serving' if serving else 'dropping'} canary {version}")


def predict(session: requests.Session, stack: Stack, applicant: dict[str, Any],
            trace: str) -> requests.Response:
    """One prediction through NGINX with the trace id a client would send."""
    return session.post(f"{stack.url}/api/v1/predict", json=applicant, timeout=30,
                        headers={"X-Request-ID": trace})


def predict_all(stack: Stack, applicants: list[dict[str, Any]], traces: list[str]
                ) -> list[requests.Response]:
    """Predictions of many applicants, four at a time, from the unthrottled address."""
    with servers.load_generator_session() as session, ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda pair: predict(session, stack, *pair),
                             zip(applicants, traces)))


def labelled_applicants(count: int) -> list[tuple[dict[str, Any], str]]:
    """Applicants of the real data set with their true outcome."""
    with open(DATA_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))[:count]
    return [({column.name: int(row[column.name]) if column.is_numeric else row[column.name]
              for column in FEATURES}, row[TARGET]) for row in rows]


def test_a_fifth_of_2000_requests_go_to_the_canary_and_retries_keep_their_arm(
        canary_stack: Stack, released: Any, applicant: dict[str, Any]) -> None:
    started = released(CANARY_VERSION, share=0.2)
    traces = [f"share-test-{n}" for n in range(2000)]
    answers = predict_all(canary_stack, [applicant] * len(traces), traces)
    assert [r.status_code for r in answers] == [200] * len(traces)
    arms = [r.headers["X-Model-Arm"] for r in answers]
    assert 0.15 <= arms.count("canary") / len(arms) <= 0.25
    # Not only the share: each request went where its trace id says, in either worker.
    assert arms == ["canary" if started.routes_to_canary(t) else "production" for t in traces]
    assert {r.headers["X-Model-Version"] for r, arm in zip(answers, arms)
            if arm == "canary"} == {CANARY_VERSION}
    retried = traces[:40] * 3
    again = predict_all(canary_stack, [applicant] * len(retried), retried)
    assert [r.headers["X-Model-Arm"] for r in again] == arms[:40] * 3


def test_shadow_never_answers_and_logs_both_answers(
        canary_stack: Stack, registry: Registry, released: Any,
        applicant: dict[str, Any]) -> None:
    released(INVERTED_VERSION, mode="shadow")
    traces = [f"shadow-test-{n}" for n in range(200)]
    answers = predict_all(canary_stack, [applicant] * len(traces), traces)
    bodies = [r.json() for r in answers]
    assert {(b["arm"], b["model_version"]) for b in bodies} == {
        ("production", registry.production_version())}
    answered = bodies[0]["predictions"][0]["probability_bad"]
    assert {b["predictions"][0]["probability_bad"] for b in bodies} == {answered}
    log = {line["trace_id"]: line for line in read_json_lines(
        canary_stack_log(canary_stack)) if line["trace_id"] in set(traces)}
    assert len(log) == len(traces)
    for line in log.values():
        assert line["output"]["probability_bad"] == answered
        # The inverted canary's answer is logged beside production's, never returned.
        assert line["shadow"]["model_version"] == INVERTED_VERSION
        assert line["shadow"]["probability_bad"] == pytest.approx(1 - answered, abs=2e-6)


def test_abort_under_load_returns_all_traffic_to_production_without_a_failure(
        canary_stack: Stack, registry: Registry, released: Any,
        applicant: dict[str, Any]) -> None:
    released(CANARY_VERSION, share=0.5)
    with servers.BackgroundLoad(canary_stack.url, applicant, threads=2) as load:
        load.wait_until(lambda outcomes: sum(o.version == CANARY_VERSION
                                             for o in outcomes) >= 20, timeout=DEADLINE)
        aborted = training_cli(registry, "canary-abort", "--reason", "test under load")
        assert aborted.returncode == 0, aborted.stdout + aborted.stderr
        wait_for_workers(canary_stack, CANARY_VERSION, serving=False)
        # Requests still in flight (one per client thread) may have been scored before.
        after = len(load.outcomes) + 2
        load.wait_until(lambda outcomes: len(outcomes) >= after + 100, timeout=DEADLINE)
    outcomes = load.outcomes
    assert load.failures() == []
    assert any(o.version == CANARY_VERSION for o in outcomes[:after])
    assert {o.version for o in outcomes[after:]} == {registry.production_version()}


def test_a_failing_canary_costs_no_request_and_is_aborted_automatically(
        canary_stack: Stack, registry: Registry, released: Any,
        applicant: dict[str, Any]) -> None:
    released(FAULTY_VERSION, share=0.5)
    older = {**applicant, "age": FAULTY_ABOVE_AGE + 5}
    sent: list[requests.Response] = []

    def every_worker_stopped_it() -> bool:
        traces = [f"faulty-{len(sent) + n}" for n in range(40)]
        sent.extend(predict_all(canary_stack, [older] * len(traces), traces))
        log = canary_stack.app.log()
        return all(f"[{pid}] app.canary: canary {FAULTY_VERSION} stops serving in this "
                   "worker" in log for pid in servers.worker_pids(canary_stack.app.pid))

    wait_until(every_worker_stopped_it, DEADLINE, "every worker's guard stopping the canary")
    assert {r.status_code for r in sent} == {200}
    assert {r.headers["X-Model-Arm"] for r in sent} == {"production"}
    reported = training_cli(registry, "canary-report", "--act",
                            "--log", str(canary_stack_log(canary_stack)))
    assert reported.returncode == 0, reported.stdout + reported.stderr
    assert "ABORT" in reported.stdout and "the canary broke its limits" in reported.stdout
    assert registry.canary_release() is None


def test_canary_report_on_live_feedback_aborts_a_model_that_ranks_backwards(
        canary_stack: Stack, registry: Registry, released: Any) -> None:
    released(INVERTED_VERSION, share=0.5)
    applicants = labelled_applicants(600)
    traces = [f"feedback-test-{n}" for n in range(len(applicants))]
    answers = predict_all(canary_stack, [a for a, _ in applicants], traces)
    arms = [r.headers["X-Model-Arm"] for r in answers]
    assert arms.count("canary") > 200 and arms.count("production") > 200
    with servers.load_generator_session() as session:
        for response, (_, outcome) in zip(answers, applicants):
            recorded = session.post(f"{canary_stack.url}/api/v1/feedback", timeout=30,
                                    headers=servers.FEEDBACK_AUTH,
                                    json={"request_id": response.json()["request_id"],
                                          "outcome": outcome})
            assert recorded.status_code == 201, recorded.text
    reported = training_cli(registry, "canary-report", "--act",
                            "--log", str(canary_stack_log(canary_stack)),
                            "--feedback", str(canary_stack_log(canary_stack, "feedback")))
    assert reported.returncode == 0, reported.stdout + reported.stderr
    assert "ABORT" in reported.stdout and "worse beyond the margin" in reported.stdout
    assert registry.canary_release() is None


def canary_stack_log(stack: Stack, which: str = "predictions") -> Path:
    """The stack's prediction (or feedback) log."""
    return Path(stack.app.logs["log"]).parent / f"{which}.jsonl"


def training_cli(registry: Registry, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`python -m training ...` on the stack's registry folder (tracking off: the folder is
    the registry of record here, as in a stack without an MLflow server)."""
    environment = {**os.environ, "MODEL_REGISTRY": str(registry.root),
                   "TRAINING_TRACKING": "off", "REPORTS_DIR": str(registry.root.parent /
                                                                  "reports")}
    return subprocess.run([sys.executable, "-m", "training", *arguments], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=300)
