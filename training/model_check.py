"""Whether a loaded model can serve: its card is complete and it scores its reference rows.

A verified sha256 only proves the bytes are the ones the card describes; it says nothing
about the card itself. A card without a threshold, with a positive label the pipeline does
not know, or without a reference for every input (drift and explanations read it) would
turn every prediction into a 500. `promote` and the service's model watcher both run
`check_servable` before a version can serve.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from training.artifact import LoadedModel, ModelIntegrityError
from training.schema import FEATURES, Column, feature_names


class CardError(ModelIntegrityError):
    """A model card that cannot drive serving, naming the faulty entry."""


def check_servable(model: LoadedModel) -> None:
    """Raise CardError unless the card is complete and the reference rows score in [0, 1]."""
    card = model.card
    _check_threshold(card.get("threshold"))
    classes = [str(label) for label in getattr(model.pipeline, "classes_", [])]
    if str(card.get("positive_label")) not in classes:
        raise CardError(f"positive_label {card.get('positive_label')!r} is not one of the "
                        f"model's classes {classes}")
    reference = card.get("reference")
    if not isinstance(reference, dict):
        raise CardError("the card has no 'reference' profile of the inputs")
    for column in FEATURES:
        _check_reference_entry(column, reference.get(column.name))
    rows = reference_rows(reference)
    try:
        probabilities = np.asarray(model.predict_proba_bad(
            pd.DataFrame(rows, columns=feature_names())), dtype=float)
    except Exception as error:  # noqa: BLE001 - any failure to score refuses the model
        raise CardError(f"the model cannot score its reference rows: {error!r}") from error
    if probabilities.shape != (len(rows),) or not np.all(
            (probabilities >= 0.0) & (probabilities <= 1.0)):
        raise CardError(f"the model scored its reference rows as {probabilities!r}, "
                        "not one probability in [0, 1] per row")


def reference_rows(reference: dict[str, Any]) -> list[dict[str, Any]]:
    """Three applicants from the reference: typical, lowest and highest numeric values."""
    rows = []
    for pick in (lambda entry: entry["median"], lambda entry: entry["bin_edges"][0],
                 lambda entry: entry["bin_edges"][-1]):
        rows.append({column.name: (int(pick(reference[column.name])) if column.is_numeric
                                   else reference[column.name]["mode"])
                     for column in FEATURES})
    return rows


def _check_threshold(threshold: Any) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, Real) \
            or not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
        raise CardError(f"threshold {threshold!r} is not a probability in [0, 1]")


def _check_reference_entry(column: Column, entry: Any) -> None:
    """The parts of one input's reference that drift and explanations read."""
    where = f"reference[{column.name!r}]"
    if not isinstance(entry, dict):
        raise CardError(f"{where} is missing")
    fractions = entry.get("fractions")
    if column.is_numeric:
        edges = entry.get("bin_edges")
        if not _finite_number(entry.get("median")):
            raise CardError(f"{where}['median'] is not a number")
        if not (isinstance(edges, list) and len(edges) >= 2
                and all(_finite_number(edge) for edge in edges)
                and edges == sorted(edges)):
            raise CardError(f"{where}['bin_edges'] is not an ascending list of numbers")
        if not (isinstance(fractions, list) and len(fractions) == len(edges) - 1):
            raise CardError(f"{where}['fractions'] needs one share per bin")
    else:
        if entry.get("mode") not in column.categories:
            raise CardError(f"{where}['mode'] is not one of {list(column.categories)}")
        if not (isinstance(fractions, dict) and set(fractions) == set(column.categories)):
            raise CardError(f"{where}['fractions'] needs one share per category")


def _finite_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
