"""Drift of model inputs against the training reference stored in the model card.

Population Stability Index (PSI) for every input, on the reference's decile bins for
numbers and on the schema's categories for labels; a chi-square test adds a p-value for
categories. PSI is the industry's credit-scoring convention: under 0.1 stable, 0.1-0.25
moderate shift, over 0.25 a shift that warrants retraining.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chisquare

from training.schema import FEATURES

EPSILON = 1e-4  # floor for empty bins, so that PSI stays finite


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one input: its PSI, a p-value where a test applies, and the verdict."""

    feature: str
    psi: float
    p_value: float | None
    drifted: bool
    detail: str


@dataclass(frozen=True)
class DriftReport:
    """Drift of every input of one sample against the reference."""

    rows: int
    threshold: float
    features: list[FeatureDrift]

    @property
    def drifted(self) -> list[str]:
        """Names of the inputs whose PSI reached the threshold."""
        return [f.feature for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"rows": self.rows, "threshold": self.threshold, "drifted": self.drifted,
                "features": [asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> "DriftReport":
        """Rebuild a report from its JSON-ready form (the inverse of `to_dict`)."""
        return cls(rows=payload["rows"], threshold=payload["threshold"],
                   features=[FeatureDrift(**item) for item in payload["features"]])

    def to_text(self) -> str:
        """One line per input, most drifted first."""
        lines = [f"drift of {self.rows} rows against the training reference "
                 f"(PSI threshold {self.threshold}): "
                 + (f"DRIFT in {', '.join(self.drifted)}" if self.drifted else "stable")]
        for item in sorted(self.features, key=lambda f: f.psi, reverse=True):
            lines.append(f"  [{'DRIFT' if item.drifted else 'ok'}] {item.feature}: "
                         f"PSI {item.psi:.3f}; {item.detail}")
        return "\n".join(lines)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population Stability Index between two distributions over the same bins."""
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return float(total)


def numeric_fractions(values: pd.Series | np.ndarray,
                      bin_edges: Sequence[float]) -> list[float]:
    """Share of values in each reference bin; the outer bins are open-ended."""
    numbers = np.asarray(pd.to_numeric(values), dtype=float)
    inner = np.asarray(bin_edges, dtype=float)[1:-1]
    # A value's bin is the number of inner edges at or below it: np.histogram's half-open
    # bins with unbounded outer ones, without its sort of every value (the drift thread
    # holds the GIL while it counts).
    counts = np.bincount(np.searchsorted(inner, numbers, side="right"),
                         minlength=len(inner) + 1)
    return list(counts / max(len(numbers), 1))


def feature_drift(values: pd.Series, reference: dict[str, Any], name: str,
                  threshold: float) -> FeatureDrift:
    """Drift of one input's values against its reference entry."""
    if reference["kind"] == "numeric":
        actual = numeric_fractions(values, reference["bin_edges"])
        value = psi(reference["fractions"], actual)
        detail = f"median {float(pd.to_numeric(values).median()):g} " \
                 f"(reference {reference['median']:g})"
        return FeatureDrift(name, value, None, value >= threshold, detail)
    categories = list(reference["fractions"])
    # One counting pass; shares, unseen labels and the chi-square counts all come from it.
    tally = values.value_counts()
    shares = tally / tally.sum()
    unseen = sorted(set(tally.index) - set(categories))
    expected = [reference["fractions"][c] for c in categories]
    actual = [float(shares.get(c, 0.0)) for c in categories]
    value = psi(expected, actual)
    counts = np.array([int(tally.get(c, 0)) for c in categories], dtype=float)
    p_value = None
    if counts.sum() > 0:
        expected_counts = np.maximum(np.array(expected), EPSILON)
        expected_counts = expected_counts / expected_counts.sum() * counts.sum()
        p_value = float(chisquare(counts, expected_counts).pvalue)
    most = max(categories, key=lambda c: float(shares.get(c, 0.0)) - reference["fractions"][c])
    detail = (f"largest gain '{most}' {float(shares.get(most, 0.0)):.0%} "
              f"(reference {reference['fractions'][most]:.0%})")
    if unseen:
        detail += f"; categories unknown to the model: {unseen}"
    return FeatureDrift(name, value, p_value, value >= threshold or bool(unseen), detail)


def category_shares(values: Sequence[Any], categories: Sequence[str]) -> list[float]:
    """Share of `values` (missing ones left out) in each category; unseen labels count in
    the total, as in `feature_drift`."""
    tally = Counter(values)
    total = sum(tally.values())
    return [tally.get(category, 0) / total for category in categories]


def window_psi(rows: Sequence[dict[str, Any]],
               reference: dict[str, dict[str, Any]]) -> dict[str, float]:
    """PSI of every model input over `rows` (applicant dicts): the numbers `drift_report`
    gives a DataFrame of them, without its tests and wording, in milliseconds rather than
    the hundreds a pandas pass costs. The service's drift window calls it."""
    result = {}
    for column in FEATURES:
        entry = reference.get(column.name)
        if entry is None:
            continue
        values = _present(rows, column.name)
        if not values:
            continue
        if entry["kind"] == "numeric":
            actual = numeric_fractions(np.asarray(values), entry["bin_edges"])
            result[column.name] = psi(entry["fractions"], actual)
        else:
            categories = list(entry["fractions"])
            result[column.name] = psi([entry["fractions"][c] for c in categories],
                                      category_shares(values, categories))
    return result


def _present(rows: Sequence[dict[str, Any]], name: str) -> list[Any]:
    """The values of `name` in `rows`, missing and null ones left out (one C loop when every
    row has it, as the service's validated rows do)."""
    try:
        values = list(map(itemgetter(name), rows))
    except KeyError:
        values = [row[name] for row in rows if name in row]
    return [value for value in values if value is not None] if None in values else values


def drift_report(frame: pd.DataFrame, reference: dict[str, dict[str, Any]],
                 threshold: float) -> DriftReport:
    """Drift of every model input present in `frame` against the card's reference."""
    features = [feature_drift(frame[column.name].dropna(), reference[column.name],
                              column.name, threshold)
                for column in FEATURES if column.name in frame.columns
                and column.name in reference and frame[column.name].notna().any()]
    return DriftReport(rows=len(frame), threshold=threshold, features=features)
