"""Append-only JSON-lines logs that several Gunicorn worker processes write at once.

Why this design: every append writes all of its lines with ONE write() call on a file
opened with O_APPEND, under an exclusive flock (training/jsonlines.py); each worker keeps
its descriptor open (`Appender`) and makes these calls without releasing the GIL.
Lines of concurrent workers never overwrite or split each other, nothing sits in a process
buffer (a worker that is killed or recycled loses no line it has answered for), and a
write that fails or stops short on a full disk is cut back, so the file never holds half a
line that the next one would be glued onto: an append is all of its lines or none.
Rotation (the logging module's handlers are not multiprocess-safe) renames a full file
aside to a unique name under an exclusive flock on a lock file and never deletes it; a
write under way during the rename finishes into the renamed file, and a worker whose
descriptor is still on it finds it full at its next append and opens the new one, so no
line is lost either way. Retention of rotated files is left to the operator.
The monitor (`python -m training monitor`) reads the newest lines across the current and
the rotated files (`training.jsonlines` names them).

`LoggedIds` answers "was this request id logged?" for the feedback endpoint from an index
beside the log that every worker shares and that survives restarts; on a miss it reads only
what was appended since the index last looked.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.jsonlines import (Appender, FileIsFull, encode_lines, log_files,
                                rotated_path)

logger = logging.getLogger(__name__)


def utc_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class JsonLinesLog:
    """One JSON-lines file: `append` writes records as whole lines, rotating by size."""

    def __init__(self, path: Path, max_bytes: int = 0) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._appender = Appender(self.path)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records as whole lines; OSError (and nothing written) when that fails."""
        data = encode_lines(records)
        if not data:
            return
        try:
            size = self._append(data)
        except FileNotFoundError:  # the first append: one mkdir then, not one per request
            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = self._append(data)
        if self.max_bytes and size >= self.max_bytes:
            self._leave_full_file()

    def _append(self, data: bytes) -> int:
        """One append; a file found full (this worker's descriptor still on a file another
        worker rotated, or one whose rotation failed) is rotated if need be and left."""
        try:
            return self._appender.append(data, full_at=self.max_bytes)
        except FileIsFull:
            self._leave_full_file()
            return self._appender.append(data)

    def _leave_full_file(self) -> None:
        """Rotate the full file (unless another worker did) and append to the new one."""
        self.rotate()
        self._appender.reopen()

    def rotate(self) -> Path | None:
        """Rename a full file aside (never deleted); None when another worker did it."""
        with exclusive(self.path, "rotate"):
            try:
                if self.path.stat().st_size < self.max_bytes:
                    return None  # another worker rotated it while we waited
            except FileNotFoundError:
                return None
            target = rotated_path(self.path)
            os.rename(self.path, target)
        logger.info("rotated %s to %s", self.path, target)
        return target


