"""Large scoring requests are answered one at a time in each worker process.

A Gunicorn gthread worker runs up to four requests on its threads, and its threads take
turns on the GIL whenever one of them waits (a socket, the log's lock and write, a numpy
operation that releases it). Four 1,000-row batches in flight then interleave, and the
extra is CPU time, not waiting: by all signs each turn finds its rows pushed out of the CPU
cache by the others' (this VM has no hardware counters to count the misses). On the 2-core
machine (the WSGI app called in-process from four threads, 1,000-row batches): 8.3 - 9.5 ms
of CPU a batch interleaved, 6.6 ms one after another, and a longer GIL switch interval
(0.1 s against 0.005) changed nothing: the turns come at the waits, not at the interval.
Through NGINX with 8 connections the service answered 215 batches a second gated, 192
without.

So a request whose body holds at least LARGE_REQUEST_BYTES is parsed, validated, scored,
logged and answered under the worker's gate; the others wait their turn instead of
interleaving. A smaller request (a one-row prediction: ~0.5 KB) never waits for the gate,
so a batch in progress delays it no more than before. The body is read before the gate is
taken, so a client sending slowly never holds it; sending the answer happens after.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

_OPEN: AbstractContextManager[Any] = nullcontext()  # reusable: a small request's no-op


class ScoringGate:
    """The worker's one-at-a-time turn for large scoring requests (0 bytes: never)."""

    def __init__(self, large_request_bytes: int) -> None:
        self.large_request_bytes = large_request_bytes
        self._turn = threading.Lock()

    def admit(self, body_bytes: int) -> AbstractContextManager[Any]:
        """What a request of `body_bytes` is answered under: the gate, or nothing."""
        if 0 < self.large_request_bytes <= body_bytes:
            return self._turn
        return _OPEN

    def busy(self) -> bool:
        """Whether a large request holds the gate now."""
        return self._turn.locked()
