"""Why a model scored an applicant as it did: the inputs that moved the risk most.

Model-agnostic: each input in turn is set to the training reference (median or most
frequent value, from the model card) and the change in predicted risk is that input's
effect. One batched `predict_proba` call scores every variant.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from training.artifact import LoadedModel
from training.schema import FEATURES, feature_names


def top_factors(model: LoadedModel, row: dict[str, Any], n: int = 3) -> list[dict[str, Any]]:
    """The `n` inputs whose value moves the probability of bad risk most, largest first."""
    reference = model.card["reference"]
    variants = [dict(row)]
    for column in FEATURES:
        baseline = reference[column.name]
        variant = dict(row)
        variant[column.name] = (int(baseline["median"]) if column.is_numeric
                                else baseline["mode"])
        variants.append(variant)
    probabilities = model.predict_proba_bad(pd.DataFrame(variants, columns=feature_names()))
    actual = float(probabilities[0])
    factors = [
        {"feature": column.name, "label": column.label, "value": row[column.name],
         "effect": round(actual - float(probability), 4)}
        for column, probability in zip(FEATURES, probabilities[1:])
    ]
    factors.sort(key=lambda factor: abs(factor["effect"]), reverse=True)
    return [factor for factor in factors[:n] if factor["effect"] != 0.0]