@contextmanager
def exclusive(path: Path, purpose: str) -> Iterator[None]:
    """Hold an exclusive lock, across processes and threads, named after `path` and
    `purpose` (a lock file beside it; each holder opens its own, so threads exclude too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.{purpose}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class LoggedIds:
    """The `request_id`s logged in a JSON-lines log and its rotated files, indexed on disk.

    The index is a SQLite file beside the log, shared by every worker and kept across
    restarts (workers recycle). On a miss, one process at a time reads only what was
    appended since the index last looked: each file is followed by its inode and the offset
    read so far, so a rotation (a rename) costs nothing and every byte is read once.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.index_path = self.path.with_name(f".{self.path.name}.ids.sqlite")
        self._local = threading.local()  # a SQLite connection belongs to one thread

    def __contains__(self, request_id: object) -> bool:
        """Whether the id was logged; on a miss, read what was appended since last time.
        OSError when the log or the index cannot be read."""
        with self._as_os_error():
            index = self._index()
            if self._known(index, request_id):
                return True
            if not self._appended_since(index):
                # Another process may have caught up between the two reads (its ids and its
                # offsets commit together): the offsets just read cover the id, so ask again.
                return self._known(index, request_id)
            index.execute("BEGIN IMMEDIATE")  # one catch-up at a time, across processes
            try:
                self._catch_up(index)
            except BaseException:
                index.execute("ROLLBACK")
                raise
            index.execute("COMMIT")
            return self._known(index, request_id)

    def add(self, request_id: str) -> None:
        """Remember an id just logged (the next catch-up would find it too)."""
        with self._as_os_error():
            self._index().execute("INSERT OR IGNORE INTO ids VALUES (?)", (request_id,))

    @contextmanager
    def _as_os_error(self) -> Iterator[None]:
        """A locked or unwritable index is an I/O failure like the log's own (a 503)."""
        try:
            yield
        except sqlite3.Error as error:
            raise OSError(f"request id index {self.index_path}: {error}") from error

    def _index(self) -> sqlite3.Connection:
        index = getattr(self._local, "index", None)
        if index is None:
            # One opener at a time: two connections switching a new file to WAL at once
            # deadlock, and SQLite then fails one at once ("database is locked") instead of
            # waiting out its busy timeout.
            with exclusive(self.path, "index"):
                index = sqlite3.connect(self.index_path, timeout=60, isolation_level=None)
                index.execute("PRAGMA journal_mode=WAL")  # lookups never wait for a catch-up
                # A crash may lose the last catch-up; the next one reads those lines again.
                index.execute("PRAGMA synchronous=NORMAL")
                index.execute("CREATE TABLE IF NOT EXISTS ids (request_id TEXT PRIMARY KEY) "
                              "WITHOUT ROWID")
                index.execute("CREATE TABLE IF NOT EXISTS files (inode INTEGER PRIMARY KEY, "
                              "offset INTEGER NOT NULL)")
            self._local.index = index
        return index

    @staticmethod
    def _known(index: sqlite3.Connection, request_id: object) -> bool:
        return index.execute("SELECT 1 FROM ids WHERE request_id = ?",
                             (str(request_id),)).fetchone() is not None

    def _appended_since(self, index: sqlite3.Connection) -> bool:
        """Whether any file changed since the last catch-up (stat only: no lock, no write)."""
        offsets = dict(index.execute("SELECT inode, offset FROM files"))
        sizes = {}
        for path in log_files(self.path):
            try:
                info = path.stat()
            except FileNotFoundError:
                return True
            sizes[info.st_ino] = info.st_size
        return sizes != offsets

    def _catch_up(self, index: sqlite3.Connection) -> None:
        offsets = dict(index.execute("SELECT inode, offset FROM files"))
        index.execute("DELETE FROM files")  # forget files that are gone
        for path in log_files(self.path):
            try:
                with open(path, "rb") as handle:
                    info = os.fstat(handle.fileno())
                    offset = offsets.get(info.st_ino, 0)
                    if offset > info.st_size:  # replaced in place: read it again
                        offset = 0
                    handle.seek(offset)
                    offset += self._read_lines(index, handle, info.st_size - offset)
            except FileNotFoundError:  # rotated or removed between listing and opening
                continue
            index.execute("INSERT OR REPLACE INTO files VALUES (?, ?)", (info.st_ino, offset))

    @staticmethod
    def _read_lines(index: sqlite3.Connection, handle: Any, size: int) -> int:
        """Index the ids of the complete lines in the next `size` bytes; bytes consumed."""
        consumed, rest = 0, b""
        while consumed + len(rest) < size:
            block = handle.read(min(1024 * 1024, size - consumed - len(rest)))
            if not block:
                break
            lines = (rest + block).split(b"\n")
            rest = lines.pop()  # not terminated yet: a write in progress
            consumed += sum(len(line) + 1 for line in lines)
            index.executemany("INSERT OR IGNORE INTO ids VALUES (?)",
                              ((request_id,) for request_id in map(_logged_id, lines)
                               if request_id is not None))
        return consumed


def _logged_id(line: bytes) -> str | None:
    """The request_id of one log line; None for a torn line or one without an id."""
    try:
        request_id = json.loads(line).get("request_id")
    except (ValueError, AttributeError):  # a torn line, or not an object
        return None
    return request_id if isinstance(request_id, str) else None
