"""Whole-line appends through a kept descriptor, with the GIL held or through `os`."""

from __future__ import annotations

import errno
import fcntl
import json
import multiprocessing
import os
import platform
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.prediction_log import JsonLinesLog
from training import file_calls
from training.jsonlines import Appender, append_lines, rotated_path


@pytest.fixture(params=["gil-held", "os-module"])
def calls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with each way of making the calls."""
    if request.param == "os-module":
        monkeypatch.setattr(file_calls, "_LIBC", None)
    yield request.param


def test_the_gil_held_calls_are_the_ones_used_on_64_bit_linux() -> None:
    promised = platform.system() == "Linux" and platform.architecture()[0] == "64bit"
    # Elsewhere either way is right; on 64-bit Linux (the images, CI) the fast one must be.
    assert file_calls._LIBC is not None or not promised


def test_each_call_answers_as_the_os_module_does(calls: str, tmp_path: Path) -> None:
    descriptor = os.open(tmp_path / "f", os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        assert file_calls.write(descriptor, b"abc\n") == 4
        assert file_calls.size(descriptor) == 4
        assert [file_calls.byte_at(descriptor, n) for n in (0, 3, 4)] == [b"a", b"\n", b""]
        file_calls.lock_exclusive(descriptor)
        file_calls.unlock(descriptor)
    finally:
        os.close(descriptor)
    reader = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as raised:
            file_calls.write(reader, b"x")
        assert raised.value.errno == errno.EBADF
    finally:
        os.close(reader)


def test_a_lock_held_elsewhere_is_waited_for(calls: str, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.touch()
    holder, waiter = os.open(path, os.O_RDWR), os.open(path, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    acquired = threading.Event()
    thread = threading.Thread(
        target=lambda: (file_calls.lock_exclusive(waiter), acquired.set()))
    thread.start()
    try:
        assert not acquired.wait(0.3), "took a lock another open file holds"
        fcntl.flock(holder, fcntl.LOCK_UN)
        assert acquired.wait(30), "never took the lock once it was free"
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        thread.join(30)
        os.close(holder)
        os.close(waiter)


def test_appends_are_whole_lines_and_a_torn_one_is_closed_first(
        calls: str, tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    appender = Appender(path)
    assert appender.append(b'{"n":1}\n') == 8
    assert appender.append(b'{"n":2}\n') == 16
    with open(path, "ab") as killed_writer:
        killed_writer.write(b'{"n":3,"pa')
    appender.append(b'{"n":4}\n')
    assert append_lines(path, b'{"n":5}\n') == path.stat().st_size
    assert path.read_bytes() == b'{"n":1}\n{"n":2}\n{"n":3,"pa\n{"n":4}\n{"n":5}\n'


def _append_from_threads(appender: Appender, worker: int, threads: int, count: int) -> None:
    def append(thread: int) -> None:
        for n in range(count):
            appender.append(json.dumps({"worker": worker, "thread": thread, "n": n,
                                        "pad": "z" * (n % 300)}).encode() + b"\n")

    runners = [threading.Thread(target=append, args=(thread,)) for thread in range(threads)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()


def test_threads_of_forked_workers_sharing_one_appender_keep_every_line_whole(
        calls: str, tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    appender = Appender(path)
    appender.append(b'{"opened":"by the parent"}\n')  # the children inherit its descriptor
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_from_threads, args=(appender, worker, 4, 200))
               for worker in range(2)]
    for worker in workers:
        worker.start()
    _append_from_threads(appender, -1, 4, 200)
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    records = [json.loads(line) for line in path.read_bytes().splitlines()[1:]]
    seen = sorted((r["worker"], r["thread"], r["n"]) for r in records)
    assert seen == [(w, t, n) for w in (-1, 0, 1) for t in range(4) for n in range(200)]


def test_a_forked_child_takes_a_flock_of_its_own(tmp_path: Path) -> None:
    appender = Appender(tmp_path / "log.jsonl")
    appender.append(b"{}\n")
    # The parent's worker holds the lock on its descriptor, which the child inherits: on
    # that same open file the child's flock would succeed at once and exclude nothing.
    fcntl.flock(appender._descriptor, fcntl.LOCK_EX)
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=lambda: sender.send(appender.append(b"{}\n")))
    process.start()
    try:
        assert not receiver.poll(0.3), "the child appended under the parent's lock"
    finally:
        fcntl.flock(appender._descriptor, fcntl.LOCK_UN)
    assert receiver.poll(30) and receiver.recv() == 6
    process.join(timeout=60)
    appender.append(b"{}\n")  # the parent's descriptor is still its own
    assert (tmp_path / "log.jsonl").read_bytes() == b"{}\n" * 3


def test_a_child_forked_while_another_thread_appends_can_append(tmp_path: Path) -> None:
    appender = Appender(tmp_path / "log.jsonl")
    appender._lock.acquire()  # as a thread of the parent mid-append holds it at the fork
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=lambda: sender.send(appender.append(b"{}\n")))
    process.start()
    try:
        assert receiver.poll(30), "the child waits for a lock no thread of it holds"
        assert receiver.recv() == 3
    finally:
        appender._lock.release()
        process.join(timeout=10)
        if process.exitcode is None:
            process.kill()


def test_a_worker_still_on_a_log_another_rotated_writes_to_the_new_one(
        calls: str, tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    rotating, idle = JsonLinesLog(path, max_bytes=200), JsonLinesLog(path, max_bytes=200)
    idle.append([{"worker": "idle", "n": 0}])  # opened before the rotation
    for n in range(10):
        rotating.append([{"worker": "rotating", "n": n, "pad": "x" * 20}])
    rotated = sorted(tmp_path.glob("predictions.jsonl.*"))
    assert rotated, "the busy worker rotated the log"
    sizes = [file.stat().st_size for file in rotated]
    idle.append([{"worker": "idle", "n": 1}])
    assert [file.stat().st_size for file in rotated] == sizes, "wrote to a rotated file"
    assert json.loads(path.read_bytes().splitlines()[-1]) == {"worker": "idle", "n": 1}


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_log_moved_or_deleted_by_someone_else_is_followed_within_the_recheck(
        calls: str, tmp_path: Path) -> None:
    path, clock = tmp_path / "log.jsonl", FakeClock()
    appender = Appender(path, recheck_seconds=1.0, clock=clock)
    appender.append(b'{"n":1}\n')
    moved = rotated_path(path)
    path.rename(moved)
    appender.append(b'{"n":2}\n')  # within the second: still the file it has open
    clock.now += 1.0
    appender.append(b'{"n":3}\n')
    assert moved.read_bytes() == b'{"n":1}\n{"n":2}\n'
    assert path.read_bytes() == b'{"n":3}\n'
    path.unlink()
    clock.now += 1.0
    appender.append(b'{"n":4}\n')
    assert path.read_bytes() == b'{"n":4}\n'


def test_a_missing_directory_is_a_file_not_found_error(calls: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Appender(tmp_path / "missing" / "log.jsonl").append(b"{}\n")
