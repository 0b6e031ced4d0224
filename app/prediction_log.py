"""Append-only JSON-lines logs that several Gunicorn worker processes write at once.

Why this design: every append writes all of its lines with ONE write() call on a file
opened with O_APPEND, under an exclusive flock (training/jsonlines.py), and closes it.
Lines of concurrent workers never overwrite or split each other, nothing sits in a process
buffer (a worker that is killed or recycled loses no line it has answered for), and a
write that fails or stops short on a full disk is cut back, so the file never holds half a
line that the next one would be glued onto: an append is all of its lines or none.
Rotation (the logging module's handlers are not multiprocess-safe) renames a full file
aside to a unique name under an exclusive flock on a lock file and never deletes it; a
writer that opened the old name just before the rename finishes its write into the renamed
file, so no line is lost either way. Retention of rotated files is left to the operator.
The monitor (`python -m training monitor`) reads the current file.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.jsonlines import append_lines, encode_lines

logger = logging.getLogger(__name__)


def utc_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class JsonLinesLog:
    """One JSON-lines file: `append` writes records as whole lines, rotating by size."""

    def __init__(self, path: Path, max_bytes: int = 0) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records as whole lines; OSError (and nothing written) when that fails."""
        data = encode_lines(records)
        if not data:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        size = append_lines(self.path, data)
        if self.max_bytes and size >= self.max_bytes:
            self.rotate()

    def rotate(self) -> Path | None:
        """Rename a full file aside (never deleted); None when another worker did it."""
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    if self.path.stat().st_size < self.max_bytes:
                        return None  # another worker rotated it while we waited
                except FileNotFoundError:
                    return None
                stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
                target = self.path.with_name(f"{self.path.name}.{stamp}-{os.getpid()}")
                os.rename(self.path, target)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        logger.info("rotated %s to %s", self.path, target)
        return target
