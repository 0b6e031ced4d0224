"""canary-report on simulated traffic: a clearly worse canary is aborted, a clearly better
one promoted, too little feedback waits (saying how much more), broken limits abort."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.canary_models import CANARY_VERSION, GATED, register_twin
from tests.conftest import DATA_FILE
from training import canary
from training.canary_release import MIN_SCORINGS, arm_position, new_release
from training.canary_report import build_report, split_arms
from training.cli import EXIT_NO_NEW_DATA, main
from training.config import TrainingConfig
from training.registry import Registry

PRODUCTION = "v1"
CONFIG = TrainingConfig()
THRESHOLDS = {"production": 0.3, "canary": 0.3}


def simulated_traffic(release: Any, rows: int, production_skill: float, canary_skill: float,
                      seed: int = 7, feedback_share: float = 1.0
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Logged predictions routed as the service routes them, and their outcomes. `skill`:
    how far a model's score separates bad from good (0: noise, 0.75: ROC AUC about 0.85)."""
    rng = np.random.default_rng(seed)
    records, feedback = [], []
    for n in range(rows):
        trace = f"trace-{seed}-{n}"
        bad = bool(rng.random() < 0.3)
        sign = 1.0 if bad else -1.0
        scores = {arm: float(1 / (1 + np.exp(-(skill * sign + rng.normal()))))
                  for arm, skill in (("production", production_skill),
                                     ("canary", canary_skill))}
        to_canary = release.answers and release.routes_to_canary(trace)
        arm = "canary" if to_canary else "production"
        record = {"time": release.started_at, "request_id": f"id-{seed}-{n}",
                  "trace_id": trace, "inputs": {}, "arm": arm, "scoring_ms": 1.0,
                  "model_version": release.version if to_canary else PRODUCTION,
                  "output": {"probability_bad": round(scores[arm], 6)}}
        if not release.answers:
            record["shadow"] = {"model_version": release.version, "scoring_ms": 2.0,
                                "probability_bad": round(scores["canary"], 6)}
        records.append(record)
        if rng.random() < feedback_share:
            feedback.append({"request_id": record["request_id"],
                             "outcome": "bad" if bad else "good"})
    return records, feedback


def release_of(mode: str = "canary", share: float = 0.5) -> Any:
    """A release of the canary version started now."""
    return new_release(CANARY_VERSION, mode, share, max_error_rate=0.01, max_latency_ms=50.0)


@pytest.mark.parametrize("mode", ["canary", "shadow"])
def test_a_clearly_worse_canary_is_aborted_by_the_named_test(mode: str) -> None:
    release = release_of(mode)
    records, feedback = simulated_traffic(release, 2000, production_skill=0.75, canary_skill=0.1)
    report = build_report(records, feedback, release, PRODUCTION, THRESHOLDS, CONFIG)
    assert report.recommendation == "abort"
    assert report.test.startswith("DeLong non-inferiority test on ROC AUC (margin 0.01")
    assert "worse beyond the margin" in report.test_result
    arms = report.arms
    assert arms["canary"]["roc_auc"] < arms["production"]["roc_auc"] - 0.1
    assert report.psi_between_arms is not None and "PSI between the arms" in report.to_text()


@pytest.mark.parametrize("mode", ["canary", "shadow"])
def test_a_clearly_better_canary_is_promoted(mode: str) -> None:
    release = release_of(mode)
    records, feedback = simulated_traffic(release, 2000, production_skill=0.25, canary_skill=0.9)
    report = build_report(records, feedback, release, PRODUCTION, THRESHOLDS, CONFIG)
    assert report.recommendation == "promote", report.to_text()
    assert report.more_outcomes_needed is None


def test_too_little_feedback_waits_and_says_how_much_more_is_needed() -> None:
    release = release_of()
    records, feedback = simulated_traffic(release, 1000, production_skill=0.75,
                                          canary_skill=0.7, feedback_share=0.3)
    report = build_report(records, feedback, release, PRODUCTION, THRESHOLDS, CONFIG)
    assert report.recommendation == "wait", report.to_text()
    assert report.more_outcomes_needed and report.more_outcomes_needed > 0
    assert report.arms["canary"]["labelled"] >= CONFIG.monitor_min_feedback
    assert "wait" in report.to_text().lower()


def test_under_the_minimum_of_outcomes_per_arm_the_test_is_not_run() -> None:
    release = release_of()
    records, feedback = simulated_traffic(release, 2000, production_skill=0.75,
                                          canary_skill=0.0)
    fewest = CONFIG.monitor_min_feedback - 1
    per_arm: dict[str, int] = {}
    kept = []
    arm_of = {record["request_id"]: record["arm"] for record in records}
    for item in feedback:
        arm = arm_of[item["request_id"]]
        if per_arm.get(arm, 0) < (fewest if arm == "canary" else 500):
            per_arm[arm] = per_arm.get(arm, 0) + 1
            kept.append(item)
    report = build_report(records, kept, release, PRODUCTION, THRESHOLDS, CONFIG)
    assert report.recommendation == "wait"
    assert report.more_outcomes_needed == 1
    assert f"{fewest} labelled outcomes in the smaller arm" in report.test_result


