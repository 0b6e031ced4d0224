"""Multi-step operations: the promotion gate against the registry, and retraining.

Each composes the pure modules with the registry and the file system; the CLI only parses
arguments and turns the result into an exit status.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from training import canary, gate, tracking
from training.artifact import LoadedModel, ModelIntegrityError, load_artifact
from training.config import TrainingConfig
from training.data import file_sha256, load_split, read_csv, segments_path, to_model_frame
from training.evaluate import evaluate_probabilities
from training.intake import (BatchOutcome, build_snapshot, intake_all, intake_lock,
                             newest_processed)
from training.train import build_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainOutcome:
    """What a retraining run took in, trained on, and decided."""

    batches: list[BatchOutcome]
    snapshot: Path
    gate: gate.GateResult

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, written to reports/retrain.json for the summary."""
        return {"decision": self.gate.decision, "reasons": self.gate.reasons,
                "challenger_version": self.gate.challenger.get("version"),
                "champion_version": (self.gate.champion or {}).get("version"),
                "snapshot": {"path": str(self.snapshot), "sha256": file_sha256(self.snapshot)},
                "batches": [{"name": b.name, "accepted": b.accepted, "rows": b.rows,
                             "destination": b.destination, "reasons": b.reasons}
                            for b in self.batches],
                "newest_batch": self.gate.newest_batch}


def score(model: LoadedModel, rows: pd.DataFrame, config: TrainingConfig) -> dict[str, Any]:
    """Overall metrics of a model on labelled rows, at the model's own threshold."""
    probabilities = model.predict_proba_bad(rows[model.card["features"]])
    return evaluate_probabilities(rows, probabilities, model.threshold, config)["overall"]


def summary(card: dict[str, Any], fallback_version: str) -> dict[str, Any]:
    """The part of a model card the gate report shows."""
    return {"version": card.get("version", fallback_version),
            "model_family": card.get("model_family"),
            "artifact_sha256": card.get("artifact_sha256"), "metrics": card["metrics"]}


def run_gate(candidate_dir: Path, config: TrainingConfig,
             newest_batch: Path | None = None) -> gate.GateResult:
    """Score challenger and champion on the same holdout rows; register, then promote or
    keep; write the gate reports and record them in the challenger's tracking run."""
    # An unreachable tracking store stops the gate before the registry changes.
    tracking.check_reachable(config)
    canary.promotion_mode(config)  # a misspelt PROMOTION stops here, before any change
    registry = tracking.open_registry(config)
    challenger = load_artifact(candidate_dir)
    holdout = load_split(config.data_path, config)[2]
    challenger_summary = {**summary(challenger.card, "candidate"),
                          "metrics": score(challenger, holdout, config)}
    champion, champion_summary, note = None, None, ""
    champion_version = registry.production_version()
    if champion_version is not None:
        try:
            champion = registry.load(champion_version)
            champion_summary = {**summary(champion.card, champion_version),
                                "metrics": score(champion, holdout, config)}
        except ModelIntegrityError as error:
            # A champion that cannot be verified cannot be compared with; say so loudly.
            logger.warning("production model %s cannot be loaded: %s", champion_version, error)
            note = f"production model {champion_version} is unusable ({error})"
    result = gate.decide(challenger_summary, champion_summary, config, champion_note=note)
    if newest_batch is not None:
        result.newest_batch = newest_batch_scores(newest_batch, holdout, challenger, champion,
                                                  config)
    if result.decision != gate.FAILED:
        version = registry.register(candidate_dir, card_updates={
            "gate": {"decision": result.decision, "reasons": result.reasons,
                     "champion": champion_version},
            **snapshot_lineage(config.data_path)})
        result.challenger["version"] = version
        if result.decision == gate.PROMOTED:
            promote(registry, version, champion_version, result, config)
    gate.write_reports(result, config.reports_dir)
    tracking.record_gate(challenger.card, result, config.reports_dir, config)
    return result


def promote(registry: Any, version: str, champion_version: str | None,
            result: gate.GateResult, config: TrainingConfig) -> None:
    """Move production to a challenger the gate passed, or, under PROMOTION=canary and with
    a champion in production, release it as the canary first."""
    reason = "; ".join(result.reasons)
    if canary.promotion_mode(config) == canary.CANARY and champion_version is not None:
        release = canary.release_challenger(registry, version, config, reason)
        result.reasons.append(f"released as canary on {release.share:.0%} of requests beside "
                              f"{champion_version}; canary-report decides its promotion")
        result.promotion = canary.CANARY
        return
    registry.promote(version, reason=reason)
    result.promotion = canary.DIRECT


def newest_batch_scores(batch: Path, holdout: pd.DataFrame, challenger: LoadedModel,
                        champion: LoadedModel | None, config: TrainingConfig
                        ) -> dict[str, Any]:
    """Both models on the newest batch's rows that fell into the holdout: recent data that
    neither model was trained on."""
    rows = to_model_frame(read_csv(batch)).drop_duplicates()
    recent = holdout.merge(rows, how="inner", on=list(holdout.columns))
    result: dict[str, Any] = {"batch": batch.name, "holdout_rows": len(recent)}
    if recent.empty:
        return result
    result["challenger"] = score(challenger, recent, config)
    if champion is not None:
        result["champion"] = score(champion, recent, config)
    return result


def snapshot_lineage(data_path: Path) -> dict[str, Any]:
    """The sources a snapshot was built from (file, rows, sha256), for the model card."""
    manifest = segments_path(data_path)
    if not manifest.is_file():
        return {}
    return {"data_sources": json.loads(manifest.read_text())["sources"]}


def retrain(config: TrainingConfig, candidate_dir: Path) -> RetrainOutcome:
    """Take in new batches, train a challenger on the new snapshot, and gate it."""
    registry = tracking.open_registry(config)
    production = registry.production_version()
    # Drift is measured against what the serving model was trained on.
    reference = registry.card(production)["reference"] if production is not None else None
    # One run at a time: two would take in the same batch and share the candidate directory.
    with intake_lock(config):
        batches = intake_all(reference, config)
        snapshot = build_snapshot(config)
        snapshot_config = dataclasses.replace(config, data_path=snapshot)
        with tracking.training_run(snapshot_config, "retrain") as run:
            card = build_model(snapshot, candidate_dir, snapshot_config,
                               card_extras=run.card_fields())
            run.record_training(card, candidate_dir)
        # The newest batch: accepted in this run, else the last one taken in before (a
        # scheduled retrain without new data still shows how both models do on recent data).
        accepted = [Path(b.destination) for b in batches if b.accepted]
        newest = accepted[-1] if accepted else newest_processed(config)
        result = run_gate(candidate_dir, snapshot_config, newest)
    return RetrainOutcome(batches=batches, snapshot=snapshot, gate=result)
