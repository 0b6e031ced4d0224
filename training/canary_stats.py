"""Statistics for a canary release: is the canary's ROC AUC not worse than production's?

A canary model scores some requests beside the production model, and outcomes come back
late and only for some rows, so the two AUCs are estimates with wide errors. Comparing
the point values would promote or abort on noise; DeLong's method gives the standard
error of the difference (with the covariance term when both arms scored the same rows),
and a non-inferiority test says `promote`, `abort`, or `wait` with how many more
outcomes would decide. Pure functions on arrays; the report does the I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

PROMOTE = "promote"
ABORT = "abort"
WAIT = "wait"

_NORMAL = NormalDist()


@dataclass(frozen=True)
class AucComparison:
    """Two ROC AUCs and the standard error of their difference (canary - production)."""

    production_auc: float
    canary_auc: float
    difference: float
    standard_error: float
    paired: bool
    production_rows: int
    canary_rows: int

    def interval(self, alpha: float) -> tuple[float, float]:
        """Two-sided (1-alpha) confidence interval of the difference."""
        half_width = _critical_z(alpha) * self.standard_error
        return self.difference - half_width, self.difference + half_width


@dataclass(frozen=True)
class Verdict:
    """The recommendation, the test that made it, and its numbers in one sentence."""

    recommendation: str
    test: str
    result: str
    more_outcomes_needed: int | None


def _critical_z(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    return _NORMAL.inv_cdf(1 - alpha / 2)


def _labels(is_bad: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, values = np.asarray(is_bad), np.asarray(scores, dtype=float)
    if labels.ndim != 1 or labels.shape != values.shape:
        raise ValueError(f"is_bad {labels.shape} and scores {values.shape} must be 1-D arrays "
                         "of the same length")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("is_bad must hold booleans (or 0/1) only")
    if not np.isfinite(values).all():
        raise ValueError("scores must be finite (no NaN or infinity)")
    return labels.astype(bool), values


def _below_plus_half_ties(ordered: np.ndarray, values: np.ndarray) -> np.ndarray:
    return (np.searchsorted(ordered, values, "left")
            + np.searchsorted(ordered, values, "right")) / 2


def delong_components(is_bad: np.ndarray,
                      scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """DeLong's AUC and its structural components (V10 over positives, V01 over negatives)."""
    labels, values = _labels(is_bad, scores)
    for present, name in ((labels, "bad (is_bad True)"), (~labels, "good (is_bad False)")):
        if not present.any():
            raise ValueError(f"no {name} outcomes among the {labels.size} labelled rows: "
                             "ROC AUC needs both classes")
    positives, negatives = values[labels], values[~labels]
    # Counting below plus half the ties by sorted search is O(N log N), where the pairwise
    # matrix of the definition would not fit in memory for a busy production arm. Only the
    # searched side is sorted: the components stay in row order, which pairing relies on.
    v10 = _below_plus_half_ties(np.sort(negatives), positives) / negatives.size
    v01 = 1 - _below_plus_half_ties(np.sort(positives), negatives) / positives.size
    return float(v10.mean()), v10, v01


def _covariance(a: np.ndarray, b: np.ndarray) -> float:
    # A class seen once has no spread to estimate: DeLong's variance is undefined there.
    if a.size < 2:
        raise ValueError("DeLong's variance needs at least two outcomes of each class per arm")
    return float(np.sum((a - a.mean()) * (b - b.mean())) / (a.size - 1))


def _variance(v10: np.ndarray, v01: np.ndarray) -> float:
    return _covariance(v10, v10) / v10.size + _covariance(v01, v01) / v01.size


