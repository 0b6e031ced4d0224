"""The gradient-boosting family is built and trained with its monotone constraints: risk
never falls as the credit's duration or amount grows, whichever family wins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.config import TrainingConfig
from training.data import load_dataset, split
from training.schema import feature_names
from training.train import (candidates, encoded_feature_names, models_bad_risk,
                            monotonic_constraints, train_model)

# One small boosting model, so that the check costs seconds.
BOOSTING_ONLY = TrainingConfig(model_families=("gradient_boosting",), cv_folds=2,
                               boosting_max_iter=30, boosting_learning_rates=(0.3,),
                               boosting_max_leaf_nodes=(15,))


def test_the_boosting_candidate_carries_the_constraints() -> None:
    (candidate,) = candidates(BOOSTING_ONLY)
    constraints = candidate.estimator.get_params()["monotonic_cst"]
    assert list(constraints) == monotonic_constraints()
    rising = {name for name, sign in zip(encoded_feature_names(), constraints) if sign == 1}
    assert rising == {"duration", "amount"}


@pytest.mark.parametrize("feature", ["duration", "amount"])
def test_a_trained_boosting_model_never_lowers_the_risk_of_a_longer_or_larger_credit(
        data_file: Path, feature: str) -> None:
    train, holdout = split(load_dataset(data_file), BOOSTING_ONLY)
    trained = train_model(train, BOOSTING_ONLY)
    assert trained.family == "gradient_boosting"
    inputs = holdout[feature_names()]
    raised = inputs.copy()
    raised[feature] = raised[feature] * 2
    bad = list(trained.pipeline.classes_).index("bad")
    before = trained.pipeline.predict_proba(inputs)[:, bad]
    after = trained.pipeline.predict_proba(raised)[:, bad]
    assert np.all(after >= before - 1e-12)
    # Without constraints a tree ensemble on 800 rows does lower some of these risks; the
    # check above would then fail, so it is not vacuous:
    assert np.any(after > before + 1e-6)


@pytest.mark.parametrize(("labels", "bad_is_modelled"), [
    ([False, True, True], True),  # the boolean target: True (bad) sorts last
    (["good", "bad", "bad"], False),  # the labels: "good" sorts last
    (["bad", "good"], False),
])
def test_which_class_a_binary_estimator_models_decides_the_constraints_sign(
        labels: list[object], bad_is_modelled: bool) -> None:
    assert models_bad_risk(np.array(labels)) is bad_is_modelled
