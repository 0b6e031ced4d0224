"""A scorer derived at load time from the fitted Pipeline, for the request path.

The Pipeline stays the artifact and the truth. Per call it builds a pandas DataFrame and
runs the ColumnTransformer's and the estimators' input checks, a fixed cost of milliseconds
whatever the number of rows. The scorer here reads the same fitted parameters once
(scaler means and scales, one-hot categories, the logistic coefficients or the boosted
trees' nodes), encodes validated applicant dicts straight into the encoded numpy matrix and
applies the same arithmetic in numpy; a single applicant of a logistic regression is scored
in plain Python (`LinearTerms`), where numpy's set-up per call would cost more than the
arithmetic. It serves only after `derive_fast_scorer` has checked that it agrees with the
Pipeline within PARITY_TOLERANCE on a fixed set of rows (the card's reference row, every
category and bound of every input, seeded random applicants), scored as one batch and one
row at a time; any model it cannot read, or any disagreement, leaves the Pipeline serving,
with the reason.

The boosted trees are read from `HistGradientBoostingClassifier._predictors`, a private
attribute: its layout is checked field by field before use, and the parity check catches a
change of meaning, so a scikit-learn upgrade degrades to the Pipeline, never to wrong answers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from training.schema import FEATURES

PARITY_TOLERANCE = 1e-9
PARITY_SEED = 20_240_611
PARITY_RANDOM_ROWS = 256
FAST = "fast"
PIPELINE = "pipeline"
SCORING_PATHS = (FAST, PIPELINE)
# The fields of a fitted tree's node records that the tree evaluation reads.
NODE_FIELDS = ("value", "feature_idx", "num_threshold", "left", "right", "is_leaf",
               "is_categorical")

Row = Mapping[str, Any]
# The same rows field by field: name -> one value per row (see columns_of).
Columns = Mapping[str, Sequence[Any]]


def columns_of(rows: Sequence[Row], names: Sequence[str]) -> dict[str, list[Any]]:
    """The rows' values of each field in `names`, one list per field (a C loop each)."""
    return {name: list(map(itemgetter(name), rows)) for name in names}


class FastScorerRefused(Exception):
    """Why no fast scorer serves this model: unsupported, unreadable, or disagreeing."""


class Head(Protocol):
    """The estimator part: the raw score (log-odds of classes_[1]) of encoded rows."""

    def raw(self, encoded: np.ndarray) -> np.ndarray:
        """Raw scores, one per row of `encoded`."""


@dataclass(frozen=True)
class RowEncoder:
    """The fitted ColumnTransformer as arrays: scaled numeric columns, one-hot positions."""

    width: int
    numeric_names: tuple[str, ...]
    numeric_columns: np.ndarray  # output column of each numeric input
    mean: np.ndarray
    scale: np.ndarray
    one_hot: tuple[tuple[str, dict[str, int]], ...]  # input name, category -> output column
    input_names: tuple[str, ...] = field(init=False)  # the applicant fields the encoding reads

    def __post_init__(self) -> None:
        # The applicant fields the encoding reads, worked out once (read on every request).
        object.__setattr__(self, "input_names",
                           self.numeric_names + tuple(name for name, _ in self.one_hot))

    def encode(self, rows: Sequence[Row], columns: Columns | None = None) -> np.ndarray:
        """The encoded matrix the estimator sees, built from validated applicant dicts;
        `columns`, when the caller has read them already, holds the same rows field by field."""
        if columns is None or not columns.keys() >= set(self.input_names):
            columns = columns_of(rows, self.input_names)
        count = len(rows)
        encoded = np.zeros((count, self.width))
        if self.numeric_names:
            values = np.array([columns[name] for name in self.numeric_names],
                              dtype=np.float64)
            # StandardScaler.transform's own operations, in its order: the same bits.
            values -= self.mean[:, None]
            values /= self.scale[:, None]
            encoded[:, self.numeric_columns] = values.T
        if self.one_hot:
            # Input by input (C loops over the rows): the output column of each row's category;
            # the row numbers broadcast against that (inputs x rows) table.
            hot = np.array([list(map(lookup.__getitem__, columns[name]))
                            for name, lookup in self.one_hot], dtype=np.intp)
            encoded[np.arange(count), hot] = 1.0
        return encoded


