"""Intake of labelled batches: validate, measure drift, then accept or quarantine.

A batch in `data/incoming/` ends up in exactly one place: `data/processed/` (accepted, part
of the next training snapshot) or `data/quarantine/` beside a file saying why. A quarantined
batch never reaches training. Every batch gets a report, JSON and text, in
`reports/intake/`. Files whose names start with a dot are ignored, so a producer can write
`.name.csv` and rename it when complete.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
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
        lines = [f"batch {self.name} ({self.rows} rows, sha256 {self.sha256[:12]}): "
                 f"{verdict} -> {self.destination}"]
        lines += [f"  {reason}" for reason in self.reasons]
        if self.drift is not None:
            lines += ["  " + line for line in
                      DriftReport.from_dict(self.drift).to_text().splitlines()]
        return "\n".join(lines)


def pending_batches(config: TrainingConfig) -> list[Path]:
    """Batch files waiting in the incoming directory, in name order."""
    if not config.incoming_dir.is_dir():
        return []
    return sorted(path for path in config.incoming_dir.glob("*.csv")
                  if path.is_file() and not path.name.startswith("."))


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


def take_file(source: Path, destination: Path) -> None:
    """Move `source` to `destination` as a new file of this process, dated now.

    A copy rather than a rename: the batch may belong to another user (`docker cp` into the
    image's volume writes root's files), and the new file's time is the intake time, by
    which retraining finds the newest batch. The copy appears whole (temp file, then
    rename) before the source is removed, so a crash loses nothing.
    """
    partial = destination.with_name(f".{destination.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, destination)
    source.unlink()


def intake_batch(path: Path, reference: dict[str, Any] | None,
                 config: TrainingConfig) -> BatchOutcome:
    """Validate one batch and measure its drift; move it to processed or quarantine."""
    digest = file_sha256(path)
    try:
        frame = read_csv(path)
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
    take_file(path, destination)
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
