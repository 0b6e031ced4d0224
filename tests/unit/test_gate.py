"""The gate's three outcomes and its JUnit report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from training import gate
from training.config import TrainingConfig

CONFIG = TrainingConfig(floor_roc_auc=0.75, floor_recall_bad=0.6, champion_tolerance=0.01)


def model(version: str, roc_auc: float, recall_bad: float = 0.8) -> dict[str, Any]:
    """A model summary as the gate sees it."""
    return {"version": version, "metrics": {"roc_auc": roc_auc, "recall_bad": recall_bad}}


def test_without_champion_the_floor_alone_decides_and_says_so() -> None:
    result = gate.decide(model("new", 0.80), None, CONFIG)
    assert result.decision == gate.PROMOTED and result.exit_status == 0
    assert "no production model yet" in result.reasons[0]
    assert [c.name for c in result.checks] == ["floor_roc_auc", "floor_recall_bad"]


def test_under_the_floor_fails_even_when_better_than_the_champion() -> None:
    result = gate.decide(model("new", 0.74), model("old", 0.60), CONFIG)
    assert result.decision == gate.FAILED and result.exit_status == 3
    assert "under the absolute floor" in result.reasons[0]


def test_low_recall_on_bad_fails_the_floor() -> None:
    result = gate.decide(model("new", 0.90, recall_bad=0.3), None, CONFIG)
    assert result.decision == gate.FAILED
    assert "recall_bad 0.3000 < floor 0.6000" in result.reasons[0]


def test_a_tie_promotes_so_identical_retrains_pass() -> None:
    result = gate.decide(model("new", 0.80), model("old", 0.80), CONFIG)
    assert result.decision == gate.PROMOTED


def test_within_tolerance_promotes_beyond_it_keeps_the_champion() -> None:
    assert gate.decide(model("new", 0.795), model("old", 0.80), CONFIG).decision == gate.PROMOTED
    kept = gate.decide(model("new", 0.78), model("old", 0.80), CONFIG)
    assert kept.decision == gate.CHAMPION_KEPT and kept.exit_status == 4
    assert kept.reasons[0].startswith("champion old kept")
    assert "difference -0.0200" in kept.reasons[0]


def test_floor_only_is_the_build_time_gate() -> None:
    assert gate.floor_only(model("new", 0.80), CONFIG).decision == gate.FLOOR_PASSED
    assert gate.floor_only(model("new", 0.70), CONFIG).exit_status == 3


def test_reports_have_one_junit_case_per_check_and_failures_marked(tmp_path: Path) -> None:
    result = gate.decide(model("new", 0.78), model("old", 0.80), CONFIG)
    gate.write_reports(result, tmp_path)
    suite = ElementTree.parse(tmp_path / "junit-gate.xml").getroot().find("testsuite")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"floor_roc_auc", "floor_recall_bad", "champion_roc_auc"}
    assert suite.get("failures") == "1"
    assert cases["champion_roc_auc"].find("failure") is not None
    assert cases["floor_roc_auc"].find("failure") is None
    written = json.loads((tmp_path / "gate.json").read_text())
    assert written["decision"] == "champion_kept"
    assert written["champion"]["version"] == "old"
