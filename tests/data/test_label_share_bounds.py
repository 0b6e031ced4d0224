"""The label-share bounds, checked exactly on each bound and just past it: 5-80 % bad for an
incoming batch, 15-45 % for a training set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training.config import TrainingConfig
from training.data import read_csv, validate
from training.intake import batch_limits
from training.schema import POSITIVE_LABEL, TARGET

CONFIG = TrainingConfig()


def labelled_rows(data_file: Path, bad: int, total: int) -> pd.DataFrame:
    """`total` distinct real rows of which `bad` are bad risks, as text (as read from a file)."""
    frame = read_csv(data_file)
    is_bad = frame[TARGET] == POSITIVE_LABEL
    rows = pd.concat([frame[is_bad].head(bad), frame[~is_bad].head(total - bad)])
    return rows.reset_index(drop=True)


def label_balance(frame: pd.DataFrame, config: TrainingConfig) -> bool:
    """Whether the label_balance check passed."""
    report = validate(frame, config, source="bounds")
    (check,) = [c for c in report.checks if c.name == "label_balance"]
    return check.passed


# (bounds, bad rows, total rows, passes): each bound exactly, then just past it.
CASES = [
    ("batch", 1, 20, True),      # 5 %: the batch's lower bound
    ("batch", 16, 20, True),     # 80 %: the batch's upper bound
    ("batch", 1, 21, False),     # 4.8 %
    ("batch", 17, 21, False),    # 81.0 %
    ("training", 3, 20, True),   # 15 %: the training set's lower bound
    ("training", 9, 20, True),   # 45 %: the training set's upper bound
    ("training", 3, 21, False),  # 14.3 %
    ("training", 10, 21, False),  # 47.6 %
]


def limits(bounds: str) -> TrainingConfig:
    """The batch or the training-set bounds, derived when a test runs (not at import, so a
    mutation tool's switch of `batch_limits` reaches the test)."""
    return batch_limits(CONFIG) if bounds == "batch" else TrainingConfig(min_rows=20)


def test_the_batch_bounds_are_5_and_80_percent_over_at_least_20_rows() -> None:
    batch = limits("batch")
    assert (batch.min_bad_fraction, batch.max_bad_fraction) == (0.05, 0.80)
    assert (batch.min_rows, CONFIG.min_rows) == (20, 100)  # a batch may be smaller


@pytest.mark.parametrize(("bounds", "bad", "total", "passes"), CASES)
def test_label_share_exactly_on_a_bound_passes_and_past_it_fails(
        data_file: Path, bounds: str, bad: int, total: int, passes: bool) -> None:
    assert label_balance(labelled_rows(data_file, bad, total), limits(bounds)) is passes


def test_a_batch_with_a_share_the_training_bounds_refuse_passes_the_batch_bounds(
        data_file: Path) -> None:
    # 10 %: label shift in a batch is news, not an error; for a whole training set it is.
    rows = labelled_rows(data_file, 2, 20)
    assert label_balance(rows, limits("batch"))
    assert not label_balance(rows, limits("training"))
