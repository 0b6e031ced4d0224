"""Gunicorn's gthread worker, with new connections spread over the workers.

Gunicorn's workers share one listening socket and race to accept. A client that opens
several connections at once (wrk; NGINX filling its upstream keepalive pool) often lands
them all on the worker that woke first: measured at 1,000 one-row predictions a second
(`make bench`'s paced rate), all 8 of wrk's connections sat on one worker in about one run
in three, that worker's one core (its GIL) ~90 % busy while the other idled, and its p50
went from 0.8 ms to 1.3 - 7.9 ms. Keep-alive connections stay where they were accepted, so
the imbalance lasted as long as the connections.

So a worker that already holds one connection per thread stops accepting for a pause
(GUNICORN_BALANCE_PAUSE_MS, 20 by default): a sibling woken by the same connection takes it
first. When the pause ends, the worker accepts every connection still waiting (no sibling
took it in a whole pause: every worker is as busy), so none waits more than one pause and
nothing is refused; the next connection finds the usual rule.

A connection idle in keep-alive between requests is not held: it occupies no thread, and
NGINX keeps up to `keepalive` (16) of them open per NGINX worker for 30 s. Counted, they
made every Gunicorn worker look full for good, and the rule then handed whole bursts to
whichever worker resumed first: measured in `make bench`, wrk's 8 connections straight to
Gunicorn sat 7/1 or 8/0 on the two workers beside NGINX's 4 - 9 idle ones each, and one-row
predict's p99 varied from 3.7 to 6.6 ms between rounds (the bare app, with no NGINX in
front of it: 4/4, 1.7 - 2.2 ms). A connection counts from its accept until its answer
(the time a thread may spend on it), and again from its next request.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

PAUSE_VARIABLE = "GUNICORN_BALANCE_PAUSE_MS"
# Long enough for an idle sibling to be scheduled on a loaded 2-core machine, short enough
# that a connection no sibling takes hardly notices. A host so busy that a woken worker
# waits longer for a core balances less well; a longer pause trades latency for balance.
DEFAULT_PAUSE_MS = 20


def pause_seconds(environ: Mapping[str, str]) -> float:
    """The pause a full worker makes, from PAUSE_VARIABLE (whole milliseconds, at least 1)."""
    raw = environ.get(PAUSE_VARIABLE) or str(DEFAULT_PAUSE_MS)
    try:
        milliseconds = int(raw)
    except ValueError:
        milliseconds = 0
    if milliseconds < 1:
        raise ValueError(f"{PAUSE_VARIABLE} must be a whole number of milliseconds, at least 1;"
                         f" got {raw!r}")
    return milliseconds / 1000


# Read when Gunicorn's master loads the worker class, so a bad value stops it at start.
PAUSE_SECONDS = pause_seconds(os.environ)


class BalancedThreadWorker(ThreadWorker):
    """gthread, except that a worker with a connection per thread lets siblings accept."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paused = False

    def accept(self, listener: Any) -> None:
        """Accept, unless this worker holds a connection per thread: then pause."""
        if self.held_connections() >= self.cfg.threads:
            self.pause_accepting()
            return
        super().accept(listener)

    def held_connections(self) -> int:
        """Connections accepted and not idle in keep-alive (see the module's docstring)."""
        # Both are kept by the event loop's thread, which is the one calling this.
        return self.nr_conns - len(self.keepalived_conns)

    def pause_accepting(self) -> None:
        """Stop accepting for PAUSE_SECONDS; a timer then has the event loop resume."""
        self.paused = True
        self.set_accept_enabled(False)
        timer = threading.Timer(PAUSE_SECONDS, self._defer_resume)
        timer.daemon = True
        timer.start()

    def resume_accepting(self) -> None:
        """End the pause (on the event loop's thread) and accept the connections that no
        sibling took meanwhile; the loop then re-enables accepting."""
        self.paused = False
        for listener in self.sockets:
            self.accept_waiting(listener)

    def accept_waiting(self, listener: Any) -> None:
        """Accept from `listener` until nothing waits (or the worker is at its limit)."""
        listener.setblocking(False)  # as Gunicorn's own switch does: never wait here
        while self.nr_conns < self.worker_connections:
            held = self.nr_conns
            super().accept(listener)  # a listener with nothing waiting accepts nothing
            if self.nr_conns == held:
                return

    def set_accept_enabled(self, enabled: bool) -> None:
        """Gunicorn's switch (its loop calls it whenever the worker has room), held off
        while a pause lasts."""
        super().set_accept_enabled(enabled and not self.paused)

    def _defer_resume(self) -> None:
        try:
            self.method_queue.defer(self.resume_accepting)
        except OSError:  # the worker is shutting down and closed its queue
            pass
