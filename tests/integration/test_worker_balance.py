"""Real Gunicorn: connections opened at once are spread over the workers
(app/balanced_worker.py), not all kept by the worker that woke first."""

from __future__ import annotations

import socket
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.servers import running_gunicorn, worker_pids

pytestmark = pytest.mark.slow

WORKERS = 2
THREADS = 2
ESTABLISHED = "01"  # the TCP state's code in /proc/net/tcp


def established_inodes(port: int) -> set[str]:
    """Socket inodes of the established TCP connections whose local port is `port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
        if local_port == port and state == ESTABLISHED:
            inodes.add(inode)
    return inodes


def connections_per_worker(pids: list[int], port: int) -> list[int]:
    """How many established connections to `port` each worker process holds."""
    inodes = established_inodes(port)
    counts = []
    for pid in pids:
        sockets = set()
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            target = str(descriptor.readlink()) if descriptor.is_symlink() else ""
            if target.startswith("socket:["):
                sockets.add(target[len("socket:["):-1])
        counts.append(len(sockets & inodes))
    return counts


def all_workers_ready(master_pid: int, log: Path) -> list[int] | None:
    """The workers' pids once each one logged the end of its start hook (its model watcher
    started; it accepts right after), else None: a worker still starting accepts nothing,
    and a burst would rightly go to the others."""
    pids = worker_pids(master_pid)
    text = log.read_text(errors="replace")
    ready = [pid for pid in pids if f"[{pid}] app.model_holder: watching the canary" in text]
    return pids if len(ready) == len(pids) == WORKERS else None


def test_connections_opened_at_once_are_spread_over_the_workers(
        tmp_path: Path, promoted_registry: Path) -> None:
    with running_gunicorn(promoted_registry, tmp_path / "app", workers=WORKERS,
                          threads=THREADS) as app:
        port = int(app.url.rsplit(":", 1)[1])
        pids = wait_until(lambda: all_workers_ready(app.process.pid, app.logs["log"]),
                          timeout=60, what=f"{WORKERS} workers ready")
        # Three bursts, each of one connection per thread of every worker: a worker that
        # wins the race keeps at most one per thread, so each burst ends evenly.
        for burst in range(3):
            with ExitStack() as connections:
                for _ in range(WORKERS * THREADS):
                    connections.enter_context(socket.create_connection(("127.0.0.1", port)))
                held = wait_for_counts(pids, port, [THREADS] * WORKERS)
                assert held == [THREADS] * WORKERS, f"burst {burst}: per worker {held}"
            assert wait_for_counts(pids, port, [0] * WORKERS) == [0] * WORKERS


def wait_for_counts(pids: list[int], port: int, wanted: list[int],
                    timeout: float = 10.0) -> list[int]:
    """The workers' connection counts once they are `wanted`, or the last ones seen when
    `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while (counts := connections_per_worker(pids, port)) != wanted \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    return counts
