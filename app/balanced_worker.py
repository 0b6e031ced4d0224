"""Gunicorn's gthread worker, with new connections spread over the workers.

Gunicorn's workers share one listening socket and race to accept. A client that opens
several connections at once (wrk; NGINX filling its upstream keepalive pool) often lands
them all on the worker that woke first: measured at 1,000 one-row predictions a second
(`make bench`'s paced rate), all 8 of wrk's connections sat on one worker in about one run
in three, that worker's one core (its GIL) ~90 % busy while the other idled, and its p50
went from 0.8 ms to 1.3 - 7.9 ms. Keep-alive connections stay where they were accepted, so
the imbalance lasted as long as the connections.

So a worker that already holds one connection per thread stops accepting for PAUSE_SECONDS:
a sibling woken by the same connection takes it first. When the pause ends, the worker
accepts without pausing for as long again, so a connection that no sibling took (every
worker is as busy) waits at most one pause; nothing is refused.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

# Long enough for an idle sibling to be scheduled on a loaded 2-core machine, short enough
# that a connection no sibling takes hardly notices.
PAUSE_SECONDS = 0.02


class BalancedThreadWorker(ThreadWorker):
    """gthread, except that a worker with a connection per thread lets siblings accept."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paused = False
        # Until then (monotonic seconds), the worker accepts without pausing: the pause it
        # just made is the only wait a connection no sibling took may have.
        self.unpaused_until = 0.0

    def accept(self, listener: Any) -> None:
        """Accept, unless this worker is full and did not just pause: then pause."""
        if self.nr_conns >= self.cfg.threads and time.monotonic() >= self.unpaused_until:
            self.pause_accepting()
            return
        super().accept(listener)

    def pause_accepting(self) -> None:
        """Stop accepting for PAUSE_SECONDS; a timer then has the event loop resume."""
        self.paused = True
        self.set_accept_enabled(False)
        timer = threading.Timer(PAUSE_SECONDS, self._defer_resume)
        timer.daemon = True
        timer.start()

    def resume_accepting(self) -> None:
        """End the pause (on the event loop's thread, which re-enables accepting); a
        connection still waiting is accepted in the next PAUSE_SECONDS without a pause."""
        self.paused = False
        self.unpaused_until = time.monotonic() + PAUSE_SECONDS

    def set_accept_enabled(self, enabled: bool) -> None:
        """Gunicorn's switch (its loop calls it whenever the worker has room), held off
        while a pause lasts."""
        super().set_accept_enabled(enabled and not self.paused)

    def _defer_resume(self) -> None:
        try:
            self.method_queue.defer(self.resume_accepting)
        except OSError:  # the worker is shutting down and closed its queue
            pass
