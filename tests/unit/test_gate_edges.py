"""The gate on its edges: a challenger exactly on the floor or on the tolerance, and a
champion re-scored on the challenger's holdout rows rather than judged by its own card."""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from tests.canary_models import INVERTED_VERSION, register_inverted
from training import gate, tracking
from training.artifact import MODEL_FILE, ModelIntegrityError, load_artifact
from training.config import TrainingConfig
from training.data import load_split, read_csv
from training.registry import Registry
from training.workflows import run_gate, score, summary

# Binary fractions, so that "exactly on" is exact in floating point too.
CONFIG = TrainingConfig(floor_roc_auc=0.75, floor_recall_bad=0.625, champion_tolerance=0.0625)


def model(version: str, roc_auc: float, recall_bad: float = 0.875) -> dict[str, Any]:
    """A model summary as the gate sees it."""
    return {"version": version, "metrics": {"roc_auc": roc_auc, "recall_bad": recall_bad}}


@pytest.mark.parametrize(("roc_auc", "recall_bad"), [(0.75, 0.875), (0.875, 0.625)])
def test_exactly_on_the_floor_passes(roc_auc: float, recall_bad: float) -> None:
    assert gate.decide(model("new", roc_auc, recall_bad), None, CONFIG).decision == gate.PROMOTED
    assert gate.floor_only(model("new", roc_auc, recall_bad), CONFIG).decision \
        == gate.FLOOR_PASSED


@pytest.mark.parametrize(("roc_auc", "recall_bad"), [(0.7499, 0.875), (0.875, 0.6249)])
def test_just_under_the_floor_fails(roc_auc: float, recall_bad: float) -> None:
    assert gate.decide(model("new", roc_auc, recall_bad), None, CONFIG).decision == gate.FAILED
    assert gate.floor_only(model("new", roc_auc, recall_bad), CONFIG).decision == gate.FAILED


def test_a_missing_metric_fails_the_floor() -> None:
    result = gate.floor_only({"metrics": {"roc_auc": None, "recall_bad": 0.875}}, CONFIG)
    assert result.decision == gate.FAILED
    assert "holdout roc_auc n/a < floor 0.7500" in result.reasons[0]


def test_exactly_on_the_tolerance_promotes_just_past_it_keeps_the_champion() -> None:
    # 0.8125 - 0.0625 = 0.75: the challenger may be exactly this much worse.
    on = gate.decide(model("new", 0.75), model("old", 0.8125), CONFIG)
    assert on.decision == gate.PROMOTED
    past = gate.decide(model("new", 0.75), model("old", 0.8126), CONFIG)
    assert past.decision == gate.CHAMPION_KEPT


@pytest.fixture
def smaller_data(tmp_path: Path, data_file: Path) -> Path:
    """600 rows of the data set, drawn at random: a holdout of 120 rows, not the card's 200."""
    path = tmp_path / "credit-600.csv"
    read_csv(data_file).sample(n=600, random_state=0).to_csv(path, index=False)
    return path


def test_champion_is_rescored_on_the_challengers_holdout_rows(
        tmp_path: Path, trained_model_dir: Path, smaller_data: Path, tracking_dir: Path
) -> None:
    config = TrainingConfig(data_path=smaller_data, registry_dir=tmp_path / "registry",
                            reports_dir=tmp_path / "reports", tracking_dir=tracking_dir)
    registry = Registry(config.registry_dir)
    registry.promote(registry.register(trained_model_dir, version="champion"))
    champion_card_rows = registry.card("champion")["metrics"]["rows"]

    result = run_gate(trained_model_dir, config)

    holdout = load_split(smaller_data, config)[2]
    assert len(holdout) == 120 != champion_card_rows
    assert result.champion["metrics"]["rows"] == result.challenger["metrics"]["rows"] == 120
    expected = score(load_artifact(trained_model_dir), holdout, config)
    assert result.champion["metrics"]["roc_auc"] == pytest.approx(expected["roc_auc"])
    assert result.champion["metrics"] == result.challenger["metrics"]  # the same model


