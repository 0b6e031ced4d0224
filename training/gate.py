"""The quality gate: an absolute floor and a champion/challenger comparison.

Three outcomes, never confused: under the floor is a failure; a challenger that does not
hold up against the champion is a normal decision to keep the champion; otherwise the
challenger is promoted. Each check is reported as a JUnit test case.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from training.config import TrainingConfig

PROMOTED = "promoted"
CHAMPION_KEPT = "champion_kept"
FAILED = "failed"
FLOOR_PASSED = "floor_passed"  # the build-time gate: floor only, no champion in sight

# Exit statuses of `python -m training gate` / `train`, documented in README.md.
EXIT_STATUS = {PROMOTED: 0, FLOOR_PASSED: 0, FAILED: 3, CHAMPION_KEPT: 4}


@dataclass(frozen=True)
class GateCheck:
    """One gate check and why it passed or failed."""

    name: str
    passed: bool
    detail: str


@dataclass
class GateResult:
    """The gate's decision, its checks and the metrics it compared."""

    decision: str
    reasons: list[str]
    checks: list[GateCheck]
    challenger: dict[str, Any]
    champion: dict[str, Any] | None = None
    newest_batch: dict[str, Any] | None = None  # both models on the newest data (retrain)
    # How a promoted challenger reached production: "direct", or "canary" (released beside
    # the champion first; training/canary.py). None until a promotion happened.
    promotion: str | None = None

    @property
    def exit_status(self) -> int:
        """The CLI exit status for this decision."""
        return EXIT_STATUS[self.decision]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, written to reports/gate.json."""
        return {"decision": self.decision, "reasons": self.reasons,
                "checks": [asdict(check) for check in self.checks],
                "challenger": self.challenger, "champion": self.champion,
                "newest_batch": self.newest_batch, "promotion": self.promotion}


def floor_checks(metrics: dict[str, Any], config: TrainingConfig) -> list[GateCheck]:
    """Absolute minimum quality on the holdout, whatever the champion does."""
    checks = []
    for metric, floor in (("roc_auc", config.floor_roc_auc),
                          ("recall_bad", config.floor_recall_bad)):
        value = metrics.get(metric)
        passed = value is not None and value >= floor
        shown = "n/a" if value is None else f"{value:.4f}"
        checks.append(GateCheck(f"floor_{metric}", passed, f"holdout {metric} {shown} "
                                f"{'>=' if passed else '<'} floor {floor:.4f}"))
    return checks


def champion_checks(challenger: dict[str, Any], champion: dict[str, Any],
                    config: TrainingConfig) -> list[GateCheck]:
    """The challenger must not be worse than the champion beyond the tolerance."""
    new, old = challenger["roc_auc"], champion["roc_auc"]
    passed = new >= old - config.champion_tolerance
    return [GateCheck(
        "champion_roc_auc", passed,
        f"challenger ROC AUC {new:.4f} vs champion {old:.4f} on the same holdout rows "
        f"(difference {new - old:+.4f}; tolerance {config.champion_tolerance:.4f})")]


def decide(challenger: dict[str, Any], champion: dict[str, Any] | None,
           config: TrainingConfig, champion_note: str = "") -> GateResult:
    """Run the floor and, when there is a champion, the comparison; return the decision."""
    floor = floor_checks(challenger["metrics"], config)
    if not all(check.passed for check in floor):
        failed = [check.detail for check in floor if not check.passed]
        return GateResult(FAILED, ["under the absolute floor: " + "; ".join(failed)],
                          floor, challenger, champion)
    if champion is None:
        note = champion_note or "no production model yet"
        return GateResult(PROMOTED, [f"{note}: the floor alone decides, and it passed"],
                          floor, challenger, None)
    comparison = champion_checks(challenger["metrics"], champion["metrics"], config)
    checks = floor + comparison
    if all(check.passed for check in comparison):
        return GateResult(PROMOTED, ["passed the floor and holds up against champion "
                                     f"{champion['version']}: " + comparison[0].detail],
                          checks, challenger, champion)
    return GateResult(CHAMPION_KEPT, [f"champion {champion['version']} kept: "
                                      + comparison[0].detail], checks, challenger, champion)


def floor_only(challenger: dict[str, Any], config: TrainingConfig) -> GateResult:
    """The build-time gate: the floor alone, because a build cannot see production."""
    floor = floor_checks(challenger["metrics"], config)
    if all(check.passed for check in floor):
        return GateResult(FLOOR_PASSED, ["passed the absolute floor; champion/challenger "
                                         "runs later against the production registry"],
                          floor, challenger)
    failed = [check.detail for check in floor if not check.passed]
    return GateResult(FAILED, ["under the absolute floor: " + "; ".join(failed)], floor,
                      challenger)


def write_reports(result: GateResult, reports_dir: Path) -> None:
    """Write reports/gate.json and reports/junit-gate.xml (one test case per check)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "gate.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    failures = sum(not check.passed for check in result.checks)
    suite = ElementTree.Element("testsuite", name="model-gate", tests=str(len(result.checks)),
                                failures=str(failures), errors="0", skipped="0")
    for check in result.checks:
        case = ElementTree.SubElement(suite, "testcase", classname="model_gate",
                                      name=check.name, time="0")
        if check.passed:
            ElementTree.SubElement(case, "system-out").text = check.detail
        else:
            ElementTree.SubElement(case, "failure", message=check.detail).text = (
                f"decision: {result.decision}\n" + "\n".join(result.reasons))
    tree = ElementTree.ElementTree(ElementTree.Element("testsuites"))
    tree.getroot().append(suite)
    ElementTree.indent(tree)
    tree.write(reports_dir / "junit-gate.xml", encoding="utf-8", xml_declaration=True)
