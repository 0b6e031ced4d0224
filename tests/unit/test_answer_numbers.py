"""The numbers a request's rows are answered and counted with, whole arrays at a time, are
exactly the ones the one-value-at-a-time definitions give."""

from __future__ import annotations

import numpy as np
import pytest

import app.scoring
from app.metrics import VECTOR_BAND_ROWS, band_counts
from app.scoring import ANSWER_DECIMALS, VECTOR_ROUNDING_ROWS, rounded_probabilities


def _probabilities() -> np.ndarray:
    """Uniform values, the edges, and values on and one or two floats either side of a half
    in the last answered decimal (where the product by 10**6 can be off by one unit)."""
    rng = np.random.default_rng(20261205)
    halves = (rng.integers(0, 10 ** ANSWER_DECIMALS, 20_000) + 0.5) / 10 ** ANSWER_DECIMALS
    below, above = np.nextafter(halves, 0.0), np.nextafter(halves, 1.0)
    return np.concatenate([
        rng.random(20_000), halves, below, above, np.nextafter(below, 0.0),
        np.nextafter(above, 1.0),
        [0.0, 1.0, 0.5, 2.0 ** -7, 5e-7, 1e-300, 0.1, 0.3, 0.7, 0.9999995, 0.0999999],
        np.linspace(0.0, 1.0, 1_001)])


def test_rounding_an_array_gives_round_of_each_value_bit_for_bit() -> None:
    probabilities = _probabilities()
    rounded = rounded_probabilities(probabilities)
    expected = [round(p, ANSWER_DECIMALS) for p in probabilities.tolist()]
    assert all(type(value) is float for value in rounded)  # noqa: E721 - Python floats
    mismatched = [(p, got, want) for p, got, want
                  in zip(probabilities.tolist(), rounded, expected) if got != want]
    assert mismatched == []
    # The values next to a half are the ones the array's own rounding gets wrong.
    naive = (np.rint(probabilities * 10 ** ANSWER_DECIMALS) / 10 ** ANSWER_DECIMALS).tolist()
    assert sum(got != want for got, want in zip(naive, expected)) > 1_000


@pytest.mark.parametrize("size", [1, VECTOR_ROUNDING_ROWS - 1, VECTOR_ROUNDING_ROWS])
def test_small_and_large_requests_are_rounded_alike(size: int) -> None:
    probabilities = _probabilities()[20_000:20_000 + size]  # values next to a half
    assert rounded_probabilities(probabilities) == \
        [round(p, ANSWER_DECIMALS) for p in probabilities.tolist()]


def test_single_precision_probabilities_are_rounded_as_their_exact_values() -> None:
    probabilities = _probabilities().astype(np.float32)
    assert rounded_probabilities(probabilities) == \
        [round(p, ANSWER_DECIMALS) for p in probabilities.tolist()]


def test_only_the_values_next_to_a_half_are_rounded_one_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    probabilities = np.random.default_rng(7).random(10_000)
    scaled = probabilities * 10 ** ANSWER_DECIMALS
    near_half = int(np.sum(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6))
    calls: list[float] = []

    def counted_round(value: float, digits: int) -> float:
        calls.append(value)
        return round(value, digits)

    monkeypatch.setattr(app.scoring, "round", counted_round, raising=False)
    assert rounded_probabilities(probabilities) == \
        [round(p, ANSWER_DECIMALS) for p in probabilities.tolist()]
    assert len(calls) == near_half < 100


@pytest.mark.parametrize("size", [1, 2, VECTOR_BAND_ROWS - 1, VECTOR_BAND_ROWS, 64, 50_000])
def test_band_counts_of_an_array_equal_the_per_value_bands(size: int) -> None:
    values = np.concatenate([np.linspace(0.0, 1.0, 11), _probabilities()])[:size].tolist()
    expected: dict[int, int] = {}
    for value in values:
        band = min(int(value * 10), 9)  # tenths; 1.0 belongs to the last band
        expected[band] = expected.get(band, 0) + 1
    counted = list(band_counts(values))
    assert dict(counted) == expected and len(counted) == len(expected)
    assert all(type(band) is int and type(count) is int  # noqa: E721 - label and inc()
               for band, count in counted)
