"""Slow request bodies cannot grow NGINX's memory: per-path body limits and limit_conn.

40 connections from one client each start a 1 MiB POST to the predict path and send it in
small pieces with pauses (the review's reproduction raised NGINX's RSS from 7 MB to 48 MB).
NGINX now refuses a declared 1 MiB body at once (413), reads at most the path's limit of a
chunked one, and serves at most `limit_conn` of them at a time (429 for the rest), so its
memory grows by at most limit_conn x the body limit. The RSS before, at the peak and after
is printed, as the issue asks.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from app.config import DEFAULTS
from tests import servers
from tests.servers import Stack

pytestmark = pytest.mark.slow

CONNECTIONS = 40
BODY_BYTES = 1024 * 1024
PIECE_BYTES = 16 * 1024
PAUSE_SECONDS = 0.05  # between rounds of one piece per connection; NGINX waits 10 s
MIB = 1024 * 1024
# Allocator and bookkeeping noise on top of the bodies NGINX may hold.
SLACK_BYTES = 4 * MIB


def nginx_rss(master_pid: int) -> int:
    """Resident memory of NGINX's master and workers, in bytes (from /proc)."""
    total = 0
    for pid in [master_pid, *servers.worker_pids(master_pid)]:
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) * 1024
    return total


def _open(port: int, chunked: bool) -> socket.socket:
    # A short timeout: a send that NGINX does not take within it counts as refused.
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    framing = (b"Transfer-Encoding: chunked" if chunked
               else b"Content-Length: " + str(BODY_BYTES).encode())
    sock.sendall(b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\n" + framing + b"\r\n\r\n")
    return sock


def _piece(chunked: bool) -> bytes:
    data = b"x" * PIECE_BYTES
    return b"%x\r\n%s\r\n" % (PIECE_BYTES, data) if chunked else data


def _status(sock: socket.socket) -> int:
    """The status NGINX answered on this connection (0: none within 10 s)."""
    sock.settimeout(10)
    try:
        head = sock.recv(64)
    except OSError:
        return 0
    match = re.match(rb"HTTP/1\.1 (\d{3})", head)
    return int(match.group(1)) if match else 0


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_slow_bodies_keep_nginx_memory_bounded(stack: Stack, tmp_path: Path,
                                               chunked: bool) -> None:
    template = servers.NGINX_TEMPLATE.read_text()
    per_client = int(re.search(r"limit_conn credit_risk_conn (\d+);", template).group(1))
    assert BODY_BYTES > DEFAULTS["MAX_PREDICT_BYTES"], "the slow bodies must be over the limit"
    bound = per_client * DEFAULTS["MAX_PREDICT_BYTES"] + SLACK_BYTES
    # A fresh NGINX: its rate and connection zones are empty.
    with servers.running_nginx(stack.app.url, run_dir=tmp_path / "edge") as edge:
        port = int(edge.url.rsplit(":", 1)[1])
        before = nginx_rss(edge.pid)
        sockets = [_open(port, chunked) for _ in range(CONNECTIONS)]
        open_ = set(range(CONNECTIONS))
        peak = before
        try:
            for _ in range(BODY_BYTES // PIECE_BYTES):
                for index in list(open_):
                    try:
                        sockets[index].sendall(_piece(chunked))
                    except OSError:  # NGINX answered (413, 429), closed or stopped reading
                        open_.discard(index)
                peak = max(peak, nginx_rss(edge.pid))
                if not open_:
                    break
                time.sleep(PAUSE_SECONDS)
            statuses = sorted(_status(sock) for sock in sockets)
        finally:
            for sock in sockets:
                sock.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(servers.worker_pids(edge.pid)) == 0:
            time.sleep(0.1)
        after = nginx_rss(edge.pid)
    print(f"\nNGINX RSS with {CONNECTIONS} slow 1 MiB bodies "
          f"({'chunked' if chunked else 'Content-Length'}): before {before / MIB:.1f} MiB, "
          f"peak {peak / MIB:.1f} MiB, after {after / MIB:.1f} MiB; bound "
          f"{bound / MIB:.1f} MiB above before; answers {statuses}")
    assert peak - before <= bound, f"NGINX grew by {(peak - before) / MIB:.1f} MiB"
    assert set(statuses) <= {413, 429}, edge.log("error")[-3000:]
