"""Intake of labelled batches: validate, measure drift, then accept or quarantine.

A batch in `data/incoming/` ends up in exactly one place: `data/processed/` (accepted, part
of the next training snapshot) or `data/quarantine/` beside a file saying why. A quarantined
batch never reaches training. Every batch gets a report, JSON and text, in
`reports/intake/`. Files whose names start with a dot are ignored, so a producer can write
`.name.csv` and rename it when complete.

Only a regular file directly in the incoming folder is read, opened without following a
link and no larger than `batch_max_bytes`; the bytes read are the bytes validated and kept.
Anything else named `*.csv` there (a symbolic link, a fifo, a directory, an oversized file)
is moved to quarantine as it is, unread, with the reason.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from training.artifact import atomic_write
from training.config import TrainingConfig
from training.data import file_sha256, read_csv, segments_path, validate
from training.drift import DriftReport, drift_report
from training.schema import column_names

logger = logging.getLogger(__name__)

LOCK_FILE = ".intake.lock"


@dataclass(frozen=True)
class BatchOutcome:
    """What intake decided for one batch file, and why."""

    name: str
    accepted: bool
    rows: int
    reasons: list[str]
    validation: dict[str, Any]
    drift: dict[str, Any] | None
    destination: str
    sha256: str = ""

    def to_text(self) -> str:
        """A readable report of the batch: verdict, reasons, then drift per input."""
        verdict = "ACCEPTED" if self.accepted else "QUARANTINED"
        measured = f"{self.rows} rows, sha256 {self.sha256[:12]}" if self.sha256 else "unread"
        lines = [f"batch {self.name} ({measured}): {verdict} -> {self.destination}"]
        lines += [f"  {reason}" for reason in self.reasons]
        if self.drift is not None:
            lines += ["  " + line for line in
                      DriftReport.from_dict(self.drift).to_text().splitlines()]
        return "\n".join(lines)


class RefusedEntry(Exception):
    """An incoming entry that is not read: the message says why."""


def pending_batches(config: TrainingConfig) -> list[Path]:
    """Entries named *.csv waiting in the incoming directory (of any type), in name order."""
    if not config.incoming_dir.is_dir():
        return []
    with os.scandir(config.incoming_dir) as entries:
        return sorted(Path(entry.path) for entry in entries
                      if entry.name.endswith(".csv") and not entry.name.startswith("."))


def _kind(mode: int) -> str:
    """What a file of this st_mode is, in words."""
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
             (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _link_target(path: Path) -> str:
    """' (to <target>)' for the report: the link's own text, never what it points to."""
    try:
        return f" (to {os.readlink(path)!r})"
    except OSError:
        return ""


def read_batch_bytes(path: Path, max_bytes: int) -> bytes:
    """The content of a regular file, opened without following a link; RefusedEntry (and
    nothing read) for anything else or for more than `max_bytes`."""
    try:
        # O_NONBLOCK: opening a fifo must not wait for a writer; it is refused below.
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise RefusedEntry(f"a symbolic link{_link_target(path)}, not a regular file: "
                               "not followed") from None
        raise RefusedEntry(f"cannot be opened: {error.strerror}") from None
    try:
        info = os.fstat(descriptor)  # of what was opened, not of what the name says now
        if not stat.S_ISREG(info.st_mode):
            raise RefusedEntry(f"{_kind(info.st_mode)}, not a regular file: not read")
        if info.st_size > max_bytes:
            raise RefusedEntry(f"{info.st_size} bytes, over the limit of {max_bytes} "
                               "(TRAINING_BATCH_MAX_BYTES): not read")
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            content = handle.read(max_bytes + 1)
    finally:
        os.close(descriptor)
    if len(content) > max_bytes:
        raise RefusedEntry(f"grew over the limit of {max_bytes} bytes while being read")
    return content


def batch_limits(config: TrainingConfig) -> TrainingConfig:
    """The config with the batch bounds in place of the training-set bounds."""
    return dataclasses.replace(config, min_bad_fraction=config.batch_min_bad_fraction,
                               max_bad_fraction=config.batch_max_bad_fraction,
                               min_rows=config.batch_min_rows)


def snapshot_sources(config: TrainingConfig) -> list[Path]:
    """The files the next training snapshot is built from: base data, accepted batches."""
    processed = sorted(config.processed_dir.glob("*.csv")) if config.processed_dir.is_dir() \
        else []
    return [config.data_path] + processed


def snapshot_failures(batch: pd.DataFrame, config: TrainingConfig) -> list[str]:
    """The checks the training snapshot would fail with this batch in it.

    A valid batch can still break the snapshot (rows already taken in, the same file sent
    twice, a label share that tips the whole set over the training bounds); accepting it
    would make every later retraining refuse its data, so it is quarantined instead.
    """
    existing = [read_csv(path) for path in snapshot_sources(config)]
    combined = pd.concat(existing + [batch], ignore_index=True)[column_names()]
    report = validate(combined, config, source="snapshot with this batch")
    return [f"snapshot:{check.name}: {check.detail} in the snapshot with this batch"
            for check in report.failures]


