"""Drift measures: PSI, categorical tests, and the report on real and shifted data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from training.artifact import LoadedModel
from training.config import TrainingConfig
from training.data import load_dataset, split
from training.drift import (DriftReport, FeatureDrift, drift_report, feature_drift,
                            numeric_fractions, psi, window_psi)
from training.simulate import simulate_batch


def test_psi_is_zero_for_identical_and_grows_with_shift() -> None:
    base = [0.25, 0.25, 0.25, 0.25]
    assert psi(base, base) == 0.0
    small, large = psi(base, [0.3, 0.25, 0.25, 0.2]), psi(base, [0.7, 0.1, 0.1, 0.1])
    assert 0 < small < 0.1 < 0.25 < large


def test_psi_stays_finite_when_a_bin_empties() -> None:
    assert psi([0.5, 0.5], [1.0, 0.0]) < float("inf")


def test_numeric_fractions_catch_values_outside_the_reference_range() -> None:
    fractions = numeric_fractions(pd.Series([-100, 5, 1000]), [0, 10, 20])
    assert fractions == pytest.approx([2 / 3, 1 / 3])


@pytest.mark.parametrize("edges", [[0, 10, 20, 30], [0, 10, 10, 30], [5, 5, 5, 5, 40]])
def test_numeric_fractions_are_numpy_histogram_shares_with_open_outer_bins(
        edges: list[float]) -> None:
    """Values on an edge go right, as in np.histogram; repeated edges make empty bins."""
    values = np.array([-3, 0, 5, 10, 10, 20, 29, 30, 31, 44, 5, 5])
    open_edges = np.array([-np.inf, *edges[1:-1], np.inf])
    counts, _ = np.histogram(values, bins=open_edges)
    assert numeric_fractions(values, edges) == list(counts / len(values))


@pytest.mark.parametrize(("values", "shares"), [
    ([5], [1.0, 0.0, 0.0]), ([5, 12], [0.5, 0.5, 0.0]), ([], [0.0, 0.0, 0.0])])
def test_numeric_fractions_has_a_share_for_every_bin_even_an_empty_top_one(
        values: list[int], shares: list[float]) -> None:
    assert numeric_fractions(np.array(values, dtype=float), [0.0, 10.0, 20.0, 30.0]) == shares


def test_holdout_of_the_training_data_shows_no_drift(trained_model: LoadedModel,
                                                     data_file: Path) -> None:
    holdout = split(load_dataset(data_file), TrainingConfig())[1]
    report = drift_report(holdout, trained_model.card["reference"], 0.25)
    assert report.drifted == []
    assert len(report.features) == 18


def test_covariate_shift_is_flagged_on_the_shifted_inputs(trained_model: LoadedModel,
                                                          data_file: Path) -> None:
    batch = simulate_batch(load_dataset(data_file), "covariate", 1.0, 400, seed=3)
    report = drift_report(batch, trained_model.card["reference"], 0.25)
    assert {"duration", "amount"} <= set(report.drifted)
    assert "DRIFT in" in report.to_text()
    # Written to JSON by the intake, read back for its readable report: the same report.
    assert DriftReport.from_dict(report.to_dict()) == report


def test_a_category_unknown_to_the_model_is_drift(trained_model: LoadedModel,
                                                  data_file: Path) -> None:
    batch = simulate_batch(load_dataset(data_file), "new_category", 0.05, 200, seed=4)
    report = drift_report(batch, trained_model.card["reference"], 0.25)
    purpose = next(f for f in report.features if f.feature == "purpose")
    assert purpose.drifted and "cryptocurrency" in purpose.detail
    assert purpose.p_value is not None


@pytest.mark.parametrize("shifted", [False, True], ids=["holdout", "shifted-batch"])
def test_window_psi_is_the_reports_psi_of_every_input(
        trained_model: LoadedModel, data_file: Path, tmp_path: Path, shifted: bool) -> None:
    """The service's lean computation publishes the numbers the full report gives; a value
    left out or null is not counted by either."""
    frame = split(load_dataset(data_file), TrainingConfig())[1]
    if shifted:
        frame = frame.assign(amount=frame["amount"] * 3, status="no checking account")
    reference = trained_model.card["reference"]
    records = frame.to_dict("records")
    records[0] = {**records[0], "age": None}
    del records[1]["status"]
    frame = pd.DataFrame(records, columns=frame.columns)
    report = drift_report(frame, reference, 0.25)
    lean = window_psi(records, reference)
    assert lean == pytest.approx({item.feature: item.psi for item in report.features},
                                 rel=1e-12, abs=1e-12)
    assert shifted == (max(lean.values()) > 0.25)


def test_window_psi_skips_an_input_it_cannot_measure_and_goes_on(
        trained_model: LoadedModel, data_file: Path) -> None:
    """An input the reference lacks, or that no row holds, has no PSI; the others still do."""
    records = split(load_dataset(data_file), TrainingConfig())[1].to_dict("records")
    reference = dict(trained_model.card["reference"])
    everything = window_psi(records, reference)
    first, second = list(everything)[:2]
    del reference[first]
    for record in records:
        del record[second]
    assert window_psi(records, reference) == {
        name: value for name, value in everything.items() if name not in (first, second)}


def test_the_readable_drift_report_puts_the_most_drifted_input_first() -> None:
    features = [FeatureDrift("age", 0.05, None, False, "numeric"),
                FeatureDrift("amount", 0.9, 0.001, True, "numeric, mean up"),
                FeatureDrift("purpose", 0.3, None, True, "a new category")]
    assert DriftReport(rows=40, threshold=0.25, features=features).to_text() == (
        "drift of 40 rows against the training reference (PSI threshold 0.25): "
        "DRIFT in amount, purpose\n"
        "  [DRIFT] amount: PSI 0.900; numeric, mean up\n"
        "  [DRIFT] purpose: PSI 0.300; a new category\n"
        "  [ok] age: PSI 0.050; numeric")
    assert DriftReport(rows=3, threshold=0.25, features=features[:1]).to_text() == (
        "drift of 3 rows against the training reference (PSI threshold 0.25): stable\n"
        "  [ok] age: PSI 0.050; numeric")


def test_a_numeric_inputs_drift_names_both_medians_and_counts_from_the_threshold() -> None:
    reference = {"kind": "numeric", "bin_edges": [10.0, 20.0, 30.0], "fractions": [0.5, 0.5],
                 "median": 20.0}
    values = pd.Series([12, 14, 16, 25])
    measured = feature_drift(values, reference, "age", threshold=10.0)
    assert measured.detail == "median 15 (reference 20)" and measured.p_value is None
    on_it = feature_drift(values, reference, "age", threshold=measured.psi)
    assert on_it.psi > 0 and on_it.drifted  # exactly on the threshold is drift


def test_a_categorical_inputs_p_value_is_the_chi_square_of_its_counts() -> None:
    reference = {"kind": "categorical", "fractions": {"a": 0.5, "b": 0.5}}
    measured = feature_drift(pd.Series(["a"] * 4), reference, "purpose", threshold=10.0)
    assert measured.p_value == pytest.approx(chi2.sf(4.0, df=1))  # counts 4 and 0 against 2, 2
    one = feature_drift(pd.Series(["a"]), reference, "purpose", threshold=10.0)
    assert one.p_value == pytest.approx(chi2.sf(1.0, df=1))
    unknown = feature_drift(pd.Series(["z", "z"]), reference, "purpose", threshold=10.0)
    assert unknown.p_value is None and unknown.drifted  # nothing known to count


def test_a_categorical_inputs_detail_names_its_largest_gain_and_the_unknown_categories() -> None:
    """Shares a .4, b .5, z .1 against a .6, b .3, c .1, d 0: b gained most; z is unknown."""
    reference = {"kind": "categorical", "fractions": {"a": 0.6, "b": 0.3, "c": 0.1, "d": 0.0}}
    values = pd.Series(["b"] * 5 + ["a"] * 4 + ["z"])
    measured = feature_drift(values, reference, "purpose", threshold=10.0)
    assert measured.detail == ("largest gain 'b' 50% (reference 30%); "
                               "categories unknown to the model: ['z']")
    # The chi-square of the known counts (a 4, b 5, c 0, d 0) against the reference's shares
    # of their 9, an empty reference share floored so that the expectation stays positive.
    floored = np.maximum([0.6, 0.3, 0.1, 0.0], 1e-4)
    expected = floored / floored.sum() * 9
    statistic = float((((np.array([4, 5, 0, 0]) - expected) ** 2) / expected).sum())
    assert measured.p_value == pytest.approx(chi2.sf(statistic, df=3), rel=1e-9)
    nothing_known = feature_drift(pd.Series(["z", "z"]), reference, "purpose", threshold=10.0)
    assert nothing_known.detail == ("largest gain 'd' 0% (reference 0%); "
                                    "categories unknown to the model: ['z']")


def test_a_categorical_input_exactly_on_the_threshold_is_drift() -> None:
    reference = {"kind": "categorical", "fractions": {"a": 0.5, "b": 0.5}}
    values = pd.Series(["a"] * 3 + ["b"])
    measured = feature_drift(values, reference, "purpose", threshold=10.0)
    on_it = feature_drift(values, reference, "purpose", threshold=measured.psi)
    assert measured.psi > 0 and not measured.drifted and on_it.drifted


def test_the_report_measures_only_the_inputs_both_the_sample_and_the_reference_hold(
        trained_model: LoadedModel, data_file: Path) -> None:
    holdout = split(load_dataset(data_file), TrainingConfig())[1]
    reference = dict(trained_model.card["reference"])
    del reference["age"]
    frame = holdout.drop(columns=["amount"]).assign(duration=None)
    report = drift_report(frame, reference, 0.3)
    measured = {item.feature for item in report.features}
    assert measured == set(reference) - {"amount", "duration"}
    assert (report.rows, report.threshold) == (len(holdout), 0.3)
