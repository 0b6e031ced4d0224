"""Simulated batches and their intake: accepted, quarantined, snapshot, retraining."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from training.config import TrainingConfig
from training.data import file_sha256, load_dataset, load_split, read_csv
from training.intake import build_snapshot, intake_all, pending_batches
from training.registry import Registry
from training.simulate import simulate_batch
from training.tracking import tracking_uri
from training.train import build_model
from training.workflows import retrain, run_gate


@pytest.fixture
def ct_config(tmp_path: Path, data_file: Path, tracking_dir: Path) -> TrainingConfig:
    """Incoming, processed, quarantine, snapshots, registry and reports in a temp dir."""
    return TrainingConfig(
        data_path=data_file, registry_dir=tmp_path / "registry", reports_dir=tmp_path / "r",
        incoming_dir=tmp_path / "incoming", processed_dir=tmp_path / "processed",
        quarantine_dir=tmp_path / "quarantine", snapshot_dir=tmp_path / "snapshots",
        model_families=("logistic_regression",), tracking_dir=tracking_dir)


def write_batch(config: TrainingConfig, name: str, kind: str, amount: float,
                seed: int) -> Path:
    """Simulate a batch into the incoming directory."""
    config.incoming_dir.mkdir(parents=True, exist_ok=True)
    path = config.incoming_dir / name
    batch = simulate_batch(load_dataset(config.data_path), kind, amount, 200, seed)
    batch.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("kind", ["none", "covariate", "label", "new_category"])
def test_simulated_batches_are_reproducible_and_new_rows(data_file: Path, kind: str) -> None:
    frame = load_dataset(data_file)
    first = simulate_batch(frame, kind, 0.5, 150, seed=9)
    pd.testing.assert_frame_equal(first, simulate_batch(frame, kind, 0.5, 150, seed=9))
    assert len(first) == 150
    assert first.duplicated().sum() <= 1
    assert len(first.merge(frame, how="inner")) <= 2  # jitter makes rows new


def test_label_shift_raises_the_bad_share(data_file: Path) -> None:
    batch = simulate_batch(load_dataset(data_file), "label", 1.0, 200, seed=1)
    assert (batch["credit_risk"] == "bad").mean() == pytest.approx(0.6)


def test_bad_simulation_arguments_are_refused(data_file: Path) -> None:
    frame = load_dataset(data_file)
    with pytest.raises(ValueError, match="unknown drift kind"):
        simulate_batch(frame, "seasonal", 0.5, 10, 1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        simulate_batch(frame, "label", 1.5, 10, 1)


def test_intake_accepts_valid_batches_and_quarantines_broken_ones(
        ct_config: TrainingConfig, trained_model) -> None:
    write_batch(ct_config, "a-good.csv", "covariate", 0.5, 1)
    write_batch(ct_config, "b-broken.csv", "new_category", 0.2, 2)
    assert [p.name for p in pending_batches(ct_config)] == ["a-good.csv", "b-broken.csv"]
    outcomes = intake_all(trained_model.card["reference"], ct_config)
    decisions = [(o.name, o.accepted) for o in outcomes]
    assert decisions == [("a-good.csv", True), ("b-broken.csv", False)]
    assert pending_batches(ct_config) == []
    assert (ct_config.processed_dir / "a-good.csv").is_file()
    reason = (ct_config.quarantine_dir / "b-broken.reason.txt").read_text()
    assert "domain:purpose" in reason and "cryptocurrency" in reason
    report = json.loads((ct_config.reports_dir / "intake" / "a-good.json").read_text())
    assert {"duration", "amount"} & set(report["drift"]["drifted"])
    assert (ct_config.reports_dir / "intake" / "b-broken.txt").is_file()


def test_snapshot_holds_base_and_accepted_batches_only(
        ct_config: TrainingConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ct_config = dataclasses.replace(ct_config, snapshot_dir=tmp_path / "data" / "snapshots")
    write_batch(ct_config, "a-good.csv", "none", 0.0, 1)
    write_batch(ct_config, "b-broken.csv", "new_category", 0.3, 2)
    intake_all(None, ct_config)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="training.intake"):
        snapshot = build_snapshot(ct_config)
    frame = read_csv(snapshot)
    assert len(frame) == 1200
    assert "cryptocurrency" not in set(frame["purpose"])  # quarantined rows never train
    digest = file_sha256(snapshot)
    assert snapshot == ct_config.snapshot_dir / f"credit-{digest[:12]}.csv"
    assert caplog.messages == [f"training snapshot {snapshot} (sha256 {digest}): 1200 rows "
                               "from the base data and 1 accepted batches"]
    assert build_snapshot(ct_config) == snapshot  # content-addressed: same data, same file


def test_a_snapshot_lost_after_its_manifest_was_written_is_written_again(
        ct_config: TrainingConfig) -> None:
    write_batch(ct_config, "a-good.csv", "none", 0.0, 1)
    intake_all(None, ct_config)
    snapshot = build_snapshot(ct_config)
    text = snapshot.read_text()
    snapshot.unlink()  # a crash between the manifest and the data
    assert build_snapshot(ct_config) == snapshot and snapshot.read_text() == text


def test_retrain_gates_the_challenger_and_reports_the_newest_batch(
        ct_config: TrainingConfig, trained_model_dir: Path) -> None:
    registry = Registry(ct_config.registry_dir)
    champion = registry.register(trained_model_dir)
    registry.promote(champion, reason="v1")
    write_batch(ct_config, "a-good.csv", "covariate", 0.4, 5)
    outcome = retrain(ct_config, ct_config.reports_dir.parent / "challenger")
    assert outcome.gate.decision in ("promoted", "champion_kept")
    assert outcome.gate.newest_batch["batch"] == "a-good.csv"
    assert outcome.gate.newest_batch["holdout_rows"] > 0
    # Both models scored on the batch's rows that fell into the holdout.
    scores = {key: value for key, value in outcome.gate.newest_batch.items()
              if key in ("challenger", "champion")}
    assert set(scores) == {"challenger", "champion"}
    assert all(0.0 <= value["roc_auc"] <= 1.0 for value in scores.values())
    # The batch's drift was measured against what production was trained on.
    intake_report = json.loads((ct_config.reports_dir / "intake" / "a-good.json").read_text())
    assert intake_report["drift"]["features"] and intake_report["drift"]["rows"] == 200
    card = registry.card(outcome.gate.challenger["version"])
    assert card["data"]["rows"] == 1200
    assert card["data"]["path"] == str(outcome.snapshot)
    # One tracked run: the retraining's, with the snapshot's lineage and the gate's decision.
    run = MlflowClient(tracking_uri(ct_config)).get_run(card["tracking"]["run_id"])
    assert run.data.tags["trigger"] == "retrain"
    assert run.data.tags["data.sha256"] == file_sha256(outcome.snapshot)
    assert run.data.tags["data.sources"] == "credit.csv, a-good.csv"
    assert run.data.tags["gate.decision"] == outcome.gate.decision
    # reports/retrain.json, for the summary: what came in, what it trained on, what it decided.
    [batch] = outcome.batches
    assert outcome.to_dict() == {
        "decision": outcome.gate.decision, "reasons": outcome.gate.reasons,
        "challenger_version": outcome.gate.challenger["version"],
        "champion_version": champion,
        "snapshot": {"path": str(outcome.snapshot), "sha256": file_sha256(outcome.snapshot)},
        "batches": [{"name": "a-good.csv", "accepted": True, "rows": batch.rows,
                     "destination": batch.destination, "reasons": batch.reasons}],
        "newest_batch": outcome.gate.newest_batch}
    assert batch.rows == 200 and batch.destination.endswith("a-good.csv")


def test_a_worse_challenger_is_refused_and_the_champion_keeps_serving(
        ct_config: TrainingConfig, trained_model_dir: Path, tmp_path: Path) -> None:
    registry = Registry(ct_config.registry_dir)
    champion = registry.register(trained_model_dir)
    registry.promote(champion, reason="v1")
    # Labels shuffled: a challenger trained on them has learnt nothing.
    shuffled = load_dataset(ct_config.data_path)
    shuffled["credit_risk"] = shuffled["credit_risk"].sample(frac=1.0, random_state=0).values
    noisy = tmp_path / "shuffled.csv"
    shuffled.to_csv(noisy, index=False)
    build_model(noisy, tmp_path / "bad", dataclasses.replace(ct_config, data_path=noisy))
    result = run_gate(tmp_path / "bad", ct_config)
    assert result.decision == "failed"
    assert result.challenger["version"] == "candidate"  # never registered: no version name
    assert registry.production_version() == champion
    assert registry.versions() == [champion]  # a failed challenger is not even registered


def test_snapshot_split_keeps_each_row_on_its_side(ct_config: TrainingConfig) -> None:
    # The base data's holdout must be the same inside every snapshot, or a champion
    # trained on an earlier snapshot would be scored on rows it has seen.
    write_batch(ct_config, "a-good.csv", "none", 0.0, 1)
    intake_all(None, ct_config)
    snapshot = build_snapshot(ct_config)
    base_holdout = load_split(ct_config.data_path, ct_config)[2]
    _, train, holdout = load_split(snapshot, ct_config)
    pd.testing.assert_frame_equal(holdout.iloc[:len(base_holdout)], base_holdout)
    assert len(holdout) == 240 and len(train) == 960
    assert train.merge(holdout, how="inner").empty


def test_a_first_retraining_measures_no_drift_and_reports_the_last_batch_it_took_in(
        ct_config: TrainingConfig) -> None:
    """No production model yet: no reference to measure drift against, no champion. The
    newest batch is the last one this run accepted; without new data, the last one taken
    in before."""
    first, second = (write_batch(ct_config, name, "none", 0.0, seed)
                     for name, seed in (("a-first.csv", 1), ("b-second.csv", 2)))
    outcome = retrain(ct_config, ct_config.reports_dir.parent / "challenger")
    accepted = [batch.name for batch in outcome.batches if batch.accepted]
    assert accepted == [first.name, second.name]
    assert outcome.gate.newest_batch["batch"] == "b-second.csv"
    assert "champion" not in outcome.gate.newest_batch
    intake_report = json.loads((ct_config.reports_dir / "intake" / "a-first.json").read_text())
    assert intake_report["drift"] is None
    # A scheduled retraining without new data.
    again = retrain(ct_config, ct_config.reports_dir.parent / "challenger-2")
    assert again.batches == [] and again.gate.newest_batch["batch"] == "b-second.csv"
