"""The canary arm of one worker: the canary's model, its release, and its guard.

A second ModelHolder follows the registry folder's `canary` file exactly as the first
follows `production`: loaded and verified off the request path by its own watcher thread,
dropped when the release ends. Every worker and replica reads the same file, so each
applies the same share within one watcher interval.

The guard is the worker's own circuit breaker: a canary whose scoring fails more often than
its release allows, or whose p95 scoring time exceeds its limit, stops being used by this
worker at once, and the request it failed is answered by production instead, so a broken
canary costs no failed request. Ending the release for every replica is `canary-report`'s
job (it reads the same failures and timings from the prediction log and aborts).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Callable

from app.model_holder import ModelHolder
from training.artifact import LoadedModel
from training.canary_release import CanaryRelease, limit_breach
from training.registry import Registry

logger = logging.getLogger(__name__)

# The guard judges latency from the newest scorings of this worker.
LATENCY_WINDOW = 50


class CanarySource:
    """The registry folder seen through its canary release (a ModelSource)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.release: CanaryRelease | None = None

    def production_version(self) -> str | None:
        """The canary's version (None: no release); remembers the release it read."""
        self.release = self.registry.canary_release()
        return self.release.version if self.release is not None else None

    def load_verified(self, version: str) -> LoadedModel:
        """The canary's model, verified as production's would be."""
        return self.registry.load_verified(version)

    def fingerprint(self, version: str) -> Hashable:
        """Identity of the version's files."""
        return self.registry.fingerprint(version)


class CanaryGuard:
    """Counts one release's scorings in this worker and trips when they break its limits."""

    def __init__(self, release: CanaryRelease) -> None:
        self.release = release
        self.scorings = 0
        self.errors = 0
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.tripped = ""  # why this worker stopped using the canary ("" while it uses it)
        self._lock = threading.Lock()

    def record(self, milliseconds: float | None) -> str:
        """Count one scoring (None: it failed); the reason when this one trips the guard."""
        with self._lock:
            if self.tripped:
                return ""
            self.scorings += 1
            if milliseconds is None:
                self.errors += 1
            else:
                self.latencies_ms.append(milliseconds)
            self.tripped = limit_breach(self.release, self.scorings, self.errors,
                                        self.latencies_ms)
            return self.tripped


@dataclass(frozen=True)
class ActiveCanary:
    """The canary as one request sees it: release, model and guard, consistent."""

    release: CanaryRelease
    model: LoadedModel
    guard: CanaryGuard


class CanaryArm:
    """The canary of one worker: follows the release, and guards it."""

    def __init__(self, registry: Registry, reload_seconds: float,
                 on_trip: Callable[[CanaryRelease, str], None] | None = None) -> None:
        self.source = CanarySource(registry)
        self.holder = ModelHolder(self.source, reload_seconds, keep_when_unset=False,
                                  pointer="canary release")
        self._on_trip = on_trip
        self._guard: CanaryGuard | None = None
        self._lock = threading.Lock()

    def active(self) -> ActiveCanary | None:
        """The canary to use for this request, None when none runs or the guard tripped."""
        model = self.holder.get()
        release = self.source.release
        if model is None or release is None or release.version != model.version:
            return None  # no release, or its model is still loading
        guard = self._guard_of(release)
        return None if guard.tripped else ActiveCanary(release, model, guard)

    def record(self, canary: ActiveCanary, milliseconds: float | None,
               error: Exception | None = None) -> None:
        """Count one scoring of the canary; log and report the trip it causes, if any."""
        if error is not None:
            logger.error("canary %s failed to score: %r", canary.release.version, error)
        reason = canary.guard.record(milliseconds)
        if reason:
            logger.error("canary %s stops serving in this worker: %s", canary.release.version,
                         reason)
            if self._on_trip is not None:
                self._on_trip(canary.release, reason)

    def _guard_of(self, release: CanaryRelease) -> CanaryGuard:
        """One guard per release: a new release (even of the same version) starts afresh."""
        with self._lock:
            if self._guard is None or self._guard.release != release:
                self._guard = CanaryGuard(release)
            return self._guard
