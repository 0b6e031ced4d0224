"""The canary's answers are checked before they are used: one probability in [0, 1] per row,
or the canary failed (app.scoring._score_canary) and production answers alone."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from app.scoring import _score_canary

ROWS = [{"age": 30}, {"age": 40}]


class CanaryModel:
    """Answers whatever it was given; remembers the columns it was handed."""

    version = "canary-v"

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.columns: object = None

    def predict_proba_bad_rows(self, rows: list[dict[str, Any]], columns: object = None) -> Any:
        self.columns = columns
        return self.answer


class BrokenModel:
    """A canary whose scoring raises, with a long message."""

    version = "canary-v"

    def predict_proba_bad_rows(self, rows: list[dict[str, Any]], columns: object = None) -> Any:
        raise KeyError("x" * 400)


class Recorder:
    """Stands for the canary arm and the failure counter: what they were told."""

    def __init__(self) -> None:
        self.records: list[tuple[float | None, str | None]] = []
        self.failures: list[str] = []

    def record(self, _canary: object, milliseconds: float | None,
               error: Exception | None = None) -> None:
        self.records.append((milliseconds, None if error is None else str(error)))

    def labels(self, version: str) -> SimpleNamespace:
        return SimpleNamespace(inc=lambda: self.failures.append(version))


def score(model: CanaryModel | BrokenModel, columns: object = None
          ) -> tuple[Any, str, Recorder]:
    """_score_canary over ROWS with the given canary model."""
    recorder = Recorder()
    state = SimpleNamespace(canary=recorder, metrics=SimpleNamespace(canary_failures=recorder))
    canary = SimpleNamespace(model=model, release=SimpleNamespace(version="canary-v"))
    scoring, error = _score_canary(state, canary, ROWS, columns)  # type: ignore[arg-type]
    return scoring, error, recorder


@pytest.mark.parametrize("answer", [[0.0, 1.0], (0.25, 0.75), np.array([1, 0])],
                         ids=["the-bounds", "a-tuple", "integers"])
def test_one_probability_in_0_to_1_per_row_is_the_canarys_answer(answer: Any) -> None:
    columns = object()  # a batch's columns, read once by validation, reach the canary too
    model = CanaryModel(answer)
    scoring, error, recorder = score(model, columns=columns)
    assert error == "" and recorder.failures == []
    assert scoring.probabilities.dtype == np.float64
    assert scoring.probabilities.tolist() == [float(value) for value in answer]
    assert scoring.arm == "canary" and model.columns is columns
    assert recorder.records == [(scoring.seconds * 1000, None)]  # the guard's milliseconds


@pytest.mark.parametrize(("answer", "shown"), [
    ([0.5, 1.5], "2 values"), ([-0.1, 0.5], "2 values"), ([0.5], "1 values"),
    ([0.5, 0.5, 0.5], "3 values"), ([0.5, None], "2 values"),
], ids=["above-one", "below-zero", "too-few", "too-many", "a-missing-value"])
def test_anything_else_is_a_canary_failure_production_answers_instead(
        answer: list[Any], shown: str) -> None:
    scoring, error, recorder = score(CanaryModel(answer))
    message = f"scored 2 rows as {shown}, not one probability in [0, 1] each"
    assert scoring is None and error == f"ValueError: {message}"
    assert recorder.failures == ["canary-v"] and recorder.records == [(None, message)]


def test_a_canary_that_raises_is_reported_by_its_error_cut_to_300_characters() -> None:
    scoring, error, recorder = score(BrokenModel())
    assert scoring is None and error == ("KeyError: '" + "x" * 400)[:300]
    assert recorder.failures == ["canary-v"] and recorder.records == [(None, repr("x" * 400))]
