"""Holdout metrics, overall and per segment, on rows small enough to count by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from training.config import TrainingConfig
from training.evaluate import classification_metrics, evaluate_probabilities, segment_labels
from training.schema import POSITIVE_LABEL, TARGET

CONFIG = TrainingConfig()  # age bands 18-25, 26-35, 36-50, 51-119


def frame(ages: list[int], foreign: list[str], bad: list[bool]) -> pd.DataFrame:
    """Rows with the columns the segments read (and the label)."""
    return pd.DataFrame({"age": ages, "foreign_worker": foreign,
                         TARGET: [POSITIVE_LABEL if is_bad else "good" for is_bad in bad]})


def test_an_age_on_a_band_edge_belongs_to_the_band_it_starts() -> None:
    rows = frame([18, 25, 26, 35, 36, 50, 51, 119], ["no"] * 8, [False] * 8)
    bands = segment_labels(rows, CONFIG)["age_band"]
    assert list(bands) == ["18-25", "18-25", "26-35", "26-35", "36-50", "36-50", "51-119",
                           "51-119"]
    assert list(segment_labels(rows, CONFIG)["foreign_worker"]) == ["no"] * 8


def test_each_segment_is_measured_on_its_own_rows() -> None:
    rows = frame([30, 30, 30, 60], ["yes", "yes", "yes", "no"], [True, False, False, True])
    probabilities = np.array([0.9, 0.2, 0.6, 0.1])
    segments = evaluate_probabilities(rows, probabilities, 0.5, CONFIG)["segments"]
    foreign = segments["foreign_worker"]
    assert (foreign["yes"]["rows"], foreign["yes"]["bad_rows"]) == (3, 1)
    assert (foreign["no"]["rows"], foreign["no"]["bad_rows"]) == (1, 1)
    # "yes": the bad row declined (0.9), one good declined (0.6), one approved (0.2).
    assert foreign["yes"]["confusion_matrix"] == {
        "true_good_approved": 1, "true_good_declined": 1, "true_bad_approved": 0,
        "true_bad_declined": 1}
    assert foreign["no"]["recall_bad"] == 0.0  # its one bad row scored 0.1: approved
    assert sorted(segments["age_band"]) == ["26-35", "51-119"]


def test_a_probability_at_the_threshold_is_declined() -> None:
    metrics = classification_metrics(np.array([True, False]), np.array([0.5, 0.2]), 0.5)
    assert metrics["decline_rate"] == 0.5
    assert metrics["confusion_matrix"]["true_bad_declined"] == 1
    assert (metrics["f1_bad"], metrics["recall_bad"], metrics["precision_bad"]) == (1.0,) * 3


def test_a_segment_without_bad_rows_has_no_roc_auc_and_zeros_without_warnings() -> None:
    # A small segment may hold no bad credit: nothing to rank (no ROC AUC), nothing to
    # catch (recall, precision and F1 are 0 by convention), and no warning in the log.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = classification_metrics(np.array([False, False]), np.array([0.1, 0.2]), 0.5)
    assert metrics["roc_auc"] is None
    assert (metrics["f1_bad"], metrics["recall_bad"], metrics["precision_bad"]) == (0.0,) * 3
    assert (metrics["rows"], metrics["bad_rows"], metrics["decline_rate"]) == (2, 0, 0.0)
