"""JSON-lines logs on disk: whole-line appends that survive a full disk, the names of a
rotated log's files, and its newest records.

Appends: each one writes to the file opened with O_APPEND under an exclusive flock on it,
so appends of concurrent processes are serialised and each one knows where it starts (a log
on the request path keeps its file open, `Appender`; the calls keep the GIL, `file_calls`).
A write that fails or stops short (a full disk) is cut back with ftruncate to where it
started, which always succeeds because it frees space: the file never keeps half a line that
the next append would glue its own line onto. A file that already ends without a newline
(written by a process that was killed mid-write) gets one first.

Reading: the service renames a full log aside (`<name>.<UTC stamp>-<pid>`, see
`rotated_path`) and starts a new one; readers take the rotated files in age order, then the
current one. A line is complete only with its newline: an unterminated last line is a write
in progress and is not read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from training import file_calls

logger = logging.getLogger(__name__)

# Compact lines, keys in the order the record was built; one encoder for every line (it is
# on the request path, where sorting the keys of a 1,000-row batch's lines doubled its cost).
_encode = json.JSONEncoder(separators=(",", ":")).encode
_ORJSON_LINE = orjson.OPT_APPEND_NEWLINE

# Read and write: an append reads the byte before it (a torn line to close first).
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
# Read backwards in blocks of this size: a window of the newest lines costs about its size.
BLOCK_BYTES = 64 * 1024
_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"  # fixed width: names sort in age order
_ROTATED_SUFFIX = re.compile(r"\.\d{8}T\d{12}Z-\d+")


def rotated_path(path: Path) -> Path:
    """A new name beside `path` to rename it aside to now (unique, sorts by age)."""
    stamp = datetime.now(timezone.utc).strftime(_STAMP_FORMAT)
    return path.with_name(f"{path.name}.{stamp}-{os.getpid()}")


def log_files(path: Path) -> list[Path]:
    """The rotated files of the log at `path`, oldest first, then `path` when it exists."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    prefix = path.name
    rotated = sorted(item for item in path.parent.iterdir()
                     if item.name.startswith(prefix)
                     and _ROTATED_SUFFIX.fullmatch(item.name[len(prefix):]))
    return rotated + ([path] if path.is_file() else [])


