"""Pure pieces of training: threshold, family selection, constraints, reference profile."""

from __future__ import annotations

import platform
from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from training import __version__
from training.artifact import LoadedModel
from training.config import TrainingConfig
from training.schema import FEATURES
from training.train import (candidates, choose_threshold, encoded_feature_names, git_commit,
                            monotonic_constraints, reference_profile, select_family)


def test_threshold_minimises_cost_with_the_cost_matrix() -> None:
    is_bad = np.array([True, True, False, False, False, False])
    probability = np.array([0.9, 0.3, 0.35, 0.2, 0.1, 0.05])
    # Catching the bad credit at 0.3 costs one declined good one (0.35): worth it at 5:1.
    assert choose_threshold(is_bad, probability, 5.0, 1.0) == 0.3
    # At equal costs every cut from 0.21 to 0.90 costs 1; a tie goes to the highest cut,
    # which declines the fewest applicants.
    assert choose_threshold(is_bad, probability, 1.0, 1.0) == 0.9


def test_a_complex_family_must_beat_the_simple_one_by_the_margin() -> None:
    searches = {"logistic_regression": SimpleNamespace(best_score_=0.770),
                "gradient_boosting": SimpleNamespace(best_score_=0.774)}
    assert select_family(searches, margin=0.005) == "logistic_regression"
    assert select_family(searches, margin=0.001) == "gradient_boosting"


def test_unknown_model_family_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown model families \\['svm'\\]"):
        candidates(TrainingConfig(model_families=("svm",)))


def test_monotonic_constraints_rise_only_with_duration_and_amount() -> None:
    names = encoded_feature_names()
    constraints = dict(zip(names, monotonic_constraints()))
    assert {name for name, sign in constraints.items() if sign} == {"duration", "amount"}
    assert set(constraints.values()) == {0, 1}


def test_protected_attributes_are_not_model_inputs() -> None:
    names = " ".join(encoded_feature_names())
    assert "personal_status_sex" not in names and "foreign_worker" not in names


def test_reference_profile_describes_every_feature() -> None:
    frame = pd.DataFrame([{c.name: (c.minimum + i if c.is_numeric else c.categories[i % 2])
                           for c in FEATURES} for i in range(20)])
    profile = reference_profile(frame)
    assert set(profile) == {c.name for c in FEATURES}
    assert profile["duration"]["median"] == 1 + 9.5
    assert sum(profile["duration"]["fractions"]) == pytest.approx(1.0)
    assert profile["purpose"]["fractions"]["others"] == 0.5
    assert profile["purpose"]["kind"] == "categorical" and profile["duration"]["kind"] == "numeric"
    # Categories the training part lacks have a share of 0: the shares sum to 1.
    assert sum(profile["purpose"]["fractions"].values()) == pytest.approx(1.0)
    assert profile["purpose"]["mode"] in ("others", "car (new)")
    # Deciles: 20 distinct durations 1-20 give 11 edges and 10 bins of two values each.
    assert profile["duration"]["bin_edges"] == pytest.approx(list(np.linspace(1, 20, 11)))
    assert profile["duration"]["fractions"] == [0.1] * 10


def test_the_card_names_the_package_commit_and_when_it_was_made_in_utc(
        trained_model: LoadedModel) -> None:
    assert trained_model.card["package_version"] == __version__
    assert trained_model.card["git_commit"] == git_commit()
    data = trained_model.card["data"]
    assert (data["rows"], data["train_rows"], data["holdout_rows"]) == (1000, 800, 200)
    assert trained_model.card["environment"]["python"] == platform.python_version()
    # Every family tried has its cross-validated ROC AUC and its search on the card.
    families = set(trained_model.card["cv_roc_auc"])
    assert trained_model.card["model_family"] in families
    assert all(0.5 < value < 1 for value in trained_model.card["cv_roc_auc"].values())
    assert trained_model.card["cv_search"]
    created = datetime.fromisoformat(trained_model.card["created_at"])
    assert created.utcoffset() == timedelta(0)