@dataclass(frozen=True)
class LinearHead:
    """Logistic regression: coefficients and intercept."""

    weights: np.ndarray
    intercept: float

    def raw(self, encoded: np.ndarray) -> np.ndarray:
        """Log-odds of classes_[1]."""
        return encoded @ self.weights + self.intercept


@dataclass(frozen=True)
class TreeEnsembleHead:
    """Boosted trees flattened into one node table, walked for every tree at once.

    A leaf points at itself on both sides, so walking `depth` levels lands every row of
    every tree on its leaf without a per-level leaf test.
    """

    baseline: float
    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    depth: int

    def raw(self, encoded: np.ndarray) -> np.ndarray:
        """Baseline plus the leaf value of every tree."""
        count, width = encoded.shape
        flat = encoded.ravel()
        row_start = (np.arange(count, dtype=np.intp) * width)[:, None]
        node = np.broadcast_to(self.roots, (count, len(self.roots)))
        for _ in range(self.depth):
            value = np.take(flat, row_start + np.take(self.feature, node))
            # `<=` goes left, as in scikit-learn's predictor; inputs are never missing.
            node = np.where(value <= np.take(self.threshold, node),
                            np.take(self.left, node), np.take(self.right, node))
        return self.baseline + np.take(self.value, node).sum(axis=1)


def logistic(raw: float) -> float:
    """expit of one Python float, without overflow at either end."""
    if raw >= 0:
        return 1.0 / (1.0 + math.exp(-raw))
    odds = math.exp(raw)
    return odds / (1.0 + odds)


@dataclass(frozen=True)
class LinearTerms:
    """A logistic regression read per applicant field, to score ONE row in plain Python:
    for a single applicant numpy's per-call set-up costs four times the arithmetic."""

    intercept: float
    numeric: tuple[tuple[str, float, float, float], ...]  # field, mean, scale, weight
    one_hot: tuple[tuple[str, dict[str, float]], ...]  # field, category -> weight

    @classmethod
    def of(cls, encoder: RowEncoder, head: LinearHead) -> LinearTerms:
        """The encoder's scaling and categories paired with the head's coefficients."""
        weights = head.weights.tolist()
        return cls(intercept=head.intercept,
                   numeric=tuple(zip(encoder.numeric_names, encoder.mean.tolist(),
                                     encoder.scale.tolist(),
                                     (weights[column] for column in encoder.numeric_columns))),
                   one_hot=tuple((name, {category: weights[column]
                                         for category, column in lookup.items()})
                                 for name, lookup in encoder.one_hot))

    def probability(self, row: Row) -> float:
        """expit of the log-odds of classes_[1] for one applicant dict."""
        # The encoder's arithmetic per input (subtract the mean, divide by the scale), then
        # the weighted sum: the same terms as the matrix product, summed in another order.
        raw = 0.0
        for name, mean, scale, weight in self.numeric:
            raw += (row[name] - mean) / scale * weight
        for name, weight_of in self.one_hot:
            raw += weight_of[row[name]]
        return logistic(raw + self.intercept)


@dataclass(frozen=True)
class FastScorer:
    """Encoder plus head: probability of the positive label for validated applicants."""

    family: str
    encoder: RowEncoder
    head: Head
    positive_is_second: bool  # the positive label is classes_[1] (else classes_[0])
    one_row: LinearTerms | None = field(init=False)  # plain-Python path for a single row

    def __post_init__(self) -> None:
        # Worked out from the head, so a scorer rebuilt with another head never keeps a
        # stale one; trees keep numpy (walking them in Python costs more than it saves).
        object.__setattr__(self, "one_row", LinearTerms.of(self.encoder, self.head)
                           if isinstance(self.head, LinearHead) else None)

    def predict_proba_bad(self, rows: Sequence[Row],
                          columns: Columns | None = None) -> np.ndarray:
        """Probability of the positive label (bad risk) for each applicant dict (`columns`:
        the same rows field by field, when the caller has them)."""
        if self.one_row is not None and len(rows) == 1:
            one = self.one_row.probability(rows[0])
            return np.array([one if self.positive_is_second else 1 - one])
        second = expit(self.head.raw(self.encoder.encode(rows, columns)))
        # scikit-learn's binary predict_proba: [1 - p, p] with p = expit(raw).
        return second if self.positive_is_second else 1 - second