def last_lines(path: Path, count: int) -> list[bytes]:
    """The last `count` complete lines of one file (fewer if it has fewer), oldest first,
    read backwards from the end in blocks, never the whole file."""
    if count <= 0:
        return []
    with open(path, "rb") as handle:
        position = handle.seek(0, os.SEEK_END)
        data = b""
        while position > 0 and data.count(b"\n") <= count:
            step = min(BLOCK_BYTES, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data[:data.rfind(b"\n") + 1].split(b"\n")[:-1]
    if position > 0:
        lines = lines[1:]  # cut by the block boundary
    return lines[-count:]


def newest_lines(path: Path, count: int) -> list[bytes]:
    """The newest `count` complete lines across the log's files, oldest first."""
    lines: list[bytes] = []
    for file in reversed(log_files(path)):
        if len(lines) >= count:
            break
        lines = last_lines(file, count - len(lines)) + lines
    return lines


def all_lines(path: Path) -> list[bytes]:
    """Every complete line of the log's files, oldest first (tools and tests)."""
    lines: list[bytes] = []
    for file in log_files(path):
        data = file.read_bytes()
        lines += data[:data.rfind(b"\n") + 1].split(b"\n")[:-1]
    return lines


def read_json_lines(path: Path, last: int | None = None) -> list[dict[str, Any]]:
    """The records of a log and its rotated files, oldest first: the newest `last` ones
    when given (the log grows for ever, memory and time must not); a torn line is
    skipped."""
    lines = all_lines(path) if last is None else newest_lines(path, last)
    return list(_records(lines, path))


def encode_lines(records: Iterable[dict[str, Any]]) -> bytes:
    """Records as compact JSON lines (orjson: a 1,000-row batch's lines cost a
    fraction of the standard library's; what orjson refuses, e.g. integers over 64 bits,
    is written by the standard library)."""
    lines = []
    for record in records:
        try:
            lines.append(orjson.dumps(record, option=_ORJSON_LINE))
        except orjson.JSONEncodeError:
            lines.append((_encode(record) + "\n").encode())
    return b"".join(lines)


def append_lines(path: Path, data: bytes) -> int:
    """Append whole lines with one write; the file's size after it. OSError leaves the file
    as it was before the call. Opens and closes the file (occasional appends; a log on the
    request path keeps an `Appender`)."""
    if not data:
        return 0
    descriptor = os.open(path, _APPEND_FLAGS, 0o644)
    try:
        file_calls.lock_exclusive(descriptor)
        return _append_locked(descriptor, path, data)
    finally:
        os.close(descriptor)  # also releases the lock


class FileIsFull(Exception):
    """The open file reached the size at which its log is rotated (or was rotated)."""


class Appender:
    """Whole-line appends to one file through a descriptor this process keeps open.

    Opening and closing per append were two of its six system calls. A kept descriptor
    must notice that the name now means another file: a log rotated by any process is
    refused at its full size (`FileIsFull`: the caller rotates if no one did, and
    `reopen`s), and a file renamed or deleted by someone else is found by comparing the
    name's inode with the descriptor's at most `recheck_seconds` after. A forked child
    opens its own (a shared open file would share its flock, which then excludes nothing).
    Threads of one process take turns on a lock, since flock does not exclude them; a
    forked child gets a free one (`_after_fork_in_child`).
    """

    def __init__(self, path: Path, recheck_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.recheck_seconds = recheck_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._descriptor: int | None = None
        self._owner = 0  # the pid that opened it
        self._opened: tuple[int, int] | None = None  # its device and inode
        self._next_check = 0.0
        self._closer: weakref.finalize | None = None  # closes the descriptor, once
        _APPENDERS.add(self)

    def append(self, data: bytes, full_at: int = 0) -> int:
        """Append whole lines with one write; the file's size after it. FileIsFull when
        the file already holds `full_at` bytes (0: never full); OSError leaves the file as
        it was (FileNotFoundError: its directory is missing)."""
        if not data:
            return 0
        with self._lock:
            descriptor = self._current_descriptor()
            file_calls.lock_exclusive(descriptor)
            try:
                return _append_locked(descriptor, self.path, data, full_at)
            finally:
                file_calls.unlock(descriptor)

    def reopen(self) -> None:
        """Open the file the name means now at the next append."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._closer is not None:
            self._closer()  # in a forked child: its copy of the parent's descriptor
        self._descriptor, self._closer = None, None

    def _current_descriptor(self) -> int:
        """The kept descriptor, (re)opened when missing, inherited or pointing elsewhere."""
        now = self._clock()
        if self._descriptor is not None and self._owner == os.getpid():
            if now < self._next_check:
                return self._descriptor
            self._next_check = now + self.recheck_seconds
            if _identity(self.path) == self._opened:
                return self._descriptor
        self._close()
        descriptor = os.open(self.path, _APPEND_FLAGS, 0o644)
        opened = os.fstat(descriptor)
        self._descriptor, self._owner = descriptor, os.getpid()
        self._opened = (opened.st_dev, opened.st_ino)
        self._closer = weakref.finalize(self, os.close, descriptor)
        self._next_check = now + self.recheck_seconds
        return descriptor


_APPENDERS: weakref.WeakSet[Appender] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Give every appender of a new child a free thread lock: one held by another thread
    at the fork stays held in the child, where that thread does not exist."""
    for appender in list(_APPENDERS):
        appender._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _identity(path: Path) -> tuple[int, int] | None:
    """The device and inode `path` names now, or None when nothing is there."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return None
    return named.st_dev, named.st_ino


def _append_locked(descriptor: int, path: Path, data: bytes, full_at: int = 0) -> int:
    """The append itself, under the file's flock: refuse a full file, close a torn last line
    first, write once, cut a short or failed write back to where it started."""
    start = file_calls.size(descriptor)
    if full_at and start >= full_at:
        raise FileIsFull(path)
    if start and file_calls.byte_at(descriptor, start - 1) != b"\n":
        data = b"\n" + data  # close the torn line before ours
    try:
        written = file_calls.write(descriptor, data)
        if written != len(data):
            raise OSError(f"{path}: wrote {written} of {len(data)} bytes (disk full?)")
    except OSError:
        os.ftruncate(descriptor, start)
        raise
    return start + written


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of one JSON-lines file; torn or foreign lines are skipped and logged."""
    with open(path, "rb") as handle:
        yield from _records(handle, path)


def _records(lines: Iterable[bytes], source: Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.warning("%s: skipping line %d, which is not JSON (a torn write?)",
                           source, number)
            continue
        if isinstance(record, dict):
            yield record
