"""The serving model of one worker, following the production pointer from a watcher thread.

Each worker process runs one watcher thread (started after Gunicorn forks it) that reads the
production pointer every `reload_seconds`, whether or not requests arrive. When the pointer
names another version, the watcher loads and verifies it while the request threads keep
scoring with the current model, then swaps the reference: no request waits for a load, none
is dropped, and a request that already holds a model finishes with it.

A version that cannot serve never replaces the one serving. Why it failed decides when it
is tried again:
- integrity (sha256, library versions, card, scoring check): remembered together with the
  identity of the version's files, and tried again only when those files change (a copy
  that was still being written, a repaired card);
- transient (OSError such as EMFILE or a vanished file): tried again with exponential
  backoff.
Pointer names are compared with pointer names, so a copy of a version under another name
is loaded once, not on every check.

`reload_seconds == 0` (tests, debugging) follows the pointer on the request path instead,
on every `get()`, and starts no thread.

The same holder follows the canary release (app/canary.py) with `keep_when_unset=False`:
a pointer that names nothing then stops the model serving, since an ended canary must not.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from training.artifact import LoadedModel

logger = logging.getLogger(__name__)

LoadCallback = Callable[[LoadedModel, "LoadedModel | None"], None]
FailureCallback = Callable[[str, Exception], None]
MAX_RETRY_SECONDS = 60.0
# Every prediction response names the version that scored it in this header (and its body).
MODEL_VERSION_HEADER = "X-Model-Version"
# And the arm that answered: production, or the canary while one runs (app/canary.py).
MODEL_ARM_HEADER = "X-Model-Arm"


class ModelSource(Protocol):
    """Where production models come from (the file registry today)."""

    def production_version(self) -> str | None:
        """The name production points at, None before the first promotion."""

    def load_verified(self, version: str) -> LoadedModel:
        """The model of `version`, verified to be able to serve; raises otherwise."""

    def fingerprint(self, version: str) -> Hashable:
        """Identity of the stored version, which changes when its content is replaced."""


@dataclass
class _Retry:
    """A version whose load failed for a transient reason."""

    attempts: int
    not_before: float


class ModelHolder:
    """Holds the verified production model of one worker and swaps it atomically."""

    def __init__(self, source: ModelSource, reload_seconds: float,
                 on_load: LoadCallback | None = None,
                 on_failure: FailureCallback | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 keep_when_unset: bool = True, pointer: str = "production pointer") -> None:
        self.source = source
        self.keep_when_unset = keep_when_unset
        self.pointer = pointer  # what the logs call what this holder follows
        self.reload_seconds = reload_seconds
        self._on_load = on_load
        self._on_failure = on_failure
        self._clock = clock
        self._model: LoadedModel | None = None
        self._serving_name: str | None = None
        self._refused: dict[str, Hashable] = {}
        self._retries: dict[str, _Retry] = {}
        self._pointer_error = ""
        self._check_lock = threading.Lock()  # one check or load at a time
        self._watcher_lock = threading.Lock()
        self._watcher_pid: int | None = None
        self._stop = threading.Event()

    @property
    def model(self) -> LoadedModel | None:
        """The model serving right now (None: nothing verified loaded)."""
        return self._model

    def get(self) -> LoadedModel | None:
        """The serving model; never loads one, unless reload_seconds is 0."""
        if self.reload_seconds <= 0:
            self.refresh(wait=False)
        elif self._watcher_pid != os.getpid():
            # A server without Gunicorn's post_worker_init hook, or a process forked after
            # the app was built: the watcher belongs to this process, so start it here.
            self.start_watcher()
        return self._model

    # --- the watcher -----------------------------------------------------------------
    def start_watcher(self) -> bool:
        """Start this process's watcher thread (once per process); False if not started."""
        if self.reload_seconds <= 0:
            return False
        with self._watcher_lock:
            if self._watcher_pid == os.getpid():
                return False
            self._stop = threading.Event()
            thread = threading.Thread(target=self._watch, args=(self._stop,),
                                      name="model-watcher", daemon=True)
            thread.start()
            self._watcher_pid = os.getpid()
        logger.info("watching the %s every %gs", self.pointer, self.reload_seconds)
        return True

    def stop_watcher(self) -> None:
        """Stop the watcher thread at its next wake-up (tests, shutdown)."""
        self._stop.set()
        with self._watcher_lock:
            self._watcher_pid = None

    def _watch(self, stop: threading.Event) -> None:
        while not stop.wait(self.reload_seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the watcher must outlive any surprise
                logger.exception("the model watcher failed a check; still watching")

    # --- following the pointer -------------------------------------------------------
    def refresh(self, wait: bool = True) -> bool:
        """Follow the production pointer now; True when a new model was swapped in."""
        if not self._check_lock.acquire(blocking=wait):
            return False  # another thread is checking or loading; keep serving meanwhile
        try:
            return self._follow_pointer()
        finally:
            self._check_lock.release()

    def _follow_pointer(self) -> bool:
        try:
            name = self.source.production_version()
        except Exception as error:  # noqa: BLE001 - a bad pointer must leave the old model
            self._report_pointer_error(error)
            return False
        self._pointer_error = ""
        if name is None and not self.keep_when_unset and self._model is not None:
            logger.info("%s names no version: %s stops serving", self.pointer,
                        self._serving_name)
            self._model = self._serving_name = None
            return True
        if name is None or name == self._serving_name or not self._due(name):
            return False
        try:
            fingerprint = self.source.fingerprint(name)
        except Exception as error:  # noqa: BLE001 - what it is cannot be told yet: try later
            self._retry_later(name, error)
            return False
        try:
            loaded = self.source.load_verified(name)
        except OSError as error:
            self._retry_later(name, error)
            return False
        except Exception as error:  # noqa: BLE001 - any other failure: refused until changed
            self._refused[name] = fingerprint
            self._report_failure(name, error, "refused")
            return False
        self._refused.pop(name, None)
        self._retries.pop(name, None)
        previous, self._model, self._serving_name = self._model, loaded, name
        logger.info("serving model version %s (previous: %s)", name,
                    previous.version if previous is not None else "none")
        if self._on_load is not None:
            self._on_load(loaded, previous)
        return True

    def _due(self, name: str) -> bool:
        """Whether `name` may be tried now (not refused as it is, not backing off)."""
        if name in self._refused:
            try:
                if self.source.fingerprint(name) == self._refused[name]:
                    return False
            except OSError:
                return False
            logger.info("model version %s changed since it was refused; trying it again",
                        name)
            del self._refused[name]
        retry = self._retries.get(name)
        return retry is None or self._clock() >= retry.not_before

    def _retry_later(self, name: str, error: Exception) -> None:
        attempts = self._retries[name].attempts + 1 if name in self._retries else 1
        delay = min(max(self.reload_seconds, 1.0) * 2 ** (attempts - 1),
                    max(MAX_RETRY_SECONDS, self.reload_seconds))
        self._retries[name] = _Retry(attempts, self._clock() + delay)
        self._report_failure(name, error, f"could not load (attempt {attempts}, next in "
                                          f"{delay:g}s)")

    def _report_failure(self, name: str, error: Exception, what: str) -> None:
        current = self._model.version if self._model is not None else "nothing"
        logger.error("%s model version %s (still serving %s): %s", what, name, current, error)
        if self._on_failure is not None:
            self._on_failure(name, error)

    def _report_pointer_error(self, error: Exception) -> None:
        """Log an unreadable pointer once per distinct error, not on every check."""
        message = f"{type(error).__name__}: {error}"
        if message != self._pointer_error:
            logger.error("cannot read the %s (still serving %s): %s", self.pointer,
                         self._serving_name or "nothing", message)
            self._pointer_error = message
