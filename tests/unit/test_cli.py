"""The command line end to end: exit statuses, messages, reports and registry effects.

The commands run in this process (tests/training_cli.py); the usage test starts the real
`python -m training`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.training_cli import run_training as run
from training.report_names import PLOT_FILES, PLOTS_DIR
from training.registry import Registry

FIXTURES = ROOT / "tests" / "data" / "fixtures"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Registry and reports in a temp dir; one model family keeps these tests quick."""
    monkeypatch.setenv("MODEL_REGISTRY", str(tmp_path / "registry"))
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("TRAINING_MODEL_FAMILIES", "logistic_regression")
    return tmp_path


def test_validate_broken_file_exits_1_naming_each_failed_check(workdir: Path) -> None:
    result = run("validate", "--data", str(FIXTURES / "out_of_range.csv"))
    assert result.returncode == 1
    assert "[FAIL] range:amount" in result.stdout and "[FAIL] range:age" in result.stdout
    report = json.loads((workdir / "reports" / "validation.json").read_text())
    assert report["passed"] is False


def test_validate_real_file_exits_0(workdir: Path) -> None:
    result = run("validate")
    assert result.returncode == 0, result.stdout
    assert "PASSED" in result.stdout


def test_missing_data_file_exits_1_with_the_path(workdir: Path) -> None:
    result = run("train", "--data", "nowhere.csv", "--output", str(workdir / "m"))
    assert result.returncode == 1
    assert "nowhere.csv: no such data file" in result.stdout


def test_training_on_invalid_data_exits_1_with_the_report(workdir: Path) -> None:
    result = run("train", "--data", str(FIXTURES / "unknown_label.csv"),
                 "--output", str(workdir / "m"))
    assert result.returncode == 1
    assert "domain:purpose" in result.stdout
    assert not (workdir / "m").exists()


def test_usage_error_exits_2() -> None:
    assert run("promote").returncode == 2
    # The real entry point, once: `python -m training` exits with main()'s status.
    started = subprocess.run([sys.executable, "-m", "training", "promote"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert started.returncode == 2 and "required: version" in started.stderr, started.stderr


def test_train_twice_second_gate_compares_then_rollback(workdir: Path) -> None:
    registry = Registry(workdir / "registry")
    first = run("train", "--output", str(workdir / "m1"))
    assert first.returncode == 0, first.stdout
    assert run("gate", "--candidate", str(workdir / "m1")).returncode == 0
    v1 = registry.production_version()
    card1 = json.loads((workdir / "reports" / "model-card.json").read_text())
    assert card1["metrics"]["roc_auc"] > 0.75

    assert run("train", "--output", str(workdir / "m2")).returncode == 0
    card2 = json.loads((workdir / "reports" / "model-card.json").read_text())
    assert card2["metrics"] == card1["metrics"]  # same data and seed: same metrics
    # ... and the same plots, which reach reports/plots/ for the summary.
    published = sorted((workdir / "reports" / PLOTS_DIR).iterdir())
    assert [p.name for p in published] == sorted(PLOT_FILES)
    assert [p.read_bytes() for p in published] == [
        (workdir / "m1" / PLOTS_DIR / p.name).read_bytes() for p in published]
    second = run("gate", "--candidate", str(workdir / "m2"))
    assert second.returncode == 0, second.stdout
    gate = json.loads((workdir / "reports" / "gate.json").read_text())
    assert gate["decision"] == "promoted"
    assert gate["champion"]["version"] == v1  # the second gate compared against the first
    v2 = registry.production_version()
    assert v2 != v1 and registry.versions() == sorted([v1, v2])

    listing = run("list").stdout
    assert f"* {v2}" in listing and f"  {v1}" in listing
    assert run("rollback").returncode == 0
    assert registry.production_version() == v1


def test_champion_kept_exits_4_and_registers_without_promoting(workdir: Path) -> None:
    assert run("train", "--output", str(workdir / "m")).returncode == 0
    assert run("gate", "--candidate", str(workdir / "m")).returncode == 0
    registry = Registry(workdir / "registry")
    champion = registry.production_version()
    assert run("train", "--output", str(workdir / "m2")).returncode == 0
    # Demand that a challenger beat the champion by 0.05: an identical retrain cannot.
    env = {**os.environ, "TRAINING_CHAMPION_TOLERANCE": "-0.05"}
    kept = run("gate", "--candidate", str(workdir / "m2"), env=env)
    assert kept.returncode == 4, kept.stdout
    assert f"champion {champion} kept" in kept.stdout
    assert registry.production_version() == champion
    assert len(registry.versions()) == 2


def test_under_the_floor_exits_3(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_FLOOR_ROC_AUC", "0.99")
    result = run("train", "--output", str(workdir / "m"))
    assert result.returncode == 3
    assert "under the absolute floor" in result.stdout
    gate = json.loads((workdir / "reports" / "gate.json").read_text())
    assert gate["decision"] == "failed"


def test_evaluate_scores_the_production_model(workdir: Path) -> None:
    assert run("train", "--output", str(workdir / "m")).returncode == 0
    assert run("gate", "--candidate", str(workdir / "m")).returncode == 0
    result = run("evaluate")
    assert result.returncode == 0
    assert json.loads(result.stdout)["metrics"]["roc_auc"] > 0.75


def test_evaluate_without_production_model_exits_1(workdir: Path) -> None:
    result = run("evaluate")
    assert result.returncode == 1
    assert "no production model has been promoted yet" in result.stdout
