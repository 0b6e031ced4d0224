"""Real Gunicorn: connections opened at once are spread over the workers
(app/balanced_worker.py), not all kept by the worker that woke first, also beside
connections idle in keep-alive (NGINX's pool)."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest

from app.balanced_worker import PAUSE_VARIABLE
from tests.helpers import wait_until
from tests.servers import GUNICORN_COMMAND, ROOT, running_gunicorn, worker_pids

pytestmark = pytest.mark.slow

WORKERS = 2
THREADS = 2
# TCP states' codes in /proc/net/tcp
ESTABLISHED = "01"
LISTENING = "0A"
# A full worker pauses long enough that a sibling woken on a busy machine (the suite runs
# beside others) takes the burst's next connection: the 20 ms default assumes a scheduler
# that runs a woken process within 20 ms, which a loaded test host does not promise.
PATIENT_PAUSE = {PAUSE_VARIABLE: "500"}


def connection_inodes(port: int, established_only: bool) -> dict[str, int]:
    """Socket inode -> client port of the TCP connections whose local port is `port`: the
    established ones, or every one not yet closed by the server (any state but listening)."""
    inodes = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
        counted = state == ESTABLISHED if established_only else state != LISTENING
        if local_port == port and counted:
            inodes[inode] = int(fields[2].rsplit(":", 1)[1], 16)
    return inodes


def open_files(pid: int) -> dict[str, str]:
    """The process's descriptors (their numbers) -> what each one names, e.g. socket:[123];
    one closed while listed (a thread's own selector) is left out."""
    files = {}
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            files[descriptor.name] = str(descriptor.readlink())
        except OSError:
            continue
    return files


def polled_inodes(pid: int, files: dict[str, str]) -> set[str]:
    """Inodes of the files the process's epoll instances watch (`files`: its open_files): a
    Gunicorn worker's event loop watches a connection idle in keep-alive (for its next
    request), not one a thread is handling."""
    inodes = set()
    for descriptor, target in files.items():
        if target != "anon_inode:[eventpoll]":
            continue
        try:
            info = Path(f"/proc/{pid}/fdinfo/{descriptor}").read_text()
        except OSError:  # closed meanwhile
            continue
        inodes |= {str(int(inode, 16)) for inode in re.findall(r"^tfd:.* ino:([0-9a-f]+)",
                                                               info, re.MULTILINE)}
    return inodes


def connections_per_worker(pids: list[int], port: int, established_only: bool = True,
                           clients: set[int] | None = None,
                           polled_only: bool = False) -> list[int]:
    """How many connections to `port` each worker process holds (see connection_inodes);
    with `clients`, only those from these client ports; with `polled_only`, only those its
    event loop watches (see polled_inodes)."""
    inodes = connection_inodes(port, established_only)
    counts = []
    for pid in pids:
        files = open_files(pid)
        sockets = {target[len("socket:["):-1] for target in files.values()
                   if target.startswith("socket:[")}
        if polled_only:
            sockets &= polled_inodes(pid, files)
        counts.append(sum(1 for inode in sockets & inodes.keys()
                          if clients is None or inodes[inode] in clients))
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
                          threads=THREADS, env=PATIENT_PAUSE) as app:
        port = int(app.url.rsplit(":", 1)[1])
        pids = wait_until(lambda: all_workers_ready(app.process.pid, app.logs["log"]),
                          timeout=60, what=f"{WORKERS} workers ready")
        # Three bursts, each of one connection per thread of every worker: a worker that
        # wins the race keeps at most one per thread, so each burst ends evenly.
        for burst in range(3):
            # A burst starts once the workers have closed every earlier connection (the
            # readiness probe's, the last burst's): until then a worker still counts one as
            # held, a thread of it finishing it, and rightly looks full to the burst. The
            # client's close turns the server's side from established to CLOSE_WAIT at
            # once, so "none established" is too early: that failed CI with [3, 1] on a
            # loaded machine, and with a worker made 200 ms slow to close, 13 of 20 bursts.
            wait_for_counts(pids, port, [0] * WORKERS, f"before burst {burst}",
                            established_only=False)
            with ExitStack() as connections:
                for _ in range(WORKERS * THREADS):
                    connections.enter_context(socket.create_connection(("127.0.0.1", port)))
                wait_for_counts(pids, port, [THREADS] * WORKERS, f"burst {burst}")


