"""The files of prometheus_client's multiprocess mode: folding dead workers' files away.

The directory stays bounded while workers recycle: when a worker exits, Gunicorn's master
folds its counter and histogram files into one `<type>_merged.db` per type and deletes
them (`merge_dead_worker`); gauges are all `live*` modes, whose files of a dead worker are
simply removed. The metric labels come from a fixed set (app/metrics.py), so the merged
files stay small. The fold and /metrics' read take a lock on `.merge.lock` in the
directory, so that a scrape never counts a dead worker twice or not at all. A worker
writes its samples through mmap: on a full file system that is SIGBUS, not an error, so
/readyz reports unready before that happens (`Metrics.writable`).

Imported by Gunicorn's master (child_exit), so it needs nothing but prometheus_client.
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import multiprocess
from prometheus_client.mmap_dict import MmapedDict

logger = logging.getLogger(__name__)

# Metric file types whose samples add up across processes, so a dead worker's are merged.
ADDITIVE_TYPES = ("counter", "histogram", "summary")
MERGED_SUFFIX = "merged"
MERGE_LOCK = ".merge.lock"
# Free space a worker needs in the metrics directory: its three files (counter, histogram,
# gauge) at prometheus_client's initial 64 KiB each, and some room to grow.
MIN_FREE_BYTES = 256 * 1024


def free_bytes(directory: str) -> int:
    """Bytes an unprivileged writer may still use on the directory's file system."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


@contextmanager
def merge_lock(directory: str, exclusive: bool) -> Iterator[None]:
    """The lock that a fold (exclusive) and a scrape (shared) take on the directory."""
    descriptor = os.open(os.path.join(directory, MERGE_LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)


def merge_dead_worker(pid: int, directory: str) -> None:
    """Fold a dead worker's counters and histograms into the merged files; delete its files."""
    multiprocess.mark_process_dead(pid, directory)  # its live gauges
    with merge_lock(directory, exclusive=True):
        for path in glob.glob(os.path.join(directory, f"*_{pid}.db")):
            kind = os.path.basename(path).split("_", 1)[0]
            samples = list(MmapedDict.read_all_values_from_file(path)) \
                if kind in ADDITIVE_TYPES else []
            # Deleted first: its pages are what the merged file may need (a fold must not
            # be the write that fills the file system, which would be SIGBUS in the master).
            os.remove(path)
            if samples:
                _add_samples(os.path.join(directory, f"{kind}_{MERGED_SUFFIX}.db"), samples)


def _add_samples(path: str, samples: list[tuple[str, float, float, int]]) -> None:
    if free_bytes(os.path.dirname(path)) < MIN_FREE_BYTES // 4:
        logger.error("metrics directory full: dropped %d samples of a dead worker instead of "
                     "merging them into %s", len(samples), path)
        return
    merged = MmapedDict(path)
    try:
        for key, value, timestamp, _ in samples:
            total, _ = merged.read_value(key)
            merged.write_value(key, total + value, timestamp)
    finally:
        merged.close()
