"""The gate on its edges: a challenger exactly on the floor or on the tolerance, and a
champion re-scored on the challenger's holdout rows rather than judged by its own card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training import gate
from training.artifact import load_artifact
from training.config import TrainingConfig
from training.data import load_split, read_csv
from training.registry import Registry
from training.workflows import run_gate, score

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
        tmp_path: Path, trained_model_dir: Path, smaller_data: Path) -> None:
    config = TrainingConfig(data_path=smaller_data, registry_dir=tmp_path / "registry",
                            reports_dir=tmp_path / "reports")
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
