"""Training: threshold, family selection, constraints, reference profile, and what building
a model puts on its card and in the log."""

from __future__ import annotations

import logging
import platform
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict, cross_val_score
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_info

from tests.conftest import DATA_FILE
from training import __version__, train
from training.artifact import load_artifact
from training.config import TrainingConfig
from training.data import load_split
from training.evaluate import evaluate_probabilities
from training.features import build_preprocessor
from training.schema import FEATURES, feature_names
from training.train import (build_model, candidates, choose_threshold, encoded_feature_names,
                            git_commit, is_bad, monotonic_constraints, parameter_name,
                            reference_profile, search_summary, select_family)


def test_threshold_minimises_cost_with_the_cost_matrix() -> None:
    is_bad = np.array([True, True, False, False, False, False])
    probability = np.array([0.9, 0.3, 0.35, 0.2, 0.1, 0.05])
    # Catching the bad credit at 0.3 costs one declined good one (0.35): worth it at 5:1.
    assert choose_threshold(is_bad, probability, 5.0, 1.0) == 0.3
    # At equal costs every cut from 0.21 to 0.90 costs 1; a tie goes to the highest cut,
    # which declines the fewest applicants.
    assert choose_threshold(is_bad, probability, 1.0, 1.0) == 0.9
    # Nothing bad: every cut above the top score costs nothing; the highest cut is 0.95.
    assert choose_threshold(np.array([False, False]), np.array([0.2, 0.4]), 5.0, 1.0) == 0.95


def test_a_complex_family_must_beat_the_simple_one_by_the_margin() -> None:
    searches = {"logistic_regression": SimpleNamespace(best_score_=0.770),
                "gradient_boosting": SimpleNamespace(best_score_=0.774)}
    assert select_family(searches, margin=0.005) == "logistic_regression"
    assert select_family(searches, margin=0.001) == "gradient_boosting"
    # Exactly the margin behind (binary-exact numbers) is within it: the simple one stays.
    searches = {"logistic_regression": SimpleNamespace(best_score_=0.5),
                "gradient_boosting": SimpleNamespace(best_score_=0.75)}
    assert select_family(searches, margin=0.25) == "logistic_regression"


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


def small_config(tmp_path: Path, **changes: Any) -> TrainingConfig:
    """Both families, one grid point each, few trees: a model in seconds, for the tests of
    what building does."""
    return TrainingConfig(data_path=DATA_FILE, registry_dir=tmp_path / "registry",
                          reports_dir=tmp_path / "reports", tracking="off",
                          logistic_c_grid=(1.0,), boosting_learning_rates=(0.1,),
                          boosting_max_leaf_nodes=(7,), boosting_max_iter=30, cv_folds=3,
                          **changes)


def test_the_card_names_the_package_commit_and_when_it_was_made_in_utc(tmp_path: Path) -> None:
    # Built here, not read from the session's model: mutmut runs a mutant of build_model only
    # against the tests that called it, and a session fixture is made in another test.
    config = small_config(tmp_path)
    card = build_model(DATA_FILE, tmp_path / "artifact", config)
    assert card["package_version"] == __version__
    assert card["git_commit"] == git_commit()
    data = card["data"]
    assert (data["rows"], data["train_rows"], data["holdout_rows"]) == (1000, 800, 200)
    assert card["environment"]["python"] == platform.python_version()
    # Every family tried has its cross-validated ROC AUC and its search on the card.
    assert set(card["cv_roc_auc"]) == set(card["cv_search"]) == {
        "logistic_regression", "gradient_boosting"}
    assert card["model_family"] in card["cv_roc_auc"]
    assert all(0.5 < value < 1 for value in card["cv_roc_auc"].values())
    # Each family's fold scores, recomputed with estimators built here as the config says:
    # its fold count shuffled with its seed; boosting for max_iter rounds, no early stop.
    folds = StratifiedKFold(n_splits=config.cv_folds, shuffle=True, random_state=config.seed)
    train_rows = load_split(DATA_FILE, config)[1]
    inputs, target = train_rows[feature_names()], is_bad(train_rows)
    specified = {
        "logistic_regression": LogisticRegression(C=config.logistic_c_grid[0], max_iter=2000),
        "gradient_boosting": HistGradientBoostingClassifier(
            learning_rate=config.boosting_learning_rates[0],
            max_leaf_nodes=config.boosting_max_leaf_nodes[0],
            max_iter=config.boosting_max_iter, early_stopping=False,
            monotonic_cst=monotonic_constraints())}
    pipelines = {family: Pipeline([("preprocess", build_preprocessor()),
                                   ("estimator", estimator)])
                 for family, estimator in specified.items()}
    for family, pipeline in pipelines.items():
        scores = cross_val_score(pipeline, inputs, target, scoring="roc_auc", cv=folds)
        assert card["cv_search"][family]["fold_roc_auc"] == pytest.approx(list(scores)), family
    # The threshold is the cheapest cut of the chosen family's out-of-fold predictions over
    # the same folds.
    out_of_fold = cross_val_predict(pipelines[card["model_family"]], inputs, target, cv=folds,
                                    method="predict_proba")[:, 1]
    assert card["threshold"] == choose_threshold(target, out_of_fold, config.cost_bad_approved,
                                                 config.cost_good_declined)
    created = datetime.fromisoformat(card["created_at"])
    assert created.utcoffset() == timedelta(0)


