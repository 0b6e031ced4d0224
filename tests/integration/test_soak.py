"""Soak: workers recycled hundreds of times under steady load and junk stay healthy.

Gunicorn recycles a worker every few requests (GUNICORN_MAX_REQUESTS), Prometheus' files
live on a 1 MiB tmpfs, and clients keep scoring through NGINX while a junk client sends
invented methods and oversized bodies. Before the dead workers' metric files were folded
away, such a directory filled up within ~100 recycles and every new worker died of SIGBUS.
The readings (metrics directory, NGINX and worker memory) are printed before and after.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from app.metrics_files import MIN_FREE_BYTES
from tests.helpers import require_executable, wait_for_http
from tests.integration.stress_support import (JunkLoad, children, fill_disk, rss_kib,
                                              small_tmpfs, used_bytes, wait_until)
from tests.servers import BackgroundLoad, Stack, running_gunicorn, running_stack, worker_pids

pytestmark = pytest.mark.slow

RECYCLES = 300
WORKERS = 2
MAX_REQUESTS = 3
DEADLINE_SECONDS = 600.0  # a guard against a hang, not a timing check (the time is printed)
# Live workers' files (counter, histogram, gauge each) and the two merged files; a page
# or two each on the tmpfs.
MAX_METRIC_FILES = 3 * WORKERS + 2
MAX_METRICS_BYTES = 256 * 1024


def readings(stack: Stack, metrics_dir: Path) -> dict[str, int]:
    """What must not grow: metric files and their bytes, NGINX's and the workers' memory."""
    workers = worker_pids(stack.app.pid)
    return {"metric files": len(list(metrics_dir.glob("*.db"))),
            "metrics bytes": used_bytes(metrics_dir),
            "nginx rss KiB": rss_kib([stack.edge.pid, *children(stack.edge.pid)]),
            "worker rss KiB (mean)": rss_kib(workers) // max(len(workers), 1)}


def predictions_counted(stack: Stack) -> float:
    """Successful predictions in /metrics (asked of Gunicorn: NGINX does not publish it)."""
    text = requests.get(stack.app.url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("credit_http_requests_total{")
               and 'route="/api/v1/predict"' in line and 'status="200"' in line)


def test_hundreds_of_worker_recycles_keep_metrics_bounded_and_requests_answered(
        promoted_registry: Path, tmp_path: Path, applicant: dict[str, Any]) -> None:
    require_executable("nginx")
    env = {"GUNICORN_MAX_REQUESTS": str(MAX_REQUESTS), "GUNICORN_MAX_REQUESTS_JITTER": "2"}
    with small_tmpfs(tmp_path / "metrics", "1m") as metrics_dir, \
            running_stack(promoted_registry, tmp_path, workers=WORKERS,
                          env={**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}) as stack:
        def boots() -> int:
            return stack.app.log().count("Booting worker")

        with BackgroundLoad(stack.url, applicant, threads=3,
                            max_seconds=DEADLINE_SECONDS + 60) as load:
            assert load.wait_until(lambda done: len(done) >= 20, timeout=120)
            before, first_boots = readings(stack, metrics_dir), boots()
            started = time.monotonic()
            with JunkLoad(stack.url) as junk:
                wait_until(lambda: boots() - first_boots >= RECYCLES,
                           f"{RECYCLES} worker recycles", DEADLINE_SECONDS)
            elapsed = time.monotonic() - started
        after = readings(stack, metrics_dir)
        counted = predictions_counted(stack)
        recycles = boots() - first_boots
        sigbus = stack.app.log().count("SIGBUS")
    answered = sum(1 for outcome in load.outcomes if outcome.status == 200)
    print(f"\nsoak: {recycles} worker recycles in {elapsed:.0f}s, {len(load.outcomes)} valid "
          f"requests ({len(load.failures())} failed), junk answers {dict(junk.statuses)}")
    for name in before:
        print(f"soak: {name}: before {before[name]}, after {after[name]}")
    assert load.failures() == []
    assert sigbus == 0
    assert junk.unexpected == []
    assert after["metric files"] <= MAX_METRIC_FILES
    assert after["metrics bytes"] <= MAX_METRICS_BYTES
    # Folding dead workers' files lost no sample: /metrics counts every answered request.
    assert counted == answered


def test_readyz_is_503_while_the_metrics_directory_is_short_of_space(
        promoted_registry: Path, tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "metrics", "1m") as metrics_dir, \
            running_gunicorn(promoted_registry, tmp_path / "app",
                             env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}) as app:
        # Short of what a new worker needs, yet room for this worker's next samples (a
        # full tmpfs would be SIGBUS on the next new series, which is what is prevented).
        filler = fill_disk(metrics_dir, leave_bytes=MIN_FREE_BYTES // 2)
        answer = requests.get(app.url + "/readyz", timeout=10)
        assert answer.status_code == 503 and "metrics" in answer.json()["message"]
        filler.unlink()
        wait_for_http(app.url + "/readyz", timeout=30)
