"""Multi-step operations: the promotion gate against the registry, and retraining.

Each composes the pure modules with the registry and the file system; the CLI only parses
arguments and turns the result into an exit status.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from training import gate
from training.artifact import LoadedModel, ModelIntegrityError, load_artifact
from training.config import TrainingConfig
from training.data import load_split, read_csv, to_model_frame
from training.evaluate import evaluate_probabilities
from training.intake import BatchOutcome, build_snapshot, intake_all
from training.registry import Registry
from training.train import build_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainOutcome:
    """What a retraining run took in, trained on, and decided."""

    batches: list[BatchOutcome]
    snapshot: Path
    gate: gate.GateResult


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
    keep; write the gate reports."""
    registry = Registry(config.registry_dir)
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
        version = registry.register(candidate_dir, card_updates={"gate": {
            "decision": result.decision, "reasons": result.reasons,
            "champion": champion_version}})
        result.challenger["version"] = version
        if result.decision == gate.PROMOTED:
            registry.promote(version, reason="; ".join(result.reasons))
    gate.write_reports(result, config.reports_dir)
    return result


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


def retrain(config: TrainingConfig, candidate_dir: Path) -> RetrainOutcome:
    """Take in new batches, train a challenger on the new snapshot, and gate it."""
    registry = Registry(config.registry_dir)
    reference = None
    if registry.production_version() is not None:
        reference = registry.card(registry.production_version())["reference"]
    batches = intake_all(reference, config)
    snapshot = build_snapshot(config)
    snapshot_config = dataclasses.replace(config, data_path=snapshot)
    build_model(snapshot, candidate_dir, snapshot_config)
    accepted = [Path(b.destination) for b in batches if b.accepted]
    result = run_gate(candidate_dir, snapshot_config, accepted[-1] if accepted else None)
    return RetrainOutcome(batches=batches, snapshot=snapshot, gate=result)
