"""Holdout metrics of a probability model, overall and per segment."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (brier_score_loss, confusion_matrix, f1_score, precision_score,
                             recall_score, roc_auc_score)

from training.config import TrainingConfig
from training.schema import POSITIVE_LABEL, PROTECTED, TARGET

METRIC_NAMES = ("roc_auc", "f1_bad", "recall_bad", "precision_bad", "brier")


def classification_metrics(is_bad: np.ndarray, probability_bad: np.ndarray,
                           threshold: float) -> dict[str, object]:
    """ROC AUC, F1/recall/precision on `bad`, Brier score and the confusion matrix."""
    predicted_bad = probability_bad >= threshold
    both_classes = len(np.unique(is_bad)) == 2
    matrix = confusion_matrix(is_bad, predicted_bad, labels=[False, True])
    return {
        "rows": int(len(is_bad)),
        "bad_rows": int(is_bad.sum()),
        "roc_auc": float(roc_auc_score(is_bad, probability_bad)) if both_classes else None,
        "f1_bad": float(f1_score(is_bad, predicted_bad, zero_division=0)),
        "recall_bad": float(recall_score(is_bad, predicted_bad, zero_division=0)),
        "precision_bad": float(precision_score(is_bad, predicted_bad, zero_division=0)),
        "brier": float(brier_score_loss(is_bad, probability_bad)) if len(is_bad) else None,
        "decline_rate": float(predicted_bad.mean()) if len(is_bad) else None,
        "confusion_matrix": {"true_good_approved": int(matrix[0, 0]),
                             "true_good_declined": int(matrix[0, 1]),
                             "true_bad_approved": int(matrix[1, 0]),
                             "true_bad_declined": int(matrix[1, 1])},
    }


def segment_labels(frame: pd.DataFrame, config: TrainingConfig) -> dict[str, pd.Series]:
    """Segment membership per reporting dimension: protected attributes and age bands."""
    segments = {column.name: frame[column.name].astype(str) for column in PROTECTED
                if column.name in frame.columns}
    edges = list(config.age_band_edges)
    labels = [f"{low}-{high - 1}" for low, high in zip(edges, edges[1:])]
    segments["age_band"] = pd.cut(frame["age"], bins=edges, right=False,
                                  labels=labels).astype(str)
    return segments


def evaluate_probabilities(frame: pd.DataFrame, probability_bad: np.ndarray, threshold: float,
                           config: TrainingConfig) -> dict[str, object]:
    """Overall and per-segment metrics for scored, labelled rows."""
    is_bad = (frame[TARGET] == POSITIVE_LABEL).to_numpy()
    result: dict[str, object] = {"overall": classification_metrics(is_bad, probability_bad,
                                                                   threshold)}
    per_segment: dict[str, dict[str, object]] = {}
    for dimension, labels in segment_labels(frame, config).items():
        per_segment[dimension] = {
            str(value): classification_metrics(is_bad[mask], probability_bad[mask], threshold)
            for value in sorted(labels.unique())
            for mask in [(labels == value).to_numpy()]
        }
    result["segments"] = per_segment
    return result