def build_fast_scorer(pipeline: Any, positive_label: str) -> FastScorer:
    """Read a fitted Pipeline's parameters into a FastScorer; FastScorerRefused if unable."""
    steps = getattr(pipeline, "named_steps", None)
    if steps is None or set(steps) != {"preprocess", "estimator"}:
        raise FastScorerRefused("the model is not a Pipeline of 'preprocess' and "
                                "'estimator' steps")
    estimator = steps["estimator"]
    classes = [str(label) for label in getattr(estimator, "classes_", [])]
    if len(classes) != 2 or positive_label not in classes:
        raise FastScorerRefused(f"expected two classes including {positive_label!r}, "
                                f"got {classes}")
    encoder = _encoder(steps["preprocess"])
    if getattr(estimator, "n_features_in_", None) != encoder.width:
        raise FastScorerRefused(f"the estimator expects {estimator.n_features_in_} inputs, "
                                f"the preprocessing yields {encoder.width}")
    if isinstance(estimator, LogisticRegression):
        head: Head = _linear_head(estimator)
        family = "logistic_regression"
    elif isinstance(estimator, HistGradientBoostingClassifier):
        head = _tree_head(estimator)
        family = "gradient_boosting"
    else:
        raise FastScorerRefused(f"no fast scorer for {type(estimator).__name__}")
    return FastScorer(family, encoder, head, positive_is_second=classes[1] == positive_label)


def _encoder(preprocessor: Any) -> RowEncoder:
    """The fitted ColumnTransformer's scaling and one-hot encoding, as arrays."""
    if not isinstance(preprocessor, ColumnTransformer):
        raise FastScorerRefused(f"preprocessing is a {type(preprocessor).__name__}, "
                                "not a ColumnTransformer")
    names: list[str] = []
    numeric: list[tuple[str, int, float, float]] = []
    one_hot: list[tuple[str, dict[str, int]]] = []
    for _, transformer, columns in preprocessor.transformers_:
        if transformer == "drop":
            continue
        if isinstance(transformer, StandardScaler):
            mean = transformer.mean_ if transformer.with_mean else np.zeros(len(columns))
            scale = transformer.scale_ if transformer.with_std else np.ones(len(columns))
            for index, name in enumerate(columns):
                numeric.append((name, len(names), float(mean[index]), float(scale[index])))
                names.append(name)
        elif isinstance(transformer, OneHotEncoder):
            for name, categories in zip(columns, transformer.categories_):
                one_hot.append((name, {str(c): len(names) + i
                                       for i, c in enumerate(categories)}))
                names.extend(f"{name}_{category}" for category in categories)
        else:
            raise FastScorerRefused(f"no fast encoding for {type(transformer).__name__}")
    # Dropped categories, infrequent-category grouping or another column order would all
    # change the output columns: the fitted transformer's own names must be these.
    fitted = [str(name) for name in preprocessor.get_feature_names_out()]
    if fitted != names:
        raise FastScorerRefused("the ColumnTransformer's output columns are not plain "
                                "scaled numbers followed by one column per category")
    return RowEncoder(width=len(names),
                      numeric_names=tuple(item[0] for item in numeric),
                      numeric_columns=np.array([item[1] for item in numeric], dtype=np.intp),
                      mean=np.array([item[2] for item in numeric]),
                      scale=np.array([item[3] for item in numeric]),
                      one_hot=tuple(one_hot))


def _linear_head(estimator: LogisticRegression) -> LinearHead:
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64)
    if coef.shape[0] != 1 or intercept.shape != (1,):
        raise FastScorerRefused(f"logistic regression with coefficients {coef.shape}")
    return LinearHead(weights=coef[0].copy(), intercept=float(intercept[0]))


