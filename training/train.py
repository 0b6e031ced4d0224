"""Model selection, threshold choice and the trained artifact with its card.

Everything that is fitted or chosen (family, hyper-parameters, decision threshold) is
decided by cross-validation on the training part; the holdout is touched once, at the end,
to report metrics.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from training import __version__
from training.artifact import save_artifact
from training.config import TrainingConfig
from training.data import file_sha256, load_split
from training.evaluate import evaluate_probabilities
from training.features import build_preprocessor
from training.report_names import PLOTS_DIR
from training.plots import plot_data, write_plots
from training.schema import FEATURES, POSITIVE_LABEL, TARGET, feature_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """One model family's search: its estimator and parameter grid."""

    family: str
    estimator: Any
    grid: dict[str, list[Any]]


@dataclass(frozen=True)
class TrainedModel:
    """The selected, refitted pipeline and how it was chosen."""

    pipeline: Pipeline
    family: str
    hyperparameters: dict[str, Any]
    threshold: float
    cv_roc_auc: dict[str, float]  # best cross-validated ROC AUC of every family tried
    cv_search: dict[str, dict[str, Any]]  # every family's search: grid, best point, folds


def candidates(config: TrainingConfig) -> list[Candidate]:
    """The model families named in the config, each with its grid."""
    available = {
        "logistic_regression": Candidate(
            "logistic_regression",
            LogisticRegression(max_iter=2000, random_state=config.seed),
            {"estimator__C": list(config.logistic_c_grid)}),
        "gradient_boosting": Candidate(
            "gradient_boosting",
            HistGradientBoostingClassifier(
                max_iter=config.boosting_max_iter, early_stopping=False,
                random_state=config.seed, monotonic_cst=monotonic_constraints()),
            {"estimator__learning_rate": list(config.boosting_learning_rates),
             "estimator__max_leaf_nodes": list(config.boosting_max_leaf_nodes)}),
    }
    unknown = [name for name in config.model_families if name not in available]
    if unknown:
        raise ValueError(f"unknown model families {unknown}; known: {sorted(available)}")
    return [available[name] for name in config.model_families]


def monotonic_constraints() -> list[int]:
    """Risk may only rise with credit duration and amount (domain knowledge: a longer,
    larger credit is never safer all else equal); other inputs are unconstrained."""
    rising = {"duration", "amount"}
    return [1 if name in rising else 0 for name in encoded_feature_names()]


def models_bad_risk(labels: np.ndarray) -> bool:
    """Whether a binary estimator fitted on `labels` models the bad risk: it models the last
    class in sorted order, True (bad) for the boolean target but "good" for the labels."""
    return sorted(set(labels))[-1] in (True, POSITIVE_LABEL)


def encoded_feature_names() -> list[str]:
    """Column names after preprocessing, in the order the estimator sees them."""
    return list(build_preprocessor().fit(reference_frame()).get_feature_names_out())


def reference_frame() -> pd.DataFrame:
    """A one-row frame with a valid value for every input, to fit encoders' shapes."""
    return pd.DataFrame([{c.name: (c.minimum if c.is_numeric else c.categories[0])
                          for c in FEATURES}])


def is_bad(frame: pd.DataFrame) -> np.ndarray:
    """Boolean target: True where the credit was a bad risk."""
    return (frame[TARGET] == POSITIVE_LABEL).to_numpy()


def choose_threshold(is_bad_true: np.ndarray, probability_bad: np.ndarray,
                     cost_bad_approved: float, cost_good_declined: float) -> float:
    """The probability cut with the lowest total misclassification cost (ties: higher cut)."""
    best_threshold, best_cost = 0.5, float("inf")
    for threshold in np.round(np.arange(0.05, 0.951, 0.01), 2):
        declined = probability_bad >= threshold
        cost = (cost_bad_approved * np.sum(~declined & is_bad_true)
                + cost_good_declined * np.sum(declined & ~is_bad_true))
        if cost <= best_cost:
            best_threshold, best_cost = float(threshold), float(cost)
    return best_threshold


def select_family(searches: dict[str, GridSearchCV], margin: float) -> str:
    """The first family (simplest, by config order) whose CV score is within `margin` of
    the best: a more complex model must earn its place by more than noise."""
    best_score = max(search.best_score_ for search in searches.values())
    return next(name for name, search in searches.items()
                if search.best_score_ >= best_score - margin)


def parameter_name(key: str) -> str:
    """A pipeline parameter's name below its step: `estimator__C` -> `C`,
    `estimator__base__C` -> `base__C`."""
    return key.split("__", 1)[1]


def search_summary(search: GridSearchCV, folds: int) -> dict[str, Any]:
    """One family's grid search: the grid, the best point and its ROC AUC on every fold."""
    best, results = search.best_index_, search.cv_results_
    return {"grid": {parameter_name(k): list(v) for k, v in search.param_grid.items()},
            "grid_points": len(results["params"]),
            "best_params": {parameter_name(k): v for k, v in search.best_params_.items()},
            "roc_auc_mean": float(results["mean_test_score"][best]),
            "roc_auc_std": float(results["std_test_score"][best]),
            "fold_roc_auc": [float(results[f"split{fold}_test_score"][best])
                             for fold in range(folds)]}