def test_the_first_gate_promotes_on_the_floor_alone_and_records_why(
        tmp_path: Path, trained_model_dir: Path, smaller_data: Path, tracking_dir: Path
) -> None:
    config = TrainingConfig(data_path=smaller_data, registry_dir=tmp_path / "registry",
                            reports_dir=tmp_path / "reports", tracking_dir=tracking_dir)
    result = run_gate(trained_model_dir, config)
    assert result.reasons == ["no production model yet: the floor alone decides, and it passed"]
    registry = tracking.open_registry(config)  # the registry the gate promotes in
    assert registry.production_version() == result.challenger["version"]
    assert registry.history()[-1]["reason"] == result.reasons[0]


def test_an_unusable_champion_is_named_and_the_floor_alone_decides(
        tmp_path: Path, trained_model_dir: Path, smaller_data: Path, tracking_dir: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    config = TrainingConfig(data_path=smaller_data, registry_dir=tmp_path / "registry",
                            reports_dir=tmp_path / "reports", tracking_dir=tracking_dir)
    registry = Registry(config.registry_dir)
    registry.promote(registry.register(trained_model_dir, version="champion"))
    assert tracking.open_registry(config).production_version() == "champion"  # on record
    model_file = config.registry_dir / "champion" / MODEL_FILE
    model_file.chmod(0o644)
    with open(model_file, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ModelIntegrityError) as unusable:
        registry.load("champion")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="training.workflows"):
        result = run_gate(trained_model_dir, config)
    assert [record.getMessage() for record in caplog.records
            if record.name == "training.workflows"] == [
        f"production model champion cannot be loaded: {unusable.value}"]
    assert result.champion is None and result.reasons == [
        f"production model champion is unusable ({unusable.value}): the floor alone decides, "
        "and it passed"]


def test_under_promotion_canary_a_challenger_that_beats_the_champion_is_released_beside_it(
        tmp_path: Path, trained_model_dir: Path, smaller_data: Path, tracking_dir: Path
) -> None:
    config = TrainingConfig(data_path=smaller_data, registry_dir=tmp_path / "registry",
                            reports_dir=tmp_path / "reports", tracking_dir=tracking_dir,
                            promotion="canary")
    files = Registry(config.registry_dir)
    files.promote(register_inverted(files, trained_model_dir, tmp_path))  # a worse champion
    registry = tracking.open_registry(config)
    assert registry.production_version() == INVERTED_VERSION  # on record
    result = run_gate(trained_model_dir, config)
    challenger = result.challenger["version"]
    assert (result.decision, result.promotion) == ("promoted", "canary")
    assert registry.production_version() == INVERTED_VERSION
    assert registry.canary_release().version == challenger  # type: ignore[union-attr]
    assert registry.card(challenger)["gate"] == {
        "decision": "promoted", "reasons": result.reasons[:-1], "champion": INVERTED_VERSION}


