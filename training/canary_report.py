"""canary-report: compare the canary with production on what the service saw.

Reads the prediction log since the release started (the newest `canary_window_rows`
lines) and the outcomes that came back for those predictions, and puts the arms side by
side: rows, failures, scoring time, live ROC AUC and recall on `bad`, and the PSI between
their prediction distributions. The recommendation follows one order:
1. a canary that broke its release's limits (error rate, p95 scoring time) is aborted,
   by the same rule the service's guard applies (training/canary_release.limit_breach);
2. otherwise, once each arm has the monitor's minimum of labelled outcomes
   (`monitor_min_feedback`), DeLong's non-inferiority test on ROC AUC decides
   (training/canary_stats.py), with the gate's champion tolerance as the margin: promote,
   abort, or wait for the number of outcomes it names.
In canary mode the arms scored different requests (independent samples); in shadow mode
both scored every request (paired: the test uses the covariance of the two).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from training import canary_stats
from training.canary_release import (CANARY_ARM, PRODUCTION_ARM, CanaryRelease, limit_breach,
                                     nearest_rank_p95)
from training.config import TrainingConfig
from training.drift import psi
from training.evaluate import classification_metrics
from training.schema import POSITIVE_LABEL

PSI_BINS = 10


@dataclass
class ArmRows:
    """What one arm scored since the release started, row by row."""

    version: str
    request_ids: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def add(self, request_id: str, probability: float, milliseconds: Any) -> None:
        """One scored row."""
        self.request_ids.append(request_id)
        self.probabilities.append(float(probability))
        if isinstance(milliseconds, (int, float)):
            self.latencies_ms.append(float(milliseconds))


@dataclass
class CanaryReport:
    """The arms side by side, and what to do."""

    release: CanaryRelease
    production_version: str
    recommendation: str
    reasons: list[str]
    test: str
    test_result: str
    more_outcomes_needed: int | None
    arms: dict[str, dict[str, Any]]
    psi_between_arms: float | None
    actions: list[str] = field(default_factory=list)
    # Each arm's probabilities, for the plot (not in the JSON: thousands of numbers).
    distributions: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, written to reports/canary-report.json."""
        return {"recommendation": self.recommendation, "reasons": self.reasons,
                "test": self.test, "test_result": self.test_result,
                "more_outcomes_needed": self.more_outcomes_needed,
                "release": asdict(self.release), "production_version": self.production_version,
                "arms": self.arms, "psi_between_arms": self.psi_between_arms,
                "actions": self.actions}

    def to_text(self) -> str:
        """The report as the log, the summary and the e-mail show it."""
        lines = [f"canary {self.release.version} ({self.release.mode}, share "
                 f"{self.release.share:g}) beside production {self.production_version}: "
                 f"{self.recommendation.upper()}"]
        lines += [f"  {reason}" for reason in self.reasons]
        lines.append(f"  test: {self.test}")
        lines.append(f"  result: {self.test_result}")
        for arm, stats in self.arms.items():
            lines.append(f"  {arm:<10} {stats['version']}: {stats['rows']} rows, "
                         f"{stats['errors']} failed, p95 {_shown(stats['p95_ms'], ' ms')}, "
                         f"{stats['labelled']} labelled, ROC AUC "
                         f"{_shown(stats['roc_auc'])}, recall on bad "
                         f"{_shown(stats['recall_bad'])}")
        lines.append(f"  PSI between the arms' predictions: {_shown(self.psi_between_arms)}")
        lines += [f"  action: {action}" for action in self.actions]
        return "\n".join(lines)


