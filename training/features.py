"""Preprocessing inside the model pipeline, built from the schema.

Categories come from the schema rather than from the training rows, so the encoding is the
same whatever labels a training snapshot happens to contain.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from training.schema import FEATURES, categorical_feature_names, numeric_feature_names


def build_preprocessor() -> ColumnTransformer:
    """Scale the numeric inputs and one-hot encode the categorical ones."""
    categorical = [c for c in FEATURES if not c.is_numeric]
    encoder = OneHotEncoder(categories=[list(c.categories) for c in categorical],
                            handle_unknown="error", sparse_output=False)
    return ColumnTransformer(
        [("numeric", StandardScaler(), numeric_feature_names()),
         ("categorical", encoder, categorical_feature_names())],
        remainder="drop",  # protected attributes and the label never reach the estimator
        verbose_feature_names_out=False,
    )