def test_each_decision_records_every_check_both_models_and_its_reason() -> None:
    challenger, champion = model("new", 0.8125), model("old", 0.8125)
    floor_details = ["holdout roc_auc 0.8125 >= floor 0.7500",
                     "holdout recall_bad 0.8750 >= floor 0.6250"]
    comparison = ("challenger ROC AUC 0.8125 vs champion 0.8125 on the same holdout rows "
                  "(difference +0.0000; tolerance 0.0625)")
    promoted = gate.decide(challenger, champion, CONFIG).to_dict()
    assert promoted == {
        "decision": "promoted",
        "reasons": ["passed the floor and holds up against champion old: " + comparison],
        "checks": [{"name": "floor_roc_auc", "passed": True, "detail": floor_details[0]},
                   {"name": "floor_recall_bad", "passed": True, "detail": floor_details[1]},
                   {"name": "champion_roc_auc", "passed": True, "detail": comparison}],
        "challenger": challenger, "champion": champion, "newest_batch": None,
        "promotion": None}
    first = gate.decide(challenger, None, CONFIG, champion_note="").to_dict()
    assert first["reasons"] == ["no production model yet: the floor alone decides, and it passed"]
    assert (first["checks"], first["challenger"], first["champion"]) == (
        promoted["checks"][:2], challenger, None)
    low = model("new", 0.5)
    failed = gate.decide(low, champion, CONFIG).to_dict()
    assert failed["reasons"] == ["under the absolute floor: holdout roc_auc 0.5000 < floor 0.7500"]
    assert (failed["checks"][0]["passed"], failed["challenger"], failed["champion"]) == (
        False, low, champion)
    both = gate.decide(model("new", 0.5, 0.5), champion, CONFIG).to_dict()
    assert both["reasons"] == ["under the absolute floor: holdout roc_auc 0.5000 < floor "
                               "0.7500; holdout recall_bad 0.5000 < floor 0.6250"]
    kept = gate.decide(model("new", 0.75), model("old", 0.8126), CONFIG).to_dict()
    assert (kept["challenger"], kept["champion"]) == (model("new", 0.75), model("old", 0.8126))
    two = gate.floor_only(model("new", 0.5, 0.5), CONFIG).to_dict()
    assert two["reasons"] == ["under the absolute floor: holdout roc_auc 0.5000 < floor 0.7500; "
                              "holdout recall_bad 0.5000 < floor 0.6250"]
    assert two["challenger"] == model("new", 0.5, 0.5) and len(two["checks"]) == 2
    passed = gate.floor_only(challenger, CONFIG).to_dict()
    assert passed["reasons"] == ["passed the absolute floor; champion/challenger runs later "
                                 "against the production registry"]
    assert (passed["checks"], passed["challenger"]) == (promoted["checks"][:2], challenger)


def test_the_junit_report_names_every_check_with_its_detail(tmp_path: Path) -> None:
    result = gate.decide(model("new", 0.75), model("old", 0.8126), CONFIG)
    result.reasons.append("a second reason")
    reports = tmp_path / "reports" / "gate"  # created with its parents
    gate.write_reports(result, reports)
    root = ElementTree.parse(reports / "junit-gate.xml").getroot()
    assert root.tag == "testsuites"
    (suite,) = root
    assert suite.attrib == {"name": "model-gate", "tests": "3", "failures": "1", "errors": "0",
                            "skipped": "0"}
    cases = list(suite)
    assert [case.attrib for case in cases] == [
        {"classname": "model_gate", "name": name, "time": "0"}
        for name in ("floor_roc_auc", "floor_recall_bad", "champion_roc_auc")]
    assert cases[0].find("system-out").text == "holdout roc_auc 0.7500 >= floor 0.7500"
    failure = cases[2].find("failure")
    assert failure.get("message") == result.checks[2].detail
    assert failure.text == "decision: champion_kept\n" + result.reasons[0] + "\na second reason"
    assert json.loads((reports / "gate.json").read_text()) == result.to_dict()
    assert (reports / "junit-gate.xml").read_text().splitlines()[0] \
        == "<?xml version='1.0' encoding='utf-8'?>"


def test_the_gate_reports_a_model_by_its_cards_version_family_digest_and_metrics() -> None:
    card = {"version": "v3", "model_family": "hist_gradient_boosting", "artifact_sha256": "ab12",
            "metrics": {"roc_auc": 0.8}, "trained_at": "not shown"}
    assert summary(card, "fallback") == {
        "version": "v3", "model_family": "hist_gradient_boosting", "artifact_sha256": "ab12",
        "metrics": {"roc_auc": 0.8}}
    assert summary({"metrics": {}}, "candidate") == {
        "version": "candidate", "model_family": None, "artifact_sha256": None, "metrics": {}}