def split_arms(records: list[dict[str, Any]], release: CanaryRelease,
               production_version: str) -> dict[str, ArmRows]:
    """The logged rows of each arm since the release started (shadow answers included)."""
    arms = {PRODUCTION_ARM: ArmRows(production_version), CANARY_ARM: ArmRows(release.version)}
    for record in records:
        if str(record.get("time", "")) < release.started_at:
            continue
        output = record.get("output") or {}
        request_id = record.get("request_id")
        if not isinstance(request_id, str) or "probability_bad" not in output:
            continue
        version, arm = record.get("model_version"), record.get("arm", PRODUCTION_ARM)
        if arm == CANARY_ARM and version == release.version:
            arms[CANARY_ARM].add(request_id, output["probability_bad"],
                                 record.get("scoring_ms"))
        elif arm == PRODUCTION_ARM and version == production_version:
            arms[PRODUCTION_ARM].add(request_id, output["probability_bad"],
                                     record.get("scoring_ms"))
        shadow = record.get("shadow") or {}
        if shadow.get("model_version") == release.version and "probability_bad" in shadow:
            arms[CANARY_ARM].add(request_id, shadow["probability_bad"], shadow.get("scoring_ms"))
        if (record.get("canary_error") or {}).get("model_version") == release.version:
            arms[CANARY_ARM].errors += 1
    return arms


def build_report(records: list[dict[str, Any]], feedback: list[dict[str, Any]],
                 release: CanaryRelease, production_version: str,
                 thresholds: dict[str, float],
                 config: TrainingConfig) -> CanaryReport:
    """Compare the arms of a running release and recommend promote, abort or wait;
    `thresholds`: each arm's decision threshold (its model card's), for recall on bad."""
    arms = split_arms(records, release, production_version)
    outcomes = {item["request_id"]: item["outcome"] == POSITIVE_LABEL for item in feedback
                if isinstance(item.get("request_id"), str)
                and item.get("outcome") in ("good", "bad")}
    labelled = {arm: _labelled(rows, outcomes) for arm, rows in arms.items()}
    summaries = {arm: _summary(rows, labelled[arm], thresholds[arm])
                 for arm, rows in arms.items()}
    canary = arms[CANARY_ARM]
    scorings = len(canary.probabilities) + canary.errors
    breach = limit_breach(release, scorings, canary.errors, canary.latencies_ms)
    reasons = _recall_comparison(summaries)
    if breach:
        verdict = canary_stats.Verdict(canary_stats.ABORT, "the release's limits (error "
                                       "rate and p95 scoring time)", breach, None)
        reasons.insert(0, f"the canary broke its limits: {breach}")
    else:
        verdict = _auc_verdict(labelled, release, config)
    return CanaryReport(release=release, production_version=production_version,
                        recommendation=verdict.recommendation, reasons=reasons,
                        test=verdict.test, test_result=verdict.result,
                        more_outcomes_needed=verdict.more_outcomes_needed, arms=summaries,
                        psi_between_arms=_psi(arms[PRODUCTION_ARM].probabilities,
                                              canary.probabilities),
                        distributions={arm: rows.probabilities for arm, rows in arms.items()})


