"""Appending whole JSON lines to a file that several processes share, even on a full disk.

Each append opens the file with O_APPEND and takes an exclusive flock on it, so appends of
concurrent processes are serialised and each one knows where it starts. A write that fails
or stops short (a full disk) is cut back with ftruncate to where it started, which always
succeeds because it frees space: the file never keeps half a line that the next append
would glue its own line onto. A file that already ends without a newline (written by a
process that was killed mid-write, or by an older version of this code) gets one first.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def encode_lines(records: Iterable[dict[str, Any]]) -> bytes:
    """Records as compact, key-sorted JSON lines."""
    return "".join(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
                   for record in records).encode()


def append_lines(path: Path, data: bytes) -> int:
    """Append whole lines with one write; the file's size after it. OSError leaves the file
    as it was before the call."""
    if not data:
        return 0
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        start = os.fstat(descriptor).st_size
        if start and os.pread(descriptor, 1, start - 1) != b"\n":
            data = b"\n" + data  # close the torn line before ours
        try:
            written = os.write(descriptor, data)
            if written != len(data):
                raise OSError(f"{path}: wrote {written} of {len(data)} bytes (disk full?)")
        except OSError:
            os.ftruncate(descriptor, start)
            raise
        return start + written
    finally:
        os.close(descriptor)  # also releases the lock


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; torn or foreign lines are skipped and logged."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d: skipping a line that is not JSON (a torn write?)",
                               path, number)
                continue
            if isinstance(record, dict):
                yield record