def _tree_head(estimator: HistGradientBoostingClassifier) -> TreeEnsembleHead:
    """The boosted trees from the private `_predictors`, checked before use."""
    predictors = getattr(estimator, "_predictors", None)
    baseline = np.asarray(getattr(estimator, "_baseline_prediction", None), dtype=np.float64)
    if not isinstance(predictors, list) or not predictors or baseline.shape != (1, 1):
        raise FastScorerRefused("this scikit-learn's HistGradientBoostingClassifier does "
                                "not expose its trees as expected (_predictors)")
    tables = []
    for iteration in predictors:
        nodes = getattr(iteration[0], "nodes", None) if len(iteration) == 1 else None
        names = getattr(getattr(nodes, "dtype", None), "names", None) or ()
        if not all(field in names for field in NODE_FIELDS):
            raise FastScorerRefused("a fitted tree's nodes lack the fields "
                                    f"{list(NODE_FIELDS)}")
        if np.any(nodes["is_categorical"]):
            raise FastScorerRefused("the trees split on native categorical features")
        tables.append(nodes)
    starts = np.cumsum([0] + [len(table) for table in tables[:-1]]).astype(np.intp)
    nodes = np.concatenate(tables)
    own = np.arange(len(nodes), dtype=np.intp)
    offset = np.repeat(starts, [len(table) for table in tables])
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, own, nodes["left"].astype(np.intp) + offset)
    right = np.where(leaf, own, nodes["right"].astype(np.intp) + offset)
    return TreeEnsembleHead(
        baseline=float(baseline[0, 0]), roots=starts,
        feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        left=left, right=right, value=nodes["value"].astype(np.float64),
        depth=_depth(left, right, leaf, starts))


def _depth(left: np.ndarray, right: np.ndarray, leaf: np.ndarray, roots: np.ndarray) -> int:
    """The most splits on any root-to-leaf path."""
    frontier, depth = roots, 0
    while True:
        inner = frontier[~leaf[frontier]]
        if not len(inner):
            return depth
        depth += 1
        if depth > len(leaf):
            raise FastScorerRefused("the trees' node links form a cycle")
        frontier = np.unique(np.concatenate([left[inner], right[inner]]))


def parity_rows(card: Mapping[str, Any], random_rows: int = PARITY_RANDOM_ROWS,
                seed: int = PARITY_SEED) -> list[dict[str, Any]]:
    """Rows a fast scorer must agree on: the card's reference applicant, every category and
    bound of every input, and seeded random valid applicants."""
    reference = card.get("reference") or {}
    base = {column.name: _typical(column, reference.get(column.name, {}))
            for column in FEATURES}
    rows = [base]
    for column in FEATURES:
        values = ((column.minimum, column.maximum) if column.is_numeric
                  else column.categories)
        rows.extend({**base, column.name: value} for value in values)
    return rows + random_applicants(random_rows, seed)


def _typical(column: Any, profile: Mapping[str, Any]) -> Any:
    if column.is_numeric:
        median = profile.get("median", column.minimum)
        return min(max(int(round(median)), column.minimum), column.maximum)
    mode = profile.get("mode")
    return mode if mode in column.categories else column.categories[0]


def random_applicants(count: int, seed: int) -> list[dict[str, Any]]:
    """`count` valid applicants drawn uniformly from the schema's domain (seeded)."""
    generator = random.Random(seed)
    return [{column.name: (generator.randint(column.minimum, column.maximum)
                           if column.is_numeric else generator.choice(column.categories))
             for column in FEATURES} for _ in range(count)]


def largest_difference(scorer: FastScorer, pipeline: Any, positive_label: str,
                       rows: Sequence[Row]) -> float:
    """Largest absolute difference between the scorer's and the Pipeline's probabilities,
    scoring the rows as one batch and one at a time (a single row may take another path)."""
    frame = pd.DataFrame(list(rows), columns=[column.name for column in FEATURES])
    classes = [str(label) for label in pipeline.classes_]
    truth = pipeline.predict_proba(frame)[:, classes.index(positive_label)]
    one_by_one = np.concatenate([scorer.predict_proba_bad([row]) for row in rows])
    return float(max(np.max(np.abs(scorer.predict_proba_bad(rows) - truth)),
                     np.max(np.abs(one_by_one - truth))))


def derive_fast_scorer(pipeline: Any, card: Mapping[str, Any]) -> FastScorer:
    """Build the fast scorer and verify it against the Pipeline; FastScorerRefused if not."""
    positive_label = str(card["positive_label"])
    scorer = build_fast_scorer(pipeline, positive_label)
    try:
        difference = largest_difference(scorer, pipeline, positive_label, parity_rows(card))
    except (KeyError, ValueError, IndexError, TypeError) as error:
        raise FastScorerRefused(f"the fast scorer failed on the parity rows: {error}") \
            from None
    if not difference <= PARITY_TOLERANCE:  # also refuses NaN
        raise FastScorerRefused(f"the fast scorer differs from the Pipeline by "
                                f"{difference:.3g} (tolerance {PARITY_TOLERANCE:g})")
    return scorer
