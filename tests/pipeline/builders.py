"""Report directories as the stages leave them, written with the project's own writers.

The gate report comes from training.gate.write_reports and the stage record from
pipeline.runner.RunRecord, so the summary is tested against the real file shapes.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from pipeline import runner
from pipeline.stages import NATIVE, STAGES
from training import gate, plots
from training.config import TrainingConfig

CHALLENGER_METRICS = {"rows": 200, "bad_rows": 60, "roc_auc": 0.8312, "f1_bad": 0.6512,
                      "recall_bad": 0.7667, "precision_bad": 0.5652, "brier": 0.1589,
                      "decline_rate": 0.41,
                      "confusion_matrix": {"true_good_approved": 104, "true_good_declined": 36,
                                           "true_bad_approved": 14, "true_bad_declined": 46}}


def write_junit(reports: Path, kind: str, passed: int = 3, failed: tuple[str, ...] = (),
                skipped: int = 0) -> Path:
    """A pytest-style JUnit file with the given outcomes."""
    suite = ElementTree.Element("testsuite", name=kind)
    for index in range(passed):
        ElementTree.SubElement(suite, "testcase", classname=f"tests.{kind}.test_ok",
                               name=f"test_ok_{index}")
    for name in failed:
        case = ElementTree.SubElement(suite, "testcase", classname=f"tests.{kind}.test_bad",
                                      name=name)
        ElementTree.SubElement(case, "failure", message="assert False").text = "assert False"
    for index in range(skipped):
        case = ElementTree.SubElement(suite, "testcase", classname=f"tests.{kind}.test_skip",
                                      name=f"test_skip_{index}")
        ElementTree.SubElement(case, "skipped", message="not here")
    root = ElementTree.Element("testsuites")
    root.append(suite)
    path = reports / f"junit-{kind}.xml"
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_coverage(reports: Path, line_rate: float = 0.8712, branch_rate: float = 0.7021) -> None:
    """A Cobertura coverage.xml header, as `coverage xml` writes it."""
    (reports / "coverage.xml").write_text(
        f'<?xml version="1.0" ?>\n<coverage version="7.0" line-rate="{line_rate}" '
        f'branch-rate="{branch_rate}" lines-covered="1200" lines-valid="1377" '
        'branches-covered="330" branches-valid="470" complexity="0"><packages/></coverage>\n')


def write_flake8(reports: Path, findings: tuple[str, ...] = ()) -> None:
    """A flake8 --output-file report."""
    (reports / "flake8.txt").write_text("".join(f"{line}\n" for line in findings))


def write_card(reports: Path, version: str = "20261122T101500Z-abc1234") -> None:
    """The parts of a model card the summary reads."""
    (reports / "model-card.json").write_text(json.dumps({
        "version": version, "model_family": "logistic_regression",
        "metrics": CHALLENGER_METRICS}))


PLOT_DATA = plots.PlotData(
    false_positive_rate=[0.0, 0.1, 0.3, 1.0], true_positive_rate=[0.0, 0.6, 0.85, 1.0],
    roc_auc=0.8312, mean_predicted=[0.1, 0.4, 0.8], fraction_bad=[0.08, 0.45, 0.75],
    threshold=0.24, confusion=dict(CHALLENGER_METRICS["confusion_matrix"]),
    segment_recall=[plots.SegmentRecall("age_band", "18-25", 0.9, 21),
                    plots.SegmentRecall("foreign_worker", "no", 0.86, 58)])


def write_plots(reports: Path) -> list[Path]:
    """The model's plots as the training CLI publishes them, in reports/plots/."""
    return plots.write_plots(reports / plots.PLOTS_DIR, PLOT_DATA)


def write_gate(reports: Path, decision: str) -> gate.GateResult:
    """A real gate report for `decision` (promoted, champion_kept or failed)."""
    config = TrainingConfig()
    challenger = {"version": "20261122T101500Z-abc1234", "model_family": "logistic_regression",
                  "metrics": dict(CHALLENGER_METRICS)}
    champion = {"version": "20261101T080000Z-def5678", "model_family": "gradient_boosting",
                "metrics": dict(CHALLENGER_METRICS, roc_auc=0.8201)}
    if decision == gate.CHAMPION_KEPT:
        champion["metrics"]["roc_auc"] = 0.8612
    if decision == gate.FAILED:
        challenger["metrics"]["roc_auc"] = 0.61
    result = gate.decide(challenger, champion, config)
    assert result.decision == decision
    gate.write_reports(result, reports)
    return result


def write_stages(reports: Path, results: dict[str, str], reasons: dict[str, str] | None = None,
                 mode: str = NATIVE) -> None:
    """A stage record: each stage's result by name (stages not named: not run)."""
    settings = runner.Settings(reports_dir=reports, mode=mode, mode_reason="test")
    record = runner.RunRecord(settings, finished_at="2026-11-22T10:30:00+00:00", seconds=312.4)
    for stage in STAGES:
        result = results.get(stage.name, runner.NOT_RUN)
        record.stages.append(runner.StageResult(
            stage.name, mode, result, stage.target(mode), seconds=12.5,
            exit_status=None if result in (runner.NOT_RUN, runner.SKIPPED) else 0,
            reason=(reasons or {}).get(stage.name, "")))
    record.write()


def green(reports: Path) -> None:
    """Everything passed and the gate promoted."""
    reports.mkdir(parents=True, exist_ok=True)
    write_stages(reports, {stage.name: runner.PASSED for stage in STAGES})
    for kind in ("unit", "data", "model"):
        write_junit(reports, kind, passed=5, skipped=1 if kind == "unit" else 0)
    write_coverage(reports)
    write_flake8(reports)
    write_card(reports)
    write_plots(reports)
    write_gate(reports, gate.PROMOTED)


def red_data_tests(reports: Path) -> None:
    """The data tests failed: nothing after them ran."""
    reports.mkdir(parents=True, exist_ok=True)
    write_stages(reports, {"setup": runner.PASSED, "lint": runner.PASSED,
                           "unit tests": runner.PASSED, "data tests": runner.FAILED},
                 reasons={"data tests": "make test-data exited with status 2"})
    write_junit(reports, "unit", passed=5)
    write_junit(reports, "data", passed=4, failed=("test_real_data_passes_every_check",))
    write_flake8(reports)


def unstable(reports: Path) -> None:
    """The gate kept the champion: deploy and smoke test skipped."""
    reports.mkdir(parents=True, exist_ok=True)
    results = {stage.name: runner.PASSED for stage in STAGES}
    results.update({"gate": runner.UNSTABLE, "deploy": runner.SKIPPED,
                    "smoke test": runner.SKIPPED})
    skipped = "the gate kept the champion: there is no new model to deploy"
    write_stages(reports, results, reasons={"gate": "champion kept", "deploy": skipped,
                                            "smoke test": skipped})
    for kind in ("unit", "data", "model"):
        write_junit(reports, kind, passed=5)
    write_coverage(reports)
    write_flake8(reports, ("training/x.py:1:1: F401 'os' imported but unused",))
    write_card(reports)
    write_plots(reports)
    write_gate(reports, gate.CHAMPION_KEPT)
