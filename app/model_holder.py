"""The serving model of one worker, following the registry's `production` pointer.

A worker loads the production model once, then reads the (tiny) pointer file at most every
`reload_seconds`. When it names another version, the request thread that noticed loads and
verifies it while every other thread keeps scoring with the current model, then the
reference is swapped under a lock: no request waits for a load, none is dropped, and a
request that already holds a model finishes with it. A version that fails to load (missing
file, sha256 mismatch, other library versions) is refused, reported, remembered so that it
is not retried on every check, and the previous model keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from training.artifact import LoadedModel
from training.registry import Registry

logger = logging.getLogger(__name__)

LoadCallback = Callable[[LoadedModel, "LoadedModel | None"], None]
FailureCallback = Callable[[str, Exception], None]


class ModelHolder:
    """Holds the verified production model of one worker and swaps it atomically."""

    def __init__(self, registry_dir: Path, reload_seconds: float,
                 on_load: LoadCallback | None = None,
                 on_failure: FailureCallback | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = Registry(Path(registry_dir))
        self.reload_seconds = reload_seconds
        self._on_load = on_load
        self._on_failure = on_failure
        self._clock = clock
        self._model: LoadedModel | None = None
        self._refused: set[str] = set()
        self._swap_lock = threading.Lock()  # guards the reference and the refused set
        self._check_lock = threading.Lock()  # one thread checks; the others do not wait
        self._next_check = 0.0

    @property
    def model(self) -> LoadedModel | None:
        """The model serving right now, without checking the pointer."""
        return self._model

    def get(self) -> LoadedModel | None:
        """The serving model, after a pointer check if one is due (None: nothing loaded)."""
        if self._clock() >= self._next_check:
            self.refresh(wait=False)
        return self._model

    def refresh(self, wait: bool = True) -> bool:
        """Follow the production pointer now; True when a new model was swapped in."""
        if not self._check_lock.acquire(blocking=wait):
            return False  # another thread is checking or loading; keep serving meanwhile
        try:
            self._next_check = self._clock() + self.reload_seconds
            return self._follow_pointer()
        finally:
            self._check_lock.release()

    def _follow_pointer(self) -> bool:
        try:
            version = self.registry.production_version()
        except OSError as error:
            logger.error("cannot read the production pointer in %s: %s",
                         self.registry.root, error)
            return False
        current = self._model.version if self._model is not None else None
        if version is None or version == current or version in self._refused:
            return False
        try:
            loaded = self.registry.load(version)
        except Exception as error:  # noqa: BLE001 - any failure must leave the old model
            with self._swap_lock:
                self._refused.add(version)
            logger.error("refused model version %s (still serving %s): %s", version,
                         current or "nothing", error)
            if self._on_failure is not None:
                self._on_failure(version, error)
            return False
        with self._swap_lock:
            previous, self._model = self._model, loaded
        logger.info("serving model version %s (previous: %s)", loaded.version,
                    current or "none")
        if self._on_load is not None:
            self._on_load(loaded, previous)
        return True
