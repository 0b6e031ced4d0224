"""Configuration: defaults in code, typed overrides from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import ConfigError, TrainingConfig


def test_defaults_need_no_environment() -> None:
    config = TrainingConfig.from_env({})
    assert config == TrainingConfig()
    assert config.model_families[0] == "logistic_regression"


def test_environment_overrides_are_typed() -> None:
    config = TrainingConfig.from_env({
        "TRAINING_SEED": "7", "TRAINING_FLOOR_ROC_AUC": "0.8",
        "TRAINING_MODEL_FAMILIES": "gradient_boosting, logistic_regression",
        "TRAINING_AGE_BAND_EDGES": "18,30,120", "MODEL_REGISTRY": "/srv/registry",
        "REPORTS_DIR": "/tmp/out"})
    assert config.seed == 7 and config.floor_roc_auc == 0.8
    assert config.model_families == ("gradient_boosting", "logistic_regression")
    assert config.age_band_edges == (18, 30, 120)
    assert config.registry_dir == Path("/srv/registry")
    assert config.reports_dir == Path("/tmp/out")


def test_explicit_overrides_win_over_the_environment() -> None:
    config = TrainingConfig.from_env({"TRAINING_SEED": "7"}, seed=11)
    assert config.seed == 11


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="TRAINING_CV_FOLDS='five'"):
        TrainingConfig.from_env({"TRAINING_CV_FOLDS": "five"})


def test_as_dict_is_json_ready() -> None:
    flat = TrainingConfig().as_dict()
    assert flat["data_path"] == "data/credit.csv"
    assert isinstance(flat["model_families"], list)
