"""Intake of labelled batches: validate, measure drift, then accept or quarantine.

A batch in `data/incoming/` ends up in exactly one place: `data/processed/` (accepted, part
of the next training snapshot) or `data/quarantine/` beside a file saying why. A quarantined
batch never reaches training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from training.config import TrainingConfig
from training.data import read_csv, segments_path, validate
from training.drift import drift_report
from training.schema import column_names

logger = logging.getLogger(__name__)


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

    def to_text(self) -> str:
        """A readable report of the batch."""
        verdict = "ACCEPTED" if self.accepted else "QUARANTINED"
        lines = [f"batch {self.name} ({self.rows} rows): {verdict} -> {self.destination}"]
        lines += [f"  {reason}" for reason in self.reasons]
        return "\n".join(lines)


def pending_batches(config: TrainingConfig) -> list[Path]:
    """Batch files waiting in the incoming directory, oldest name first."""
    if not config.incoming_dir.is_dir():
        return []
    return sorted(config.incoming_dir.glob("*.csv"))


def batch_limits(config: TrainingConfig) -> TrainingConfig:
    """The config with the batch bounds in place of the training-set bounds."""
    return dataclasses.replace(config, min_bad_fraction=config.batch_min_bad_fraction,
                               max_bad_fraction=config.batch_max_bad_fraction,
                               min_rows=config.batch_min_rows)


def intake_batch(path: Path, reference: dict[str, Any] | None,
                 config: TrainingConfig) -> BatchOutcome:
    """Validate one batch and measure its drift; move it to processed or quarantine."""
    try:
        frame = read_csv(path)
        validation = validate(frame, batch_limits(config), source=path.name)
        failures = [f"{c.name}: {c.detail}" for c in validation.failures]
        validation_dict = validation.to_dict()
    except ValueError as error:
        frame, failures, validation_dict = pd.DataFrame(), [str(error)], {"passed": False}
    drift = None
    reasons = [f"failed validation: {failure}" for failure in failures]
    if not failures and reference is not None:
        report = drift_report(frame, reference, config.drift_psi_threshold)
        drift = report.to_dict()
        reasons.append("drift: " + (", ".join(report.drifted) or "none over the threshold"))
    accepted = not failures
    target_dir = config.processed_dir if accepted else config.quarantine_dir
    target_dir.mkdir(parents=True, exist_ok=True)
    destination = target_dir / path.name
    shutil.move(str(path), destination)
    outcome = BatchOutcome(path.name, accepted, len(frame), reasons or ["valid"],
                           validation_dict, drift, str(destination))
    if not accepted:
        (target_dir / f"{path.stem}.reason.txt").write_text(outcome.to_text() + "\n")
    _write_batch_report(outcome, config.reports_dir)
    (logger.info if accepted else logger.warning)("%s", outcome.to_text())
    return outcome


def intake_all(reference: dict[str, Any] | None, config: TrainingConfig) -> list[BatchOutcome]:
    """Take in every pending batch, in name order."""
    return [intake_batch(path, reference, config) for path in pending_batches(config)]


def build_snapshot(config: TrainingConfig) -> Path:
    """The base data plus every accepted batch, as one content-addressed CSV file."""
    sources = [config.data_path] + sorted(config.processed_dir.glob("*.csv"))
    parts = [read_csv(path) for path in sources]
    snapshot = pd.concat(parts, ignore_index=True)[column_names()]
    text = snapshot.to_csv(index=False)
    digest = hashlib.sha256(text.encode()).hexdigest()
    config.snapshot_dir.mkdir(parents=True, exist_ok=True)
    path = config.snapshot_dir / f"credit-{digest[:12]}.csv"
    if not path.exists():
        path.write_text(text)
        segments_path(path).write_text(json.dumps({"sources": [
            {"name": source.name, "rows": len(part)} for source, part in zip(sources, parts)
        ]}, indent=2) + "\n")
    logger.info("training snapshot %s: %d rows from the base data and %d accepted batches",
                path, len(snapshot), len(parts) - 1)
    return path


def _write_batch_report(outcome: BatchOutcome, reports_dir: Path) -> None:
    directory = reports_dir / "intake"
    directory.mkdir(parents=True, exist_ok=True)
    stem = Path(outcome.name).stem
    (directory / f"{stem}.json").write_text(json.dumps(asdict(outcome), indent=2) + "\n")
    (directory / f"{stem}.txt").write_text(outcome.to_text() + "\n")