def compare_auc(production: tuple[np.ndarray, np.ndarray], canary: tuple[np.ndarray, np.ndarray],
                paired: bool) -> AucComparison:
    """DeLong comparison of two ROC AUCs: independent arms, or paired (same rows and labels)."""
    prod_auc, prod10, prod01 = delong_components(*production)
    can_auc, can10, can01 = delong_components(*canary)
    variance = _variance(prod10, prod01) + _variance(can10, can01)
    if paired:
        # Shadow mode: both models scored the same rows, so their errors move together
        # and the covariance of the components takes that shared noise out.
        if not np.array_equal(_labels(*production)[0], _labels(*canary)[0]):
            raise ValueError("paired comparison needs the same rows with the same is_bad "
                             "labels in both arms")
        variance -= 2 * (_covariance(prod10, can10) / prod10.size
                         + _covariance(prod01, can01) / prod01.size)
    return AucComparison(
        production_auc=prod_auc, canary_auc=can_auc, difference=can_auc - prod_auc,
        standard_error=math.sqrt(max(variance, 0.0)), paired=paired,
        production_rows=len(production[0]), canary_rows=len(canary[0]))


def _z_and_p(distance: float, standard_error: float) -> tuple[float, float]:
    if standard_error > 0:
        z = distance / standard_error
    else:
        z = 0.0 if distance == 0 else math.copysign(math.inf, distance)
    return z, 2 * _NORMAL.cdf(-abs(z))


def _outcomes_needed(comparison: AucComparison, distance: float, alpha: float) -> int:
    # The standard error shrinks like 1/sqrt(n): keeping the observed difference, the
    # interval excludes -margin once z * se * sqrt(n_now / n_new) < |difference + margin|.
    now = min(comparison.production_rows, comparison.canary_rows)
    threshold = now * (_critical_z(alpha) * comparison.standard_error / abs(distance)) ** 2
    return max(1, math.floor(threshold) + 1 - now)


def non_inferiority(comparison: AucComparison, margin: float, alpha: float) -> Verdict:
    """Promote if the CI of (canary - production) lies above -margin, abort if below, else wait."""
    if margin < 0:
        raise ValueError(f"margin must not be negative, got {margin}")
    low, high = comparison.interval(alpha)
    distance = comparison.difference + margin
    z, p_value = _z_and_p(distance, comparison.standard_error)
    test = f"DeLong non-inferiority test on ROC AUC (margin {margin:g}, alpha {alpha:g})"
    arms = "paired, same rows" if comparison.paired else "independent arms"
    numbers = (f"canary - production ROC AUC = {comparison.difference:+.4f} "
               f"({comparison.canary_auc:.4f} vs {comparison.production_auc:.4f}, {arms}), "
               f"{100 * (1 - alpha):g}% CI [{low:+.4f}, {high:+.4f}], "
               f"z = {z:.2f} against -{margin:g}, two-sided p = {p_value:.4g}")
    # Strict inequalities: a bound exactly on -margin has not excluded it.
    if low > -margin:
        return Verdict(PROMOTE, test, f"{numbers}: non-inferior, the lower bound is above "
                                      f"-{margin:g}.", None)
    if high < -margin:
        return Verdict(ABORT, test, f"{numbers}: worse beyond the margin, the upper bound is "
                                    f"below -{margin:g}.", None)
    if distance == 0:
        return Verdict(WAIT, test, f"{numbers}: the difference sits exactly on the margin, so "
                                   "no number of further outcomes is expected to decide.", None)
    needed = _outcomes_needed(comparison, distance, alpha)
    return Verdict(WAIT, test, f"{numbers}: undecided; about {needed} more labelled outcomes "
                               "per arm would decide at this difference.", needed)


def proportion_difference(successes_a: int, total_a: int, successes_b: int,
                          total_b: int) -> tuple[float, float]:
    """Difference b - a of two proportions and the pooled two-proportion z-test's p-value."""
    for successes, total in ((successes_a, total_a), (successes_b, total_b)):
        if not 0 <= successes <= total:
            raise ValueError(f"need 0 <= successes <= total, got {successes} of {total}")
    # An empty arm has nothing to compare: report no difference rather than NaN in a report.
    if total_a == 0 or total_b == 0:
        return 0.0, 1.0
    difference = successes_b / total_b - successes_a / total_a
    pooled = (successes_a + successes_b) / (total_a + total_b)
    standard_error = math.sqrt(pooled * (1 - pooled) * (1 / total_a + 1 / total_b))
    return difference, _z_and_p(difference, standard_error)[1]
