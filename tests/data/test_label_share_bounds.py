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


@pytest.mark.parametrize(("bad", "total", "passes"), [
    (1, 20, True),     # 5 %: exactly the lower bound
    (16, 20, True),    # 80 %: exactly the upper bound
    (1, 21, False),    # 4.8 %
    (17, 21, False),   # 81.0 %
])
def test_incoming_batch_label_share_bounds(data_file: Path, bad: int, total: int,
                                           passes: bool) -> None:
    limits = batch_limits(CONFIG)
    assert (limits.min_bad_fraction, limits.max_bad_fraction) == (0.05, 0.80)
    assert label_balance(labelled_rows(data_file, bad, total), limits) is passes


@pytest.mark.parametrize(("bad", "total", "passes"), [
    (3, 20, True),     # 15 %: exactly the lower bound
    (9, 20, True),     # 45 %: exactly the upper bound
    (3, 21, False),    # 14.3 %
    (10, 21, False),   # 47.6 %
])
def test_training_set_label_share_bounds(data_file: Path, bad: int, total: int,
                                         passes: bool) -> None:
    config = TrainingConfig(min_rows=20)
    assert label_balance(labelled_rows(data_file, bad, total), config) is passes


def test_a_batch_with_a_share_the_training_bounds_refuse_passes_the_batch_bounds(
        data_file: Path) -> None:
    # 10 %: label shift in a batch is news, not an error; for a whole training set it is.
    rows = labelled_rows(data_file, 2, 20)
    assert label_balance(rows, batch_limits(CONFIG))
    assert not label_balance(rows, TrainingConfig(min_rows=20))