def test_connections_idle_in_keep_alive_do_not_make_a_worker_look_full(
        tmp_path: Path, promoted_registry: Path) -> None:
    # NGINX's pool beside a client's burst (make bench: wrk straight to Gunicorn): each
    # worker already holds a connection per thread, all idle between requests. They hold
    # no thread, so the burst must still be spread, not handed to whichever worker's pause
    # ends first.
    with running_gunicorn(promoted_registry, tmp_path / "app", workers=WORKERS,
                          threads=THREADS, env=PATIENT_PAUSE) as app:
        host, port = app.url.removeprefix("http://").split(":")
        pids = wait_until(lambda: all_workers_ready(app.process.pid, app.logs["log"]),
                          timeout=60, what=f"{WORKERS} workers ready")
        # The pool is opened at once, as NGINX fills it (so the rule spreads it too: one
        # connection after another may now rightly land on one worker), then used once.
        wait_for_counts(pids, int(port), [0] * WORKERS, "the readiness probe's connection closed",
                        established_only=False)
        idle = [http.client.HTTPConnection(host, int(port), timeout=10)
                for _ in range(WORKERS * THREADS)]
        for connection in idle:
            connection.connect()
        wait_for_counts(pids, int(port), [THREADS] * WORKERS, "the pool spread")
        for connection in idle:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            assert response.status == 200 and response.read()
        # An answer reaches the client just before its worker puts the connection back in
        # keep-alive (until then a thread holds it, and the worker rightly looks full).
        wait_for_counts(pids, int(port), [THREADS] * WORKERS, "the pool idle in keep-alive",
                        polled_only=True)
        with ExitStack() as burst:
            clients = set()
            for _ in range(WORKERS * THREADS):
                opened = burst.enter_context(socket.create_connection((host, int(port))))
                clients.add(opened.getsockname()[1])
            wait_for_counts(pids, int(port), [THREADS] * WORKERS, "the burst",
                            clients=clients)
        for connection in idle:
            connection.request("GET", "/healthz")
            assert connection.getresponse().status == 200, "an idle connection was dropped"
            connection.close()


def test_a_full_worker_without_siblings_still_accepts_after_its_pause(
        tmp_path: Path, promoted_registry: Path) -> None:
    # One worker, one thread, busy with a connection whose request has not come yet: the
    # worker is full and no sibling exists, so a new connection must wait out one pause,
    # not forever.
    with running_gunicorn(promoted_registry, tmp_path / "app", workers=1, threads=1,
                          env=PATIENT_PAUSE) as app:
        host, port = app.url.removeprefix("http://").split(":")
        pids = worker_pids(app.process.pid)
        wait_for_counts(pids, int(port), [0], "the readiness probe's connection closed",
                        established_only=False)
        busy = http.client.HTTPConnection(host, int(port), timeout=30)
        busy.connect()
        wait_for_counts(pids, int(port), [1], "the busy connection held")
        second = http.client.HTTPConnection(host, int(port), timeout=30)
        second.request("GET", "/healthz", headers={"Connection": "close"})
        busy.request("GET", "/healthz")
        assert busy.getresponse().status == 200, "the first connection was dropped"
        assert second.getresponse().status == 200


def test_gunicorn_does_not_start_with_a_bad_pause(tmp_path: Path) -> None:
    environment = {**os.environ, PAUSE_VARIABLE: "soon", "GUNICORN_BIND": "127.0.0.1:0",
                   "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    started = subprocess.run(
        GUNICORN_COMMAND, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert started.returncode != 0
    assert f"{PAUSE_VARIABLE} must be a whole number of milliseconds" in started.stderr


def wait_for_counts(pids: list[int], port: int, wanted: list[int], when: str,
                    established_only: bool = True, clients: set[int] | None = None,
                    polled_only: bool = False) -> None:
    """Wait until the workers hold `wanted` connections each (see connections_per_worker);
    fail naming `when` and the last counts seen."""
    seen: list[list[int]] = []

    def reached() -> bool:
        seen.append(connections_per_worker(pids, port, established_only, clients,
                                           polled_only))
        return seen[-1] == wanted

    wait_until(reached, timeout=10, interval=0.05,
               what=lambda: f"{when}: {wanted} connections per worker (last seen {seen[-1]})")