def take_file(source: Path, content: bytes, destination: Path) -> None:
    """Store `content` (read from `source`) as `destination`, a new file dated now; remove
    `source`.

    Written anew rather than renamed: the batch may belong to another user (`docker cp` into
    the image's volume writes root's files), the new file's time is the intake time, by
    which retraining finds the newest batch, and what is kept is exactly what was validated.
    The file appears whole (temp file, then rename) before the source is removed, so a
    crash loses nothing.
    """
    partial = destination.with_name(f".{destination.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, destination)
    source.unlink()


def refuse_entry(path: Path, reason: str, config: TrainingConfig) -> BatchOutcome:
    """Move an entry that must not be read (link, fifo, directory, oversized) to quarantine
    as it is: a rename moves the entry itself, never what it points to."""
    destination = unused_path(config.quarantine_dir, path.name)
    os.rename(path, destination)
    outcome = BatchOutcome(path.name, False, 0, [f"refused: {reason}"], {"passed": False},
                           None, str(destination))
    destination.with_suffix(".reason.txt").write_text(outcome.to_text() + "\n")
    _write_batch_report(outcome, destination.stem, config.reports_dir)
    logger.warning("%s", outcome.to_text())
    return outcome


def intake_batch(path: Path, reference: dict[str, Any] | None,
                 config: TrainingConfig) -> BatchOutcome:
    """Validate one batch and measure its drift; move it to processed or quarantine."""
    try:
        content = read_batch_bytes(path, config.batch_max_bytes)
    except RefusedEntry as refusal:
        return refuse_entry(path, str(refusal), config)
    digest = hashlib.sha256(content).hexdigest()
    try:
        frame = read_csv(path, content)
        validation = validate(frame, batch_limits(config), source=path.name)
        failures = [f"{c.name}: {c.detail}" for c in validation.failures]
        validation_dict = validation.to_dict()
    except ValueError as error:
        frame, failures, validation_dict = pd.DataFrame(), [str(error)], {"passed": False}
    drift = None
    if not failures and reference is not None:
        # Only a valid batch can be measured: its numbers parse and its labels are known.
        drift = drift_report(frame, reference, config.drift_psi_threshold).to_dict()
    if not failures:
        failures = snapshot_failures(frame, config)
    reasons = [f"failed validation: {failure}" for failure in failures]
    if drift is not None:
        reasons.append("drift: " + (", ".join(drift["drifted"]) or "none over the threshold"))
    accepted = not failures
    destination = unused_path(config.processed_dir if accepted else config.quarantine_dir,
                              path.name)
    take_file(path, content, destination)
    outcome = BatchOutcome(path.name, accepted, len(frame), reasons or ["valid"],
                           validation_dict, drift, str(destination), digest)
    if not accepted:
        destination.with_suffix(".reason.txt").write_text(outcome.to_text() + "\n")
    _write_batch_report(outcome, destination.stem, config.reports_dir)
    (logger.info if accepted else logger.warning)("%s", outcome.to_text())
    return outcome


def intake_all(reference: dict[str, Any] | None, config: TrainingConfig) -> list[BatchOutcome]:
    """Take in every pending batch, in name order (each is checked against the ones before)."""
    return [intake_batch(path, reference, config) for path in pending_batches(config)]


def unused_path(directory: Path, name: str) -> Path:
    """`directory/name`, or `stem-2.csv`, `stem-3.csv`... when a batch of that name was
    taken in before: an earlier batch is never overwritten."""
    directory.mkdir(parents=True, exist_ok=True)
    candidate, number = directory / name, 1
    while candidate.exists():
        number += 1
        candidate = directory / f"{Path(name).stem}-{number}{Path(name).suffix}"
    return candidate


def newest_processed(config: TrainingConfig) -> Path | None:
    """The accepted batch taken in last, or None when none was."""
    batches = snapshot_sources(config)[1:]
    return max(batches, key=lambda path: path.stat().st_mtime) if batches else None


def build_snapshot(config: TrainingConfig) -> Path:
    """The base data plus every accepted batch, as one content-addressed CSV file."""
    sources = snapshot_sources(config)
    parts = [read_csv(path) for path in sources]
    snapshot = pd.concat(parts, ignore_index=True)[column_names()]
    text = snapshot.to_csv(index=False)
    digest = hashlib.sha256(text.encode()).hexdigest()
    config.snapshot_dir.mkdir(parents=True, exist_ok=True)
    path = config.snapshot_dir / f"credit-{digest[:12]}.csv"
    manifest = segments_path(path)
    if not (path.exists() and manifest.exists()):
        # The manifest first: a snapshot without it would be split as one source, and the
        # champion scored on rows it was trained on.
        atomic_write(manifest, json.dumps({"sources": [
            {"name": source.name, "rows": len(part), "sha256": file_sha256(source)}
            for source, part in zip(sources, parts)]}, indent=2) + "\n")
        atomic_write(path, text)
    logger.info("training snapshot %s (sha256 %s): %d rows from the base data and %d "
                "accepted batches", path, digest, len(snapshot), len(parts) - 1)
    return path


@contextmanager
def intake_lock(config: TrainingConfig) -> Iterator[None]:
    """Hold the intake lock, so that two retraining runs cannot take in the same batch."""
    config.incoming_dir.mkdir(parents=True, exist_ok=True)
    with open(config.incoming_dir / LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise ValueError(f"another retraining run holds {lock.name}; "
                             "try again when it has finished") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_batch_report(outcome: BatchOutcome, stem: str, reports_dir: Path) -> None:
    directory = reports_dir / "intake"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.json").write_text(json.dumps(asdict(outcome), indent=2) + "\n")
    (directory / f"{stem}.txt").write_text(outcome.to_text() + "\n")
