"""The validator's quick acceptance tests (per value, and per column of a batch) agree with
its worded checks on every kind of value."""

from __future__ import annotations

from typing import Any
from unittest.mock import ANY

import pytest

from app.validation import ACCEPTS, MAX_UNKNOWN_FIELDS, ScoringRequest, ValidationFailed, \
    _acceptor, batch_columns, check_value, validate_applicant, validate_request
from training.fast_scorer import random_applicants
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
    # ACCEPTS was built at import; a test built now goes through the same _acceptor (and is
    # the one mutation testing can reach, since its mutants are active only during tests).
    for acceptance in (accepts, _acceptor(column)):
        for value in probes(column):
            valid = check_value(column, value) is None
            assert acceptance(value) == valid, (column.name, value)


def test_every_input_has_a_quick_acceptance_test() -> None:
    assert [column for column, _ in ACCEPTS] == list(INPUTS)


def _per_row(batch: list[Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The per-row validator's rows and problems for a batch (the worded, slow path)."""
    rows, problems = [], {}
    for index, item in enumerate(batch):
        row, errors = validate_applicant(item, f"instances[{index}]")
        rows.append(row)
        problems.update(errors)
    return rows, problems


@pytest.mark.parametrize("column", INPUTS, ids=[c.name for c in INPUTS])
def test_the_column_wise_batch_check_passes_exactly_the_batches_whose_rows_are_the_input(
        column: Any) -> None:
    """Clean: no problem and every applicant is its own clean row (a null is not)."""
    for value in probes(column):
        batch = random_applicants(3, seed=7)
        batch[1] = {**batch[1], column.name: value}
        rows, problems = _per_row(batch)
        expected = not problems and rows == batch
        columns = batch_columns(batch)
        assert (columns is not None) == expected, (column.name, value)
        if expected:
            assert columns == {name: [row[name] for row in batch] for name in batch[0]}
            assert validate_request({"instances": batch}, 10) == \
                ScoringRequest(rows, batch=True, columns=columns)


@pytest.mark.parametrize("change", [
    lambda row: {key: value for key, value in row.items() if key != INPUTS[0].name},
    lambda row: {**row, "unknown": 1},
    lambda row: [row],
    lambda row: None,
], ids=["required-missing", "unknown-field", "array", "null"])
def test_the_column_wise_batch_check_refuses_what_the_per_row_check_refuses(
        change: Any) -> None:
    batch = random_applicants(3, seed=11)
    batch[2] = change(batch[2])
    assert _per_row(batch)[1] and batch_columns(batch) is None


def test_an_unknown_field_is_refused_in_a_row_that_holds_fewer_known_ones() -> None:
    """Every row has as many keys as the next, yet one of them is not a known field."""
    optional = next(column for column in INPUTS if not column.required)
    batch = random_applicants(2, seed=13)
    batch[0] = {**batch[0], optional.name: optional.categories[0]}
    batch[1] = {**batch[1], "unknown": optional.categories[0]}
    assert len(batch[0]) == len(batch[1]) and optional.name not in batch[1]
    assert _per_row(batch)[1] == {"instances[1].unknown": ANY} and batch_columns(batch) is None


def test_an_optional_field_left_out_stays_out_of_the_clean_row() -> None:
    optional = next(column for column in INPUTS if not column.required)
    batch = random_applicants(2, seed=3)
    columns = batch_columns(batch)
    assert optional.name not in batch[0] and columns is not None
    assert optional.name not in columns
    assert validate_request({"instances": batch}, 10) == \
        ScoringRequest(_per_row(batch)[0], batch=True, columns=columns)


def test_an_optional_field_some_rows_hold_is_checked_but_not_a_column() -> None:
    optional = next(column for column in INPUTS if not column.required)
    batch = random_applicants(2, seed=5)
    batch[0] = {**batch[0], optional.name: optional.categories[0]}
    columns = batch_columns(batch)
    assert columns is not None and optional.name not in columns
    batch[0] = {**batch[0], optional.name: "not a category"}
    assert batch_columns(batch) is None


def test_a_batch_the_column_check_cannot_take_is_validated_row_by_row() -> None:
    optional = next(column for column in INPUTS if not column.required)
    batch = random_applicants(3, seed=7)
    batch[1] = {**batch[1], optional.name: None}  # valid (left out), but not a quick column
    assert batch_columns(batch) is None
    assert validate_request({"instances": batch}, 10) == \
        ScoringRequest(_per_row(batch)[0], batch=True, columns=None)


@pytest.mark.parametrize(("payload", "message"), [
    ({"instances": "x"}, "must be an array of applicants (got string)"),
    ({"instances": {}}, "must be an array of applicants (got object)"),
    ({"instances": []}, "must hold at least one applicant"),
    ({"instances": [{}] * 3}, "must hold at most 2 applicants (got 3)"),
])
def test_a_batch_that_is_not_a_list_of_1_to_max_rows_is_refused_saying_so(
        payload: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_request(payload, 2)
    assert refused.value.fields == {"instances": message}
    assert str(refused.value) == "1 invalid field(s)"


def test_a_batch_body_with_more_unknown_keys_than_tolerated_gets_one_message() -> None:
    batch = random_applicants(1, seed=1)
    named = {"instances": batch, **{f"k{n}": n for n in range(MAX_UNKNOWN_FIELDS)}}
    with pytest.raises(ValidationFailed) as tolerated:
        validate_request(named, 10)
    assert len(tolerated.value.fields) == MAX_UNKNOWN_FIELDS  # each one named
    assert str(tolerated.value) == f"{MAX_UNKNOWN_FIELDS} invalid field(s)"
    crowded = {**named, "one_more": 1}
    with pytest.raises(ValidationFailed) as refused:
        validate_request(crowded, 10)
    assert refused.value.fields == {
        "body": f"has {MAX_UNKNOWN_FIELDS + 2} fields; at most 1 are known"}


@pytest.mark.parametrize(("payload", "prefix", "path", "message"), [
    ([1, 2], "", "body", "must be a JSON object (got array)"),
    ("applicant", "instances[3]", "instances[3]", "must be a JSON object (got string)"),
    (None, "instances[0]", "instances[0]", "must be a JSON object (got null)"),
])
def test_an_applicant_that_is_not_an_object_is_named_by_its_path_and_json_type(
        payload: Any, prefix: str, path: str, message: str) -> None:
    assert validate_applicant(payload, prefix) == ({}, {path: message})


def test_an_unknown_field_is_named_with_where_the_inputs_are_listed() -> None:
    applicant = {**random_applicants(1, seed=2)[0], "favourite_colour": "teal"}
    for prefix, path in (("", "favourite_colour"),
                         ("instances[1]", "instances[1].favourite_colour")):
        row, errors = validate_applicant(applicant, prefix)
        assert errors == {path: "unknown field; the model's inputs are listed in "
                                "/api/v1/openapi.json"}
        assert "favourite_colour" not in row


@pytest.mark.parametrize(("payload", "kind"), [([{}], "array"), ("x", "string"), (7, "number")])
def test_a_request_body_that_is_not_an_object_says_what_it_must_be(payload: Any,
                                                                   kind: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_request(payload, 10)
    assert refused.value.fields == {"body": "must be a JSON object: one applicant, or "
                                            f'{{"instances": [applicants]}} (got {kind})'}


def test_one_applicant_is_a_request_of_one_row_that_is_not_a_batch() -> None:
    applicant = random_applicants(1, seed=3)[0]
    assert validate_request(applicant, 10) == ScoringRequest([applicant], batch=False)
