"""The model holder's decisions, against a source whose pointer, files and loads a test sets:
what it serves when a pointer names nothing, when a refused version is tried again, what a
check returns and says, and that a check waits for the one in progress."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.model_holder import ModelHolder
from tests.helpers import wait_until

DEADLINE_SECONDS = 30.0


@dataclass
class Model:
    """What the holder needs of a loaded model: its version."""

    version: str


@dataclass
class Source:
    """A registry in memory: the pointer, each version's fingerprint, the versions that
    fail to load (and how), and every call the holder made."""

    pointer: str | None = None
    fingerprints: dict[str, Any] = field(default_factory=dict)
    failing: dict[str, Exception] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def production_version(self) -> str | None:
        self.calls.append("pointer")
        return self.pointer

    def load_verified(self, version: str) -> Any:
        self.calls.append(f"load {version}")
        if version in self.failing:
            raise self.failing[version]
        return Model(version)

    def fingerprint(self, version: str) -> Hashable:
        self.calls.append(f"fingerprint {version}")
        value = self.fingerprints.get(version, version)
        if isinstance(value, Exception):
            raise value
        return value


def holder_of(source: Source, **options: Any) -> ModelHolder:
    """A holder that follows `source` only when a test calls refresh()."""
    return ModelHolder(source, reload_seconds=60, **options)  # type: ignore[arg-type]


def test_a_production_pointer_that_names_nothing_leaves_the_model_serving() -> None:
    source = Source(pointer="v1")
    holder = holder_of(source)
    assert holder.refresh() is True
    source.pointer = None
    assert holder.refresh() is False
    assert holder.model == Model("v1")


def test_a_canary_pointer_that_names_nothing_stops_its_model_once(
        caplog: pytest.LogCaptureFixture) -> None:
    source = Source(pointer=None)
    holder = holder_of(source, keep_when_unset=False, pointer="canary pointer")
    with caplog.at_level(logging.INFO, logger="app.model_holder"):
        assert holder.refresh() is False  # nothing served yet: nothing to stop
        source.pointer = "v2"
        assert holder.refresh() is True
        caplog.clear()
        source.pointer = None
        assert holder.refresh() is True
        assert holder.refresh() is False
    assert holder.model is None
    assert caplog.messages == ["canary pointer names no version: v2 stops serving"]


def test_an_unreadable_pointer_is_no_new_model() -> None:
    source = Source(pointer="v1")
    holder = holder_of(source)
    holder.refresh()
    source.production_version = _raises(OSError("pointer gone"))  # type: ignore[method-assign]
    assert holder.refresh() is False
    assert holder.model == Model("v1")


def test_a_refused_version_whose_files_cannot_be_read_waits_without_a_new_failure() -> None:
    failures: list[str] = []
    source = Source(pointer="v2", failing={"v2": ValueError("bad sha256")})
    holder = holder_of(source, on_failure=lambda name, error: failures.append(name))
    assert holder.refresh() is False
    source.fingerprints["v2"] = OSError("copy in progress")
    source.calls.clear()
    assert holder.refresh() is False
    assert source.calls == ["pointer", "fingerprint v2"]  # no load, no retry scheduled
    assert failures == ["v2"]


def test_a_refused_version_is_tried_again_once_its_files_change_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    source = Source(pointer="v2", failing={"v2": ValueError("bad sha256")})
    holder = holder_of(source)
    holder.refresh()
    assert holder.refresh() is False  # the same files: not tried again
    source.fingerprints["v2"] = "repaired"
    del source.failing["v2"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="app.model_holder"):
        assert holder.refresh() is True
    assert caplog.messages[0] == "model version v2 changed since it was refused; trying it again"
    assert holder.model == Model("v2")


def test_a_check_waits_for_the_check_in_progress_and_then_makes_its_own() -> None:
    """Thread A's check is held inside the pointer read; B's refresh() waits at the lock (its
    frame is seen there), then reads the pointer itself once A is done."""
    entered, release = threading.Event(), threading.Event()
    source = Source(pointer="v1")
    read_pointer = source.production_version

    def held_once() -> str | None:
        if not entered.is_set():
            entered.set()
            release.wait(DEADLINE_SECONDS)
        return read_pointer()

    source.production_version = held_once  # type: ignore[method-assign]
    holder = holder_of(source)
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(holder.refresh)
        assert entered.wait(DEADLINE_SECONDS)
        assert holder.refresh(wait=False) is False  # not waiting: nothing checked
        waiting: list[threading.Thread] = []
        second = pool.submit(_check_marked, holder, waiting)
        wait_until(lambda: bool(waiting) and _inside(waiting[0], "refresh"),
                   DEADLINE_SECONDS, "the second check waiting inside refresh()")
        release.set()
        assert (first.result(DEADLINE_SECONDS), second.result(DEADLINE_SECONDS)) == (True, False)
    assert source.calls == ["pointer", "fingerprint v1", "load v1", "pointer"]


def _check_marked(holder: ModelHolder, threads: list[threading.Thread]) -> bool:
    threads.append(threading.current_thread())
    return holder.refresh()


def _inside(thread: threading.Thread, function: str) -> bool:
    """Whether `thread` is running `function` (mutmut runs it under a longer name)."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if function in frame.f_code.co_name:
            return True
        frame = frame.f_back
    return False


def _raises(error: Exception) -> Any:
    def read() -> None:
        raise error
    return read


def test_each_swap_names_the_version_and_the_one_it_replaced(
        caplog: pytest.LogCaptureFixture) -> None:
    source = Source(pointer="v1")
    holder = holder_of(source)
    with caplog.at_level(logging.INFO, logger="app.model_holder"):
        holder.refresh()
        source.pointer = "v2"
        holder.refresh()
    assert caplog.messages == ["serving model version v1 (previous: none)",
                               "serving model version v2 (previous: v1)"]


def test_a_version_that_loaded_after_a_transient_failure_starts_its_count_again(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    source = Source(pointer="v2", failing={"v2": OSError("too many open files")})
    holder = holder_of(source, clock=lambda: now[0])
    holder.refresh()
    now[0] += 60  # the first retry is due after reload_seconds
    del source.failing["v2"]
    assert holder.refresh() is True
    source.pointer = "v1"
    holder.refresh()
    source.pointer, source.failing["v2"] = "v2", OSError("too many open files")
    caplog.clear()
    assert holder.refresh() is False
    assert caplog.messages == ["could not load (attempt 1, next in 60s) model version v2 "
                               "(still serving v1): too many open files"]


def test_stopping_a_watcher_that_never_started_is_harmless() -> None:
    holder = holder_of(Source(pointer="v1"))
    holder.stop_watcher()
    assert holder.start_watcher() is True
    holder.stop_watcher()
