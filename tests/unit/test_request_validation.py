"""The validator's quick acceptance test agrees with its worded check on every kind of value."""

from __future__ import annotations

from typing import Any

import pytest

from app.validation import ACCEPTS, check_value
from training.schema import INPUTS


def probes(column: Any) -> list[Any]:
    """Valid values, values on and just past each bound, and values of the wrong JSON type."""
    wrong_type = [None, True, False, 1.0, 12.5, "12", [], {}, float("nan")]
    if column.is_numeric:
        return wrong_type + [column.minimum, column.maximum, column.minimum - 1,
                             column.maximum + 1, (column.minimum + column.maximum) // 2]
    first = column.categories[0]
    return wrong_type + list(column.categories) + [first.upper(), first + " ", "", 0]


@pytest.mark.parametrize(("column", "accepts"), ACCEPTS, ids=[c.name for c, _ in ACCEPTS])
def test_quick_acceptance_says_yes_exactly_when_check_value_finds_no_problem(
        column: Any, accepts: Any) -> None:
    for value in probes(column):
        assert accepts(value) == (check_value(column, value) is None), (column.name, value)


def test_every_input_has_a_quick_acceptance_test() -> None:
    assert [column for column, _ in ACCEPTS] == list(INPUTS)
