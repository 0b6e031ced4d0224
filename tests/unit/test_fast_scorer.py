"""The fast scorer answers what the Pipeline answers, or the Pipeline serves and says why."""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

import training.fast_scorer as fast_scorer
from training.artifact import LoadedModel, load_artifact, with_fast_scorer
from training.config import TrainingConfig
from training.data import load_split
from training.fast_scorer import (PARITY_TOLERANCE, FastScorerRefused, build_fast_scorer,
                                  columns_of, logistic, parity_rows, random_applicants)
from training.features import build_preprocessor
from training.schema import FEATURES, TARGET, feature_names
from training.train import build_model

FAMILIES = ("logistic_regression", "gradient_boosting")


def tiny_config(tmp: Path, data_file: Path, family: str) -> TrainingConfig:
    """One family, one grid point, few trees: a real fitted model in a second or two."""
    return TrainingConfig(data_path=data_file, registry_dir=tmp / "registry",
                          reports_dir=tmp / "reports", model_families=(family,), cv_folds=2,
                          logistic_c_grid=(0.1,), boosting_learning_rates=(0.1,),
                          boosting_max_leaf_nodes=(15,), boosting_max_iter=40)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, data_file: Path
                ) -> dict[str, tuple[LoadedModel, pd.DataFrame]]:
    """A model of each family, loaded through load_artifact, with its holdout rows."""
    models = {}
    for family in FAMILIES:
        tmp = tmp_path_factory.mktemp(family)
        config = tiny_config(tmp, data_file, family)
        build_model(data_file, tmp / "artifact", config)
        _, _, holdout = load_split(data_file, config)
        models[family] = load_artifact(tmp / "artifact"), holdout
    return models


@pytest.fixture(params=FAMILIES)
def tiny_model(request: pytest.FixtureRequest,
               tiny_models: dict[str, tuple[LoadedModel, pd.DataFrame]]
               ) -> tuple[LoadedModel, pd.DataFrame]:
    """Each family's tiny model in turn."""
    return tiny_models[request.param]


