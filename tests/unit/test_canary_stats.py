"""Canary statistics: DeLong's AUC and variance, the non-inferiority verdict, two proportions."""

from __future__ import annotations

import math
from fractions import Fraction
from statistics import NormalDist

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.canary_stats import (AucComparison, compare_auc, delong_components,
                                   non_inferiority, proportion_difference)

MARGIN, ALPHA = 0.01, 0.05
Z_975 = NormalDist().inv_cdf(1 - ALPHA / 2)

# A tiny example worked by hand. Positives (bad) X and negatives (good) Y, scored by A and B;
# psi(x, y) = 1 if x > y, 1/2 if x == y, 0 otherwise.
#   A: X = [0.9, 0.5, 0.4], Y = [0.6, 0.4, 0.2, 0.1]
#      V10 (mean psi of each X over Y) = [4/4, 3/4, 2.5/4] = [24, 18, 15] / 24
#      V01 (mean psi over X for each Y) = [1/3, 2.5/3, 3/3, 3/3] = [8, 20, 24, 24] / 24
#      AUC = 19/24; S10 = (5^2 + 1^2 + 4^2) / 576 / 2 = 7/192;
#      S01 = (11^2 + 1^2 + 5^2 + 5^2) / 576 / 3 = 43/432;
#      Var = S10/3 + S01/4 = 21/1728 + 43/1728 = 1/27.
#   B: X = [0.7, 0.8, 0.3], Y = [0.2, 0.9, 0.1, 0.3]
#      V10 = [3/4, 3/4, 2.5/4] = [18, 18, 15] / 24; V01 = [3/3, 0, 3/3, 2.5/3] = [24, 0, 24, 20]/24
#      AUC = 17/24; S10 = (1 + 1 + 4) / 576 / 2 = 1/192; S01 = (49 + 289 + 49 + 9) / 576 / 3 = 11/48
#      Var = 1/576 + 33/576 = 17/288.
#   Cov(A, B): C10 = (5*1 - 1*1 + 4*2) / 576 / 2 = 1/96; C01 = (-77 - 17 + 35 + 15) / 576 / 3
#      = -11/432; Cov = C10/3 + C01/4 = 6/1728 - 11/1728 = -5/1728.
#   B - A = -2/24 = -1/12; independent Var = 1/27 + 17/288 = 166/1728;
#   paired Var = 166/1728 + 2 * 5/1728 = 176/1728.
TINY_IS_BAD = np.array([True, True, True, False, False, False, False])
TINY_A = np.array([0.9, 0.5, 0.4, 0.6, 0.4, 0.2, 0.1])
TINY_B = np.array([0.7, 0.8, 0.3, 0.2, 0.9, 0.1, 0.3])


def simulated(rng: np.random.Generator, rows: int, signal: float) -> tuple[np.ndarray, np.ndarray]:
    """Labelled rows whose scores separate the classes by `signal` standard deviations."""
    is_bad = rng.random(rows) < 0.3
    return is_bad, signal * is_bad + rng.normal(size=rows)