def test_a_parameter_keeps_its_path_below_the_pipeline_step() -> None:
    assert parameter_name("estimator__C") == "C"
    assert parameter_name("estimator__base__C") == "base__C"


def test_a_search_summary_names_the_grid_the_best_point_and_every_fold() -> None:
    search = SimpleNamespace(
        param_grid={"estimator__base__C": (0.1, 1.0)},
        best_params_={"estimator__base__C": 1.0}, best_index_=1,
        cv_results_={"params": [{}, {}], "mean_test_score": [0.6, 0.8],
                     "std_test_score": [0.05, 0.02], "split0_test_score": [0.55, 0.78],
                     "split1_test_score": [0.65, 0.82]})
    assert search_summary(search, folds=2) == {  # type: ignore[arg-type]  # its fitted fields
        "grid": {"base__C": [0.1, 1.0]}, "grid_points": 2, "best_params": {"base__C": 1.0},
        "roc_auc_mean": 0.8, "roc_auc_std": 0.02, "fold_roc_auc": [0.78, 0.82]}


def test_building_logs_the_split_and_cards_the_holdout_metrics_per_segment(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config, output = small_config(tmp_path), tmp_path / "artifact"
    with caplog.at_level(logging.INFO, logger=train.__name__):
        card = build_model(DATA_FILE, output, config)
    assert "training on 800 rows, holding out 200" in caplog.messages
    assert (f"selected {card['model_family']}; decision threshold {card['threshold']:.2f} "
            "(lowest cost out of fold)") in caplog.messages
    for family, search in card["cv_search"].items():
        best = {f"estimator__{name}": value for name, value in search["best_params"].items()}
        assert (f"{family}: best CV ROC AUC {card['cv_roc_auc'][family]:.4f} "
                f"with {best}") in caplog.messages
    assert (f"saved {card['model_family']} model to {output}: "
            f"holdout ROC AUC {card['metrics']['roc_auc']:.4f}") in caplog.messages
    model, holdout = load_artifact(output), load_split(DATA_FILE, config)[2]
    recomputed = evaluate_probabilities(holdout, model.predict_proba_bad(holdout),
                                        model.threshold, config)
    assert card["segment_metrics"] == recomputed["segments"]
    assert set(card["segment_metrics"]) == {"age_band", "personal_status_sex", "foreign_worker"}


class TrainingReached(Exception):
    """Raised by the stand-in for train_model: building got as far as training."""


def test_training_runs_with_the_configured_native_thread_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Three threads: neither this machine's default (one per core) nor a mutation run's
    # OMP_NUM_THREADS=1, so only the configured limit explains it.
    seen: list[int] = []

    def record_threads(_train: Any, _config: TrainingConfig) -> None:
        seen.extend(pool["num_threads"] for pool in threadpool_info())
        raise TrainingReached

    monkeypatch.setattr(train, "train_model", record_threads)
    with pytest.raises(TrainingReached):
        build_model(DATA_FILE, tmp_path / "artifact", small_config(tmp_path, native_threads=3))
    assert seen and set(seen) == {3}
