"""A worker's rolling window of recent inputs and their drift against the model's reference.

Only the PSI of each input is published (`training.drift.window_psi`: a few milliseconds
for 1,000 rows, where the full pandas report with its tests took hundreds under load and held
the GIL against the worker's requests). It is recomputed every `every` rows rather than per
request, and never on a request thread: the request that crosses the mark hands a snapshot to
the worker's drift thread (started on first use, after Gunicorn's fork) and returns. A
snapshot not yet computed is replaced by a newer one, so a burst of traffic queues at most one
computation, and the thread rests `min_seconds` between two computations: under heavy traffic
the gauge lags by at most that long, instead of costing a computation per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from training.drift import window_psi

logger = logging.getLogger(__name__)

# Called with the PSI of each input and the number of rows it was computed over.
DriftCallback = Callable[[dict[str, float], int], None]


class DriftWindow:
    """The last `size` scored rows of this worker, with a periodic drift report."""

    def __init__(self, size: int, every: int, min_rows: int,
                 on_report: DriftCallback, min_seconds: float = 0.0) -> None:
        self.rows: deque[dict[str, Any]] = deque(maxlen=max(size, 1))
        self.every = max(every, 1)
        self.min_rows = min_rows
        self.min_seconds = max(min_seconds, 0.0)
        self._on_report = on_report
        self._since_report = 0
        self._count_lock = threading.Lock()
        self._compute_lock = threading.Lock()
        self.last_psi: dict[str, float] | None = None
        self._pending: tuple[list[dict[str, Any]], dict[str, Any]] | None = None
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, rows: Sequence[dict[str, Any]], reference: dict[str, Any]) -> None:
        """Remember scored rows; recompute drift when `every` rows arrived since the last."""
        with self._count_lock:
            self.rows.extend(rows)
            self._since_report += len(rows)
            due = self._since_report >= self.every and len(self.rows) >= self.min_rows
            if due:
                self._since_report = 0
                snapshot = list(self.rows)
        if due:
            self._submit(snapshot, reference)

    def _submit(self, rows: list[dict[str, Any]], reference: dict[str, Any]) -> None:
        """Give the drift thread the newest snapshot to compute."""
        with self._wakeup:
            self._pending = (rows, reference)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._compute_forever,
                                                name="drift-window", daemon=True)
                self._thread.start()
            self._wakeup.notify()

    def _compute_forever(self) -> None:
        while True:
            with self._wakeup:
                while self._pending is None:
                    self._wakeup.wait()
                rows, reference = self._pending
                self._pending = None
            started = time.monotonic()
            self.compute(rows, reference)
            # Snapshots handed over meanwhile replace each other; the newest is computed next.
            time.sleep(max(0.0, started + self.min_seconds - time.monotonic()))

    def compute(self, rows: list[dict[str, Any]], reference: dict[str, Any]) -> None:
        """Drift of `rows` against `reference`, published through the callback."""
        if not self._compute_lock.acquire(blocking=False):
            return  # a computation is running; the next mark will catch up
        try:
            self.last_psi = window_psi(rows, reference)
            self._on_report(self.last_psi, len(rows))
        except Exception:  # noqa: BLE001 - monitoring must never fail a prediction
            logger.exception("drift computation failed")
        finally:
            self._compute_lock.release()