def as_applicants(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a data frame as the API's validated applicant dicts (Python ints and str)."""
    return [{name: (int(value) if isinstance(value, (int, np.integer)) else str(value))
             for name, value in record.items()}
            for record in frame[feature_names()].to_dict(orient="records")]


def pipeline_answer(model: LoadedModel, rows: list[dict[str, Any]]) -> np.ndarray:
    return model.predict_proba_bad(pd.DataFrame(rows, columns=feature_names()))


def test_each_family_gets_its_own_fast_scorer(tiny_model: tuple[LoadedModel, pd.DataFrame]
                                              ) -> None:
    model, _ = tiny_model
    assert model.scoring_path == "fast", model.fast_scorer_refusal
    assert model.fast_scorer is not None
    assert model.fast_scorer.family == model.card["model_family"]


@pytest.mark.parametrize("rows_of", ["holdout", "reference", "random"])
def test_fast_scorer_equals_the_pipeline_within_1e_9(
        tiny_model: tuple[LoadedModel, pd.DataFrame], rows_of: str) -> None:
    model, holdout = tiny_model
    rows = {"holdout": lambda: as_applicants(holdout),
            "reference": lambda: parity_rows(model.card, random_rows=0),
            "random": lambda: random_applicants(1000, seed=7)}[rows_of]()
    fast = model.predict_proba_bad_rows(rows)
    assert fast.shape == (len(rows),)
    np.testing.assert_allclose(fast, pipeline_answer(model, rows), rtol=0,
                               atol=PARITY_TOLERANCE)


def test_fast_scorer_scores_one_row_as_it_scores_it_in_a_batch(
        tiny_model: tuple[LoadedModel, pd.DataFrame]) -> None:
    model, _ = tiny_model
    rows = random_applicants(20, seed=3)
    one_by_one = np.array([model.predict_proba_bad_rows([row])[0] for row in rows])
    np.testing.assert_allclose(one_by_one, pipeline_answer(model, rows), rtol=0,
                               atol=PARITY_TOLERANCE)


def test_one_logistic_regression_row_is_scored_without_the_encoder_and_trees_with_it(
        tiny_models: dict[str, tuple[LoadedModel, pd.DataFrame]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    linear = tiny_models["logistic_regression"][0].fast_scorer
    trees = tiny_models["gradient_boosting"][0].fast_scorer
    assert linear is not None and trees is not None
    assert linear.one_row is not None and trees.one_row is None
    rows = random_applicants(2, seed=13)
    batch = linear.predict_proba_bad(rows)

    def no_encoder(*args: Any) -> np.ndarray:
        raise AssertionError("the encoder was used")

    monkeypatch.setattr(fast_scorer.RowEncoder, "encode", no_encoder)
    for row, expected in zip(rows, batch):
        np.testing.assert_allclose(linear.predict_proba_bad([row]), [expected], rtol=0,
                                   atol=1e-12)
        # The other class's labelling answers the complement on this path too.
        flipped = dataclasses.replace(linear, positive_is_second=not linear.positive_is_second)
        np.testing.assert_allclose(flipped.predict_proba_bad([row]), [1 - expected], rtol=0,
                                   atol=1e-12)
    for scorer, scored in ((linear, rows), (trees, rows[:1])):
        with pytest.raises(AssertionError, match="the encoder was used"):
            scorer.predict_proba_bad(scored)


def test_a_one_row_path_that_disagrees_is_refused_though_batches_agree(
        tiny_models: dict[str, tuple[LoadedModel, pd.DataFrame]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = tiny_models["logistic_regression"]
    honest = fast_scorer.LinearTerms.probability
    monkeypatch.setattr(fast_scorer.LinearTerms, "probability",
                        lambda self, row: honest(self, row) + 1e-6)
    served = with_fast_scorer(LoadedModel(model.pipeline, model.card))
    assert served.scoring_path == "pipeline"
    assert "differs from the Pipeline by 1e-06" in served.fast_scorer_refusal


def test_the_logistic_of_one_float_is_scipys_expit_and_never_overflows() -> None:
    raw = np.concatenate([np.linspace(-40, 40, 801), [-1000.0, -745.0, 745.0, 1000.0]])
    np.testing.assert_allclose([logistic(value) for value in raw.tolist()], expit(raw),
                               rtol=1e-14, atol=1e-300)  # exp(-745): a denormal or 0
    assert logistic(0.0) == 0.5
    assert logistic(1000.0) == 1.0 and logistic(-1000.0) == 0.0


def test_the_columns_a_batch_was_validated_into_encode_to_the_same_bits(
        tiny_model: tuple[LoadedModel, pd.DataFrame]) -> None:
    model, _ = tiny_model
    assert model.fast_scorer is not None
    encoder = model.fast_scorer.encoder
    rows = random_applicants(50, seed=5)
    from_rows = encoder.encode(rows)
    columns = columns_of(rows, encoder.input_names)
    np.testing.assert_array_equal(encoder.encode(rows, columns), from_rows)
    np.testing.assert_array_equal(model.predict_proba_bad_rows(rows, columns),
                                  model.predict_proba_bad_rows(rows))
    # Columns lacking a field the encoder reads are not trusted: the rows are read again.
    partial = {name: values for name, values in columns.items()
               if name != encoder.input_names[-1]}
    np.testing.assert_array_equal(encoder.encode(rows, partial), from_rows)


def test_reference_rows_cover_every_category_and_bound_of_every_input() -> None:
    rows = parity_rows({"reference": {}}, random_rows=0)
    for column in FEATURES:
        seen = {row[column.name] for row in rows}
        expected = {column.minimum, column.maximum} if column.is_numeric \
            else set(column.categories)
        assert expected <= seen, column.name


def test_random_applicants_are_valid_and_reproducible() -> None:
    rows = random_applicants(300, seed=11)
    assert rows == random_applicants(300, seed=11) and rows != random_applicants(300, seed=12)
    for row in rows:
        assert set(row) == set(feature_names())
        for column in FEATURES:
            value = row[column.name]
            assert (column.minimum <= value <= column.maximum if column.is_numeric
                    else value in column.categories)


def serve_with_raw_scores_shifted(model: LoadedModel, monkeypatch: pytest.MonkeyPatch,
                                  shift: float) -> LoadedModel:
    """Load `model` again with a fast scorer whose log-odds are off by `shift`."""
    honest = build_fast_scorer(model.pipeline, model.card["positive_label"])
    head = honest.head
    shifted = (dataclasses.replace(head, intercept=head.intercept + shift)
               if isinstance(head, fast_scorer.LinearHead)
               else dataclasses.replace(head, baseline=head.baseline + shift))
    monkeypatch.setattr(fast_scorer, "build_fast_scorer",
                        lambda *args: dataclasses.replace(honest, head=shifted))
    return with_fast_scorer(LoadedModel(model.pipeline, model.card))


def test_a_scorer_that_disagrees_is_refused_and_the_pipeline_serves(
        tiny_model: tuple[LoadedModel, pd.DataFrame], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    model, _ = tiny_model
    # Log-odds off by 1e-6 move probabilities by up to 2.5e-7: beyond the tolerance.
    with caplog.at_level(logging.WARNING, logger="training.artifact"):
        served = serve_with_raw_scores_shifted(model, monkeypatch, 1e-6)
    assert served.scoring_path == "pipeline" and served.fast_scorer is None
    assert "differs from the Pipeline" in served.fast_scorer_refusal
    assert "scoring with the scikit-learn Pipeline" in caplog.text
    rows = random_applicants(50, seed=5)
    np.testing.assert_array_equal(served.predict_proba_bad_rows(rows),
                                  pipeline_answer(model, rows))


def test_a_scorer_within_the_tolerance_serves(tiny_model: tuple[LoadedModel, pd.DataFrame],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # 1e-12 on the log-odds moves a probability by at most 2.5e-13: inside 1e-9.
    served = serve_with_raw_scores_shifted(tiny_model[0], monkeypatch, 1e-12)
    assert served.scoring_path == "fast"


def test_an_estimator_without_a_fast_scorer_is_served_by_the_pipeline(
        tiny_model: tuple[LoadedModel, pd.DataFrame]) -> None:
    model, holdout = tiny_model
    pipeline = Pipeline([("preprocess", build_preprocessor()),
                         ("estimator", DecisionTreeClassifier(max_depth=3, random_state=0))])
    pipeline.fit(holdout[feature_names()], holdout[TARGET])
    served = with_fast_scorer(LoadedModel(pipeline, model.card))
    assert served.scoring_path == "pipeline"
    assert served.fast_scorer_refusal == "no fast scorer for DecisionTreeClassifier"
    rows = as_applicants(holdout)
    np.testing.assert_array_equal(served.predict_proba_bad_rows(rows),
                                  pipeline_answer(served, rows))


def test_trees_in_an_unexpected_layout_are_refused(
        tiny_models: dict[str, tuple[LoadedModel, pd.DataFrame]]) -> None:
    model, _ = tiny_models["gradient_boosting"]
    pipeline = copy.deepcopy(model.pipeline)
    estimator = pipeline.named_steps["estimator"]
    estimator._predictors = [[object()] for _ in estimator._predictors]
    with pytest.raises(FastScorerRefused, match="nodes lack the fields"):
        build_fast_scorer(pipeline, model.card["positive_label"])
    del estimator._predictors
    with pytest.raises(FastScorerRefused, match="does not expose its trees"):
        build_fast_scorer(pipeline, model.card["positive_label"])


def test_an_encoding_that_is_not_one_column_per_category_is_refused(
        tiny_model: tuple[LoadedModel, pd.DataFrame]) -> None:
    model, holdout = tiny_model
    pipeline = copy.deepcopy(model.pipeline)
    preprocess = pipeline.named_steps["preprocess"]
    preprocess.set_params(categorical__drop="first")
    preprocess.fit(holdout[feature_names()])
    with pytest.raises(FastScorerRefused, match="output columns"):
        build_fast_scorer(pipeline, model.card["positive_label"])
