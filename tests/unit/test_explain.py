"""Explanations: the inputs that moved an applicant's risk, measured against the reference."""

from __future__ import annotations

from typing import Any

from tests.conftest import DATA_FILE
from training.artifact import LoadedModel
from training.data import load_dataset
from training.explain import top_factors
from training.schema import feature_names


def applicant(index: int) -> dict[str, Any]:
    """One real applicant's inputs, typed as the model expects."""
    return load_dataset(DATA_FILE).iloc[index][feature_names()].to_dict()


def test_factors_are_sorted_by_effect_and_carry_labels(trained_model: LoadedModel) -> None:
    factors = top_factors(trained_model, applicant(0), n=5)
    assert 1 <= len(factors) <= 5
    sizes = [abs(f["effect"]) for f in factors]
    assert sizes == sorted(sizes, reverse=True)
    assert all(f["label"] and f["feature"] in feature_names() for f in factors)


def test_a_long_credit_names_duration_as_raising_the_risk(trained_model: LoadedModel) -> None:
    row = applicant(0)
    row["duration"] = 72  # six years: far above the training median of 18 months
    factors = {f["feature"]: f for f in top_factors(trained_model, row, n=18)}
    assert factors["duration"]["effect"] > 0


def test_an_applicant_at_the_reference_has_no_factors(trained_model: LoadedModel) -> None:
    reference = trained_model.card["reference"]
    row = {name: (int(spec["median"]) if spec["kind"] == "numeric" else spec["mode"])
           for name, spec in reference.items()}
    assert top_factors(trained_model, row) == []