def test_with_no_outcome_of_a_class_the_report_waits_naming_it() -> None:
    release = release_of()
    records, feedback = simulated_traffic(release, 2000, 0.75, 0.75)
    goods_only = [item for item in feedback if item["outcome"] == "good"]
    report = build_report(records, goods_only, release, PRODUCTION, THRESHOLDS, CONFIG)
    assert report.recommendation == "wait"
    assert "no bad" in report.test_result
    assert report.more_outcomes_needed == 2


def test_a_canary_that_fails_beyond_its_limit_is_aborted_whatever_its_auc() -> None:
    release = release_of()
    records, feedback = simulated_traffic(release, 400, production_skill=0.25, canary_skill=1.0)
    # Production answered these requests because the canary failed on them.
    for record in records[:5]:
        record["canary_error"] = {"model_version": CANARY_VERSION, "error": "ValueError: x"}
    report = build_report(records, feedback, release, PRODUCTION, THRESHOLDS, CONFIG)
    assert report.recommendation == "abort"
    assert report.reasons[0].startswith("the canary broke its limits: 5 of ")
    assert report.arms["canary"]["errors"] == 5


def test_a_canary_slower_than_its_limit_is_aborted() -> None:
    release = release_of(mode="shadow")
    records, feedback = simulated_traffic(release, MIN_SCORINGS * 2, 1.0, 1.0)
    for record in records:
        record["shadow"]["scoring_ms"] = 80.0  # the limit is 50 ms
    report = build_report(records, feedback, release, PRODUCTION, THRESHOLDS, CONFIG)
    assert report.recommendation == "abort"
    assert "p95 scoring time 80.0 ms" in report.reasons[0]


def test_rows_before_the_release_and_of_other_versions_are_not_counted() -> None:
    release = release_of(share=0.5)
    records, _ = simulated_traffic(release, 100, 1.0, 1.0)
    records[0] = {**records[0], "time": "2000-01-01T00:00:00.000+00:00"}
    records[1] = {**records[1], "model_version": "v0", "arm": "production"}
    arms = split_arms(records, release, PRODUCTION)
    counted = len(arms["production"].probabilities) + len(arms["canary"].probabilities)
    assert counted == 98
    expected_canary = sum(arm_position(r["trace_id"]) < 0.5 for r in records[2:])
    assert len(arms["canary"].probabilities) == expected_canary


def test_the_cli_acts_on_the_recommendation_and_writes_the_report(
        tmp_path: Path, trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(tmp_path / "registry")
    production = registry.register(trained_model_dir, card_updates=GATED)
    registry.promote(production, reason="test")
    register_twin(registry, trained_model_dir)
    config = TrainingConfig(data_path=DATA_FILE, registry_dir=registry.root)
    started = canary.start(registry, CANARY_VERSION, dataclasses.replace(config, tracking="off"),
                           share=0.5)
    records, feedback = simulated_traffic(started, 2000, production_skill=0.75,
                                          canary_skill=0.1)
    for record in records:
        if record["model_version"] == PRODUCTION:
            record["model_version"] = production
    log, outcomes = tmp_path / "predictions.jsonl", tmp_path / "feedback.jsonl"
    log.write_text("".join(json.dumps(record) + "\n" for record in records))
    outcomes.write_text("".join(json.dumps(item) + "\n" for item in feedback[:60]))
    for name, value in {"MODEL_REGISTRY": str(registry.root), "TRAINING_TRACKING": "off",
                        "REPORTS_DIR": str(tmp_path / "reports")}.items():
        monkeypatch.setenv(name, value)
    arguments = ["canary-report", "--log", str(log), "--feedback", str(outcomes), "--act"]
    assert main(arguments) == EXIT_NO_NEW_DATA  # ~30 outcomes an arm: wait, nothing done
    assert registry.canary_release() is not None
    outcomes.write_text("".join(json.dumps(item) + "\n" for item in feedback))
    assert main(arguments) == 0
    written = json.loads((tmp_path / "reports" / "canary-report.json").read_text())
    assert written["recommendation"] == "abort"
    assert written["actions"] == [f"aborted {CANARY_VERSION}; production answers all"]
    assert registry.canary_release() is None and registry.production_version() == production


def test_recall_on_bad_is_judged_at_each_arms_own_threshold() -> None:
    release = release_of()
    records, feedback = simulated_traffic(release, 2000, 0.75, 0.75)
    same = build_report(records, feedback, release, PRODUCTION, THRESHOLDS, CONFIG)
    # A canary that declines nobody (threshold above every probability) catches no bad risk.
    strict = build_report(records, feedback, release, PRODUCTION,
                          {"production": 0.3, "canary": 1.0}, CONFIG)
    assert strict.arms["canary"]["recall_bad"] == 0.0
    assert strict.arms["production"]["recall_bad"] == same.arms["production"]["recall_bad"] > 0.5
