"""The schema is the one source of truth for columns: it must be internally consistent."""

from __future__ import annotations

import pytest

from training import schema


def test_every_column_is_declared_once_with_a_description() -> None:
    names = schema.column_names()
    assert len(names) == len(set(names)) == 21
    assert all(column.label and column.description for column in schema.COLUMNS)


def test_categorical_columns_have_distinct_categories_and_numeric_ones_bounds() -> None:
    for column in schema.COLUMNS:
        if column.is_numeric:
            assert column.minimum is not None and column.maximum is not None
            assert column.minimum < column.maximum and not column.categories
        else:
            assert len(column.categories) == len(set(column.categories)) >= 2


def test_roles_split_features_protected_and_target() -> None:
    assert schema.TARGET == "credit_risk"
    assert {c.name for c in schema.PROTECTED} == {"personal_status_sex", "foreign_worker"}
    assert len(schema.FEATURES) == 18
    assert all(c.required for c in schema.FEATURES)
    assert not any(c.required for c in schema.PROTECTED)
    assert schema.POSITIVE_LABEL in schema.column(schema.TARGET).categories


def test_feature_name_helpers_partition_the_features() -> None:
    numeric, categorical = schema.numeric_feature_names(), schema.categorical_feature_names()
    assert numeric == ["duration", "amount", "age"]
    assert sorted(numeric + categorical) == sorted(schema.feature_names())


def test_unknown_column_lookup_names_the_column() -> None:
    with pytest.raises(KeyError, match="'salary'"):
        schema.column("salary")
