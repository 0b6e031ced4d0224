"""Model quality recomputed from the holdout rows, never read from the card's claims, and
proof that the holdout rows stayed out of training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from training.artifact import LoadedModel
from training.config import TrainingConfig
from training.data import load_dataset, split
from training.schema import POSITIVE_LABEL, TARGET, feature_names, numeric_feature_names


@pytest.fixture(scope="module")
def parts(data_file: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) of the default split, made here rather than taken from the card."""
    return split(load_dataset(data_file), TrainingConfig())


def test_recomputed_holdout_quality_is_above_the_floor_and_matches_the_card(
        trained_model: LoadedModel, parts: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    holdout = parts[1]
    config = TrainingConfig()
    is_bad = (holdout[TARGET] == POSITIVE_LABEL).to_numpy()
    probability = trained_model.predict_proba_bad(holdout[feature_names()])
    roc_auc = roc_auc_score(is_bad, probability)
    recall = recall_score(is_bad, probability >= trained_model.threshold)
    assert roc_auc >= config.floor_roc_auc
    assert recall >= config.floor_recall_bad
    # The card must report what the holdout says, not a number of its own.
    card = trained_model.card["metrics"]
    assert card["rows"] == len(holdout)
    assert card["roc_auc"] == pytest.approx(roc_auc, abs=1e-12)
    assert card["recall_bad"] == pytest.approx(recall, abs=1e-12)


def test_the_fitted_pipeline_saw_exactly_the_training_rows(
        trained_model: LoadedModel, parts: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    # The scaler is fitted on what the final model was fitted on: its row count and means
    # are those of the training part only, so holdout rows did not leak into training.
    train, holdout = parts
    scaler = trained_model.pipeline.named_steps["preprocess"].named_transformers_["numeric"]
    assert scaler.n_samples_seen_ == len(train) == trained_model.card["data"]["train_rows"]
    np.testing.assert_allclose(scaler.mean_, train[numeric_feature_names()].mean().to_numpy())
    assert trained_model.card["data"]["holdout_rows"] == len(holdout)
