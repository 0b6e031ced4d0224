"""Property-based tests of the schema's contract (hypothesis): whatever the validator
accepts is scored, whatever it refuses gets a 422 naming exactly the fields it refused, and
a row of the data set comes back from the API with the probability the Pipeline gives it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.validation import validate_applicant
from training.artifact import LoadedModel
from training.data import load_dataset
from training.schema import INPUTS, Column, feature_names

# The client and model fixtures are read-only for these properties, so sharing them between
# examples is safe; CPU-contended CI machines make per-example deadlines meaningless.
PROPERTIES = settings(max_examples=60, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])
MISSING = object()


def valid_value(column: Column) -> st.SearchStrategy[Any]:
    """Any value the schema allows for `column`."""
    if column.is_numeric:
        return st.integers(column.minimum, column.maximum)
    return st.sampled_from(column.categories)


def any_value(column: Column) -> st.SearchStrategy[Any]:
    """A valid value most of the time, else a near miss or a wrong JSON type."""
    wrong = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=8), st.lists(st.integers(), max_size=2),
                      st.just(MISSING))
    if column.is_numeric:
        near = st.sampled_from([column.minimum - 1, column.maximum + 1, -(2 ** 40), 2 ** 40])
    else:
        near = st.sampled_from([column.categories[0].upper(), column.categories[0] + " ",
                                "unknown"])
    return st.one_of(valid_value(column), valid_value(column), near, wrong)


@st.composite
def applicants(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object shaped like an applicant, possibly with bad, missing or extra fields."""
    payload = {column.name: draw(any_value(column)) for column in INPUTS}
    payload = {name: value for name, value in payload.items() if value is not MISSING}
    if draw(st.integers(0, 9)) == 0:
        payload[draw(st.sampled_from(["extra", "credit_risk", "Duration"]))] = 1
    return payload


@PROPERTIES
@given(payload=applicants())
def test_accepted_applicants_are_scored_and_refused_ones_get_422_naming_the_fields(
        client: FlaskClient, payload: dict[str, Any]) -> None:
    _, errors = validate_applicant(payload)
    response = client.post("/api/v1/predict", json=payload)
    if not errors:
        assert response.status_code == 200, response.get_json()
        (prediction,) = response.get_json()["predictions"]
        assert 0.0 <= prediction["probability_bad"] <= 1.0
        assert prediction["decision"] in ("approve", "decline")
    else:
        assert response.status_code == 422
        assert set(response.get_json()["fields"]) == set(errors)


@PROPERTIES
@given(payload=st.fixed_dictionaries({column.name: valid_value(column)
                                      for column in INPUTS if column.required}))
def test_every_applicant_inside_the_schema_is_accepted(client: FlaskClient,
                                                       payload: dict[str, Any]) -> None:
    assert validate_applicant(payload)[1] == {}
    assert client.post("/api/v1/predict", json=payload).status_code == 200


@pytest.fixture(scope="module")
def dataset(data_file: Path) -> pd.DataFrame:
    """The labelled data set, typed as the model sees it."""
    return load_dataset(data_file)


@PROPERTIES
@given(index=st.integers(0, 999))
def test_a_dataset_row_round_trips_with_the_pipelines_probability(
        client: FlaskClient, trained_model: LoadedModel, dataset: pd.DataFrame,
        index: int) -> None:
    row = dataset.iloc[[index]]
    (payload,) = json.loads(row[feature_names()].to_json(orient="records"))
    response = client.post("/api/v1/predict", json=payload)
    assert response.status_code == 200, response.get_json()
    expected = float(trained_model.pipeline.predict_proba(row[feature_names()])[
        0, list(trained_model.pipeline.classes_).index("bad")])
    assert response.get_json()["predictions"][0]["probability_bad"] == round(expected, 6)