def train_model(train: pd.DataFrame, config: TrainingConfig) -> TrainedModel:
    """Pick family and hyper-parameters by CV ROC AUC, then the threshold out of fold."""
    folds = StratifiedKFold(n_splits=config.cv_folds, shuffle=True, random_state=config.seed)
    inputs, target = train[feature_names()], is_bad(train)
    searches: dict[str, GridSearchCV] = {}
    for candidate in candidates(config):
        pipeline = Pipeline([("preprocess", build_preprocessor()),
                             ("estimator", candidate.estimator)])
        search = GridSearchCV(pipeline, candidate.grid, scoring="roc_auc", cv=folds,
                              n_jobs=1, refit=True)
        search.fit(inputs, target)
        searches[candidate.family] = search
        logger.info("%s: best CV ROC AUC %.4f with %s", candidate.family, search.best_score_,
                    search.best_params_)
    family = select_family(searches, config.selection_margin)
    best = searches[family]
    out_of_fold = cross_val_predict(best.best_estimator_, inputs, target, cv=folds,
                                    method="predict_proba")[:, 1]
    threshold = choose_threshold(target, out_of_fold, config.cost_bad_approved,
                                 config.cost_good_declined)
    logger.info("selected %s; decision threshold %.2f (lowest cost out of fold)",
                family, threshold)
    # The target was fitted as booleans; refit on labels so predict_proba names the classes.
    pipeline = best.best_estimator_
    labels = train[TARGET].to_numpy()
    constraints = pipeline.named_steps["estimator"].get_params().get("monotonic_cst")
    if constraints is not None and not models_bad_risk(labels):
        # The constraints were set for P(bad); fitted on the labels, the estimator models
        # P(good), so a risk that rises is a modelled probability that falls.
        pipeline.set_params(estimator__monotonic_cst=[-sign for sign in constraints])
    pipeline.fit(inputs, labels)
    return TrainedModel(pipeline=pipeline, family=family,
                        hyperparameters={parameter_name(k): v
                                         for k, v in best.best_params_.items()},
                        threshold=threshold,
                        cv_roc_auc={name: float(s.best_score_) for name, s in searches.items()},
                        cv_search={name: search_summary(s, config.cv_folds)
                                   for name, s in searches.items()})


def reference_profile(train: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Distribution of every input in the training part: the baseline for drift and
    for explanations (median or most frequent value)."""
    profile: dict[str, dict[str, Any]] = {}
    for column in FEATURES:
        values = train[column.name]
        if column.is_numeric:
            edges = np.unique(np.quantile(values, np.linspace(0, 1, 11)))
            counts, _ = np.histogram(values, bins=edges)
            profile[column.name] = {"kind": "numeric", "median": float(values.median()),
                                    "bin_edges": [float(e) for e in edges],
                                    "fractions": [float(c) / len(values) for c in counts]}
        else:
            shares = values.value_counts(normalize=True)
            profile[column.name] = {
                "kind": "categorical", "mode": str(shares.idxmax()),
                "fractions": {c: float(shares.get(c, 0.0)) for c in column.categories}}
    return profile


def git_commit() -> str:
    """The commit being built: GIT_COMMIT (set by Jenkins and the image build) or git."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_model(data_path: Path, output_dir: Path, config: TrainingConfig,
                card_extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate, split, train and evaluate; save the artifact and return its card
    (`card_extras`: more fields for the card, such as the tracking run)."""
    frame, train, holdout = load_split(data_path, config)
    logger.info("training on %d rows, holding out %d", len(train), len(holdout))
    with threadpool_limits(limits=config.native_threads):
        trained = train_model(train, config)
    probabilities = trained.pipeline.predict_proba(holdout[feature_names()])[
        :, list(trained.pipeline.classes_).index(POSITIVE_LABEL)]
    evaluation = evaluate_probabilities(holdout, probabilities, trained.threshold, config)
    card = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
        "git_commit": git_commit(),
        "data": {"path": str(data_path), "sha256": file_sha256(data_path),
                 "rows": len(frame), "train_rows": len(train), "holdout_rows": len(holdout)},
        "environment": {"python": platform.python_version(),
                        "scikit_learn": sklearn.__version__},
        "model_family": trained.family,
        "hyperparameters": trained.hyperparameters,
        "cv_roc_auc": trained.cv_roc_auc,
        "cv_search": trained.cv_search,
        "threshold": trained.threshold,
        "positive_label": POSITIVE_LABEL,
        "features": feature_names(),
        "metrics": evaluation["overall"],
        "segment_metrics": evaluation["segments"],
        "reference": reference_profile(train),
        "config": config.as_dict(),
        **(card_extras or {}),
    }
    card = save_artifact(output_dir, trained.pipeline, card)
    write_plots(output_dir / PLOTS_DIR, plot_data(is_bad(holdout), probabilities,
                                                  trained.threshold, evaluation))
    logger.info("saved %s model to %s: holdout ROC AUC %.4f", trained.family, output_dir,
                card["metrics"]["roc_auc"])
    return card
