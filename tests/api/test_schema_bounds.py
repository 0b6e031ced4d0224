"""Every numeric input exactly on its schema bounds is scored; one past them is refused."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app.openapi import example_applicant
from app.validation import validate_applicant
from training.schema import FEATURES

NUMERIC = [column for column in FEATURES if column.is_numeric]


@pytest.mark.parametrize("column", NUMERIC, ids=lambda c: c.name)
def test_the_validator_accepts_the_bounds_and_refuses_one_past_them(column: Any) -> None:
    # The validator alone (no model): quick enough for the CI mutation sample.
    typical = example_applicant()
    for value in (column.minimum, column.maximum):
        row, errors = validate_applicant({**typical, column.name: value})
        assert errors == {} and row[column.name] == value
    for value in (column.minimum - 1, column.maximum + 1):
        assert set(validate_applicant({**typical, column.name: value})[1]) == {column.name}


@pytest.mark.parametrize("column", NUMERIC, ids=lambda c: c.name)
def test_exactly_the_minimum_and_the_maximum_are_scored(
        client: FlaskClient, applicant: dict[str, Any], column: Any) -> None:
    instances = [{**applicant, column.name: column.minimum},
                 {**applicant, column.name: column.maximum}]
    response = client.post("/api/v1/predict", json={"instances": instances})
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["predictions"]) == 2
    for instance in instances:
        single = client.post("/api/v1/predict", json=instance)
        assert single.status_code == 200, single.get_json()


@pytest.mark.parametrize("column", NUMERIC, ids=lambda c: c.name)
def test_one_past_either_bound_is_refused_naming_the_field(
        client: FlaskClient, applicant: dict[str, Any], column: Any) -> None:
    for value in (column.minimum - 1, column.maximum + 1):
        response = client.post("/api/v1/predict", json={**applicant, column.name: value})
        assert response.status_code == 422
        fields = response.get_json()["fields"]
        assert set(fields) == {column.name}
        assert f"between {column.minimum} and {column.maximum} (got {value})" \
            in fields[column.name]