def _labelled(rows: ArmRows, outcomes: dict[str, bool]
              ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The arm's rows whose outcome came back: (is_bad, probability_bad, request ids)."""
    picked = [(outcomes[request_id], probability, request_id) for request_id, probability
              in zip(rows.request_ids, rows.probabilities) if request_id in outcomes]
    return (np.array([bad for bad, _, _ in picked], dtype=bool),
            np.array([probability for _, probability, _ in picked], dtype=float),
            [request_id for _, _, request_id in picked])


def _summary(rows: ArmRows, labelled: tuple[np.ndarray, np.ndarray, list[str]],
             threshold: float) -> dict[str, Any]:
    """One arm's column of the report."""
    is_bad, probabilities, _ = labelled
    metrics = classification_metrics(is_bad, probabilities, threshold) \
        if is_bad.size and 0 < is_bad.sum() < is_bad.size else {}
    return {"version": rows.version, "rows": len(rows.probabilities), "errors": rows.errors,
            "p95_ms": nearest_rank_p95(rows.latencies_ms) if rows.latencies_ms else None,
            "labelled": int(is_bad.size), "bad_outcomes": int(is_bad.sum()),
            "roc_auc": metrics.get("roc_auc"), "recall_bad": metrics.get("recall_bad"),
            "mean_probability_bad": float(np.mean(rows.probabilities))
            if rows.probabilities else None}


def _auc_verdict(labelled: dict[str, tuple[np.ndarray, np.ndarray, list[str]]],
                 release: CanaryRelease, config: TrainingConfig) -> canary_stats.Verdict:
    """DeLong's non-inferiority test, or wait when the outcomes cannot support it yet."""
    test = (f"DeLong non-inferiority test on ROC AUC (margin {config.champion_tolerance:g}, "
            f"alpha {config.canary_alpha:g})")
    production, canary = labelled[PRODUCTION_ARM][:2], labelled[CANARY_ARM][:2]
    fewest = min(len(production[0]), len(canary[0]))
    if fewest < config.monitor_min_feedback:
        # DeLong's standard error is itself unreliable on a handful of outcomes.
        return canary_stats.Verdict(
            canary_stats.WAIT, test, f"{fewest} labelled outcomes in the smaller arm; the "
            f"test is run from {config.monitor_min_feedback} per arm",
            config.monitor_min_feedback - fewest)
    paired = not release.answers
    if paired:  # shadow: compare on the rows both arms scored and that came back labelled
        production, canary = _paired(production, canary, (labelled[PRODUCTION_ARM][2],
                                                          labelled[CANARY_ARM][2]))
    try:
        comparison = canary_stats.compare_auc(production, canary, paired=paired)
    except ValueError as error:
        needed = max(0, 2 - int(min(production[0].sum(), canary[0].sum())),
                     2 - int(min((~production[0]).sum(), (~canary[0]).sum())))
        return canary_stats.Verdict(canary_stats.WAIT, test, f"not enough outcomes yet: "
                                    f"{error}", needed or None)
    return canary_stats.non_inferiority(comparison, config.champion_tolerance,
                                        config.canary_alpha)


def _paired(production: tuple[np.ndarray, np.ndarray], canary: tuple[np.ndarray, np.ndarray],
            ids: tuple[list[str], list[str]]
            ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The labelled rows both arms scored, in the same order (shadow mode: the canary may
    have failed on some of production's)."""
    canary_index = {request_id: n for n, request_id in enumerate(ids[1])}
    both = [(n, canary_index[request_id]) for n, request_id in enumerate(ids[0])
            if request_id in canary_index]
    first = np.array([n for n, _ in both], dtype=int)
    second = np.array([m for _, m in both], dtype=int)
    return ((production[0][first], production[1][first]),
            (canary[0][second], canary[1][second]))


def _recall_comparison(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """Recall on bad per arm, with the two-proportion z-test's p-value (information)."""
    production, canary = summaries[PRODUCTION_ARM], summaries[CANARY_ARM]
    if production["recall_bad"] is None or canary["recall_bad"] is None:
        return []
    caught = [round(s["recall_bad"] * s["bad_outcomes"]) for s in (production, canary)]
    difference, p_value = canary_stats.proportion_difference(
        caught[0], production["bad_outcomes"], caught[1], canary["bad_outcomes"])
    return [f"recall on bad: canary {canary['recall_bad']:.3f} vs production "
            f"{production['recall_bad']:.3f} (difference {difference:+.3f}, two-proportion "
            f"z-test p = {p_value:.3g})"]


def _psi(production: list[float], canary: list[float]) -> float | None:
    """PSI of the canary's probabilities over production's deciles (None: too few rows)."""
    if len(production) < PSI_BINS or len(canary) < PSI_BINS:
        return None
    edges = np.quantile(production, np.linspace(0, 1, PSI_BINS + 1))[1:-1]
    shares = [np.bincount(np.searchsorted(edges, values, side="right"),
                          minlength=PSI_BINS) / len(values) for values in (production, canary)]
    return round(psi(shares[0].tolist(), shares[1].tolist()), 6)


def _shown(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.3f}{unit}"