def by_hand(difference: float, standard_error: float, rows: int = 100) -> AucComparison:
    """A comparison built from its numbers alone, for the decision rule's boundaries."""
    return AucComparison(0.8, 0.8 + difference, difference, standard_error, False, rows, rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_auc_equals_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    is_bad = rng.random(300) < 0.25
    scores = rng.integers(0, 6, size=300) + is_bad  # six levels: many ties across classes
    auc, v10, v01 = delong_components(is_bad, scores)
    assert auc == pytest.approx(roc_auc_score(is_bad, scores), abs=1e-12)
    assert (v10.size, v01.size) == (is_bad.sum(), (~is_bad).sum())
    assert v10.mean() == pytest.approx(v01.mean(), abs=1e-12)


def test_delong_components_match_the_hand_worked_example() -> None:
    auc, v10, v01 = delong_components(TINY_IS_BAD, TINY_A)
    assert auc == pytest.approx(19 / 24)
    # In row order: pairing two models matches the components row by row.
    assert v10 == pytest.approx([24 / 24, 18 / 24, 15 / 24])
    assert v01 == pytest.approx([8 / 24, 20 / 24, 24 / 24, 24 / 24])


def test_delong_variance_matches_the_hand_worked_example() -> None:
    independent = compare_auc((TINY_IS_BAD, TINY_A), (TINY_IS_BAD, TINY_B), paired=False)
    paired = compare_auc((TINY_IS_BAD, TINY_A), (TINY_IS_BAD, TINY_B), paired=True)
    assert independent.difference == pytest.approx(-1 / 12)
    assert independent.standard_error ** 2 == pytest.approx(float(Fraction(166, 1728)))
    assert paired.standard_error ** 2 == pytest.approx(float(Fraction(176, 1728)))
    alone = compare_auc((TINY_IS_BAD, TINY_A), (TINY_IS_BAD, TINY_A), paired=False)
    assert alone.standard_error ** 2 == pytest.approx(2 / 27)
    assert (paired.production_rows, paired.canary_rows) == (7, 7)


def pairwise_components(is_bad: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """V10 and V01 straight from the definition: the full matrix of psi(x_i, y_j)."""
    x, y = scores[is_bad][:, None], scores[~is_bad][None, :]
    psi = (x > y) + 0.5 * (x == y)
    return psi.mean(axis=1), psi.mean(axis=0)


def test_paired_standard_error_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(5)
    is_bad = rng.random(60) < 0.4
    a = rng.integers(0, 8, size=60) + 2 * is_bad  # ties within and across classes
    b = a + rng.integers(-2, 3, size=60)
    a10, a01 = pairwise_components(is_bad, a)
    b10, b01 = pairwise_components(is_bad, b)
    cov10, cov01 = np.cov(a10, b10), np.cov(a01, b01)  # ddof=1, as DeLong's S
    variance = ((cov10[0, 0] + cov10[1, 1] - 2 * cov10[0, 1]) / a10.size
                + (cov01[0, 0] + cov01[1, 1] - 2 * cov01[0, 1]) / a01.size)
    paired = compare_auc((is_bad, a), (is_bad, b), paired=True)
    assert paired.standard_error ** 2 == pytest.approx(variance, rel=1e-10)
    assert paired.difference == pytest.approx(b10.mean() - a10.mean(), abs=1e-12)


def test_paired_identical_scores_have_no_error() -> None:
    same = compare_auc((TINY_IS_BAD, TINY_A), (TINY_IS_BAD, TINY_A.copy()), paired=True)
    assert same.difference == 0 and same.standard_error == pytest.approx(0, abs=1e-12)


def test_paired_standard_error_is_smaller_on_correlated_scores() -> None:
    rng = np.random.default_rng(7)
    is_bad, production = simulated(rng, 2000, 1.0)
    canary = production + rng.normal(scale=0.3, size=production.size)
    paired = compare_auc((is_bad, production), (is_bad, canary), paired=True)
    independent = compare_auc((is_bad, production), (is_bad, canary), paired=False)
    assert paired.paired and not independent.paired
    assert paired.difference == independent.difference
    assert paired.standard_error < independent.standard_error / 2


def test_clearly_worse_canary_is_aborted() -> None:
    rng = np.random.default_rng(11)
    production, canary = simulated(rng, 2000, 1.5), simulated(rng, 2000, 0.0)
    verdict = non_inferiority(compare_auc(production, canary, paired=False), MARGIN, ALPHA)
    assert verdict.recommendation == "abort"
    assert verdict.more_outcomes_needed is None
    assert verdict.test == "DeLong non-inferiority test on ROC AUC (margin 0.01, alpha 0.05)"
    assert "95% CI" in verdict.result and "z = " in verdict.result and "p = " in verdict.result


def test_clearly_better_canary_is_promoted() -> None:
    rng = np.random.default_rng(12)
    production, canary = simulated(rng, 2000, 0.3), simulated(rng, 2000, 1.5)
    verdict = non_inferiority(compare_auc(production, canary, paired=False), MARGIN, ALPHA)
    assert (verdict.recommendation, verdict.more_outcomes_needed) == ("promote", None)


def test_equal_canary_in_shadow_mode_is_promoted() -> None:
    rng = np.random.default_rng(13)
    is_bad, production = simulated(rng, 2000, 1.0)
    canary = production + rng.normal(scale=0.05, size=production.size)
    comparison = compare_auc((is_bad, production), (is_bad, canary), paired=True)
    assert abs(comparison.difference) < 0.005
    assert non_inferiority(comparison, MARGIN, ALPHA).recommendation == "promote"


def test_tiny_sample_waits_for_more_outcomes() -> None:
    rng = np.random.default_rng(14)
    production, canary = simulated(rng, 40, 1.0), simulated(rng, 40, 1.0)
    verdict = non_inferiority(compare_auc(production, canary, paired=False), MARGIN, ALPHA)
    assert verdict.recommendation == "wait"
    assert verdict.more_outcomes_needed is not None and verdict.more_outcomes_needed > 0
    assert f"about {verdict.more_outcomes_needed} more" in verdict.result


def test_outcomes_needed_is_the_smallest_sample_that_decides() -> None:
    # difference 0, se 0.02 with 100 rows: decided once 1.96 * 0.02 * sqrt(100 / n) < 0.01,
    # i.e. n > 100 * (1.96 * 0.02 / 0.01) ** 2, about 1536.6; so n = 1537, 1437 more.
    comparison = by_hand(0.0, 0.02, rows=100)
    needed = non_inferiority(comparison, MARGIN, ALPHA).more_outcomes_needed
    assert needed == math.floor(100 * (Z_975 * 0.02 / MARGIN) ** 2) + 1 - 100 == 1437
    for rows, decision in ((100 + needed, "promote"), (100 + needed - 1, "wait")):
        shrunk = by_hand(0.0, 0.02 * math.sqrt(100 / rows), rows=rows)
        assert non_inferiority(shrunk, MARGIN, ALPHA).recommendation == decision


def test_outcomes_needed_uses_the_smaller_arm() -> None:
    small = AucComparison(0.8, 0.8, 0.0, 0.02, False, 100, 5000)
    assert non_inferiority(small, MARGIN, ALPHA).more_outcomes_needed == 1437


# Boundaries: se = 0.5 and margin = 2**-7 keep every sum below exact in floating point, so the
# bound lands exactly on -margin (asserted first). A bound on -margin has not excluded it.
EXACT_MARGIN, EXACT_SE = 2.0 ** -7, 0.5


def test_lower_bound_exactly_on_the_margin_is_not_promoted() -> None:
    comparison = by_hand(Z_975 * EXACT_SE - EXACT_MARGIN, EXACT_SE)
    assert comparison.interval(ALPHA)[0] == -EXACT_MARGIN
    verdict = non_inferiority(comparison, EXACT_MARGIN, ALPHA)
    assert verdict.recommendation == "wait" and verdict.more_outcomes_needed == 1
    nudged = by_hand(math.nextafter(comparison.difference, 1.0), EXACT_SE)
    assert non_inferiority(nudged, EXACT_MARGIN, ALPHA).recommendation == "promote"


def test_upper_bound_exactly_on_the_margin_is_not_aborted() -> None:
    comparison = by_hand(-EXACT_MARGIN - Z_975 * EXACT_SE, EXACT_SE)
    assert comparison.interval(ALPHA)[1] == -EXACT_MARGIN
    verdict = non_inferiority(comparison, EXACT_MARGIN, ALPHA)
    assert verdict.recommendation == "wait" and verdict.more_outcomes_needed == 1
    nudged = by_hand(math.nextafter(comparison.difference, -1.0), EXACT_SE)
    assert non_inferiority(nudged, EXACT_MARGIN, ALPHA).recommendation == "abort"


def test_difference_exactly_on_the_margin_waits_without_an_estimate() -> None:
    verdict = non_inferiority(by_hand(-MARGIN, 0.02), MARGIN, ALPHA)
    assert (verdict.recommendation, verdict.more_outcomes_needed) == ("wait", None)
    assert "exactly on the margin" in verdict.result


@pytest.mark.parametrize("difference, decision", [(0.0, "promote"), (-0.02, "abort"),
                                                  (-MARGIN, "wait")])
def test_zero_standard_error_decides_on_the_difference_alone(difference: float,
                                                             decision: str) -> None:
    assert non_inferiority(by_hand(difference, 0.0), MARGIN, ALPHA).recommendation == decision


@pytest.mark.parametrize("is_bad, missing", [([True, True, True], "no good"),
                                             ([False, False, False], "no bad")])
def test_missing_class_is_named(is_bad: list[bool], missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        delong_components(np.array(is_bad), np.array([0.1, 0.2, 0.3]))


def test_single_outcome_of_a_class_has_no_variance() -> None:
    is_bad = np.array([True, False, False, False])
    with pytest.raises(ValueError, match="at least two"):
        compare_auc((is_bad, np.arange(4.0)), (is_bad, np.arange(4.0)), paired=False)


@pytest.mark.parametrize("is_bad, scores", [
    (np.array([True, False]), np.array([0.1, 0.2, 0.3])),
    (np.array([2, 0, 1]), np.array([0.1, 0.2, 0.3])),
    (np.array([True, False, True]), np.array([0.1, np.nan, 0.3])),
])
def test_malformed_inputs_are_refused(is_bad: np.ndarray, scores: np.ndarray) -> None:
    with pytest.raises(ValueError):
        delong_components(is_bad, scores)


def test_paired_with_different_labels_is_refused() -> None:
    other = TINY_IS_BAD.copy()
    other[[0, 3]] = other[[3, 0]]
    with pytest.raises(ValueError, match="same is_bad"):
        compare_auc((TINY_IS_BAD, TINY_A), (other, TINY_A), paired=True)
    with pytest.raises(ValueError, match="same is_bad"):
        compare_auc((TINY_IS_BAD, TINY_A), (TINY_IS_BAD[:-1], TINY_A[:-1]), paired=True)


def test_proportion_difference_matches_a_hand_computed_z() -> None:
    # a: 30/100, b: 45/100; pooled 75/200 = 0.375; se = sqrt(0.375 * 0.625 * (2/100))
    # = sqrt(0.0046875) = 0.068465; z = 0.15 / 0.068465 = 2.1909; p = 2 * (1 - Phi(2.1909)).
    difference, p_value = proportion_difference(30, 100, 45, 100)
    assert difference == pytest.approx(0.15)
    assert p_value == pytest.approx(0.028459, abs=1e-5)
    assert proportion_difference(45, 100, 30, 100) == pytest.approx((-0.15, p_value))


@pytest.mark.parametrize("counts", [(0, 0, 3, 10), (3, 10, 0, 0), (0, 10, 0, 20),
                                    (10, 10, 20, 20)])
def test_proportion_difference_without_evidence_has_p_one(counts: tuple[int, ...]) -> None:
    assert proportion_difference(*counts) == (0.0, 1.0)


def test_proportion_difference_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        proportion_difference(11, 10, 0, 10)
