"""Data tests: the real file passes every check; each broken fixture fails the right one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training.config import TrainingConfig
from training.data import (CheckResult, DataValidationError, ValidationReport, load_dataset,
                           load_split, read_csv, split, validate)
from training.schema import COLUMNS, TARGET

FIXTURES = Path(__file__).parent / "fixtures"


def failed_checks(path: Path) -> set[str]:
    """Names of the checks a file fails."""
    report = validate(read_csv(path), TrainingConfig(), source=str(path))
    return {check.name for check in report.failures}


def test_real_data_passes_every_check(data_file: Path) -> None:
    report = validate(read_csv(data_file), TrainingConfig(), source=str(data_file))
    assert report.passed, report.to_text()
    assert report.rows == 1000
    # One check per column property plus the table-level ones: nothing silently skipped.
    assert len(report.checks) == 2 + 3 * sum(c.is_numeric for c in COLUMNS) + 2 * sum(
        not c.is_numeric for c in COLUMNS) + 2


def test_real_data_categories_are_exactly_the_schema_domain(data_file: Path) -> None:
    frame = read_csv(data_file)
    for column in COLUMNS:
        if not column.is_numeric:
            assert set(frame[column.name]) == set(column.categories), column.name


def test_valid_sample_fixture_passes() -> None:
    assert failed_checks(FIXTURES / "valid_sample.csv") == set()


@pytest.mark.parametrize(("fixture", "expected"), [
    ("missing_column.csv", {"columns"}),
    ("extra_column.csv", {"columns"}),
    ("unknown_label.csv", {"domain:purpose"}),
    ("out_of_range.csv", {"range:amount", "range:age"}),
    ("wrong_type.csv", {"type:duration"}),
    ("empty_values.csv", {"nulls:job"}),
    ("duplicate_rows.csv", {"duplicate_rows"}),
    ("label_imbalance.csv", {"label_balance"}),
    ("too_few_rows.csv", {"row_count"}),
])
def test_broken_fixture_fails_exactly_the_named_check(fixture: str, expected: set[str]) -> None:
    assert failed_checks(FIXTURES / fixture) == expected


def test_failure_detail_names_offending_values_and_lines() -> None:
    report = validate(read_csv(FIXTURES / "unknown_label.csv"), TrainingConfig())
    (failure,) = report.failures
    assert "'crypto'" in failure.detail and "file lines 5, 42" in failure.detail


def test_load_dataset_raises_with_the_full_report() -> None:
    with pytest.raises(DataValidationError) as raised:
        load_dataset(FIXTURES / "out_of_range.csv")
    assert {c.name for c in raised.value.report.failures} == {"range:amount", "range:age"}
    assert "range:amount" in str(raised.value)


def test_unlabelled_scoring_data_needs_no_target(data_file: Path) -> None:
    frame = read_csv(data_file).drop(columns=[TARGET])
    assert validate(frame, labelled=False).passed
    assert not validate(frame, labelled=True).passed


def test_missing_file_and_unparseable_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such data file"):
        read_csv(tmp_path / "absent.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ValueError, match="not a readable CSV"):
        read_csv(binary)


def test_loading_for_a_split_validates_with_the_given_config(data_file: Path) -> None:
    # The real file's 1,000 rows pass the default floor of 100 rows, not one of 2,000.
    with pytest.raises(DataValidationError) as refused:
        load_split(data_file, TrainingConfig(min_rows=2000))
    assert [check.name for check in refused.value.report.failures] == ["row_count"]


def test_split_is_stratified_disjoint_and_seeded(data_file: Path) -> None:
    frame = load_dataset(data_file)
    config = TrainingConfig()
    train, holdout = split(frame, config)
    assert len(holdout) == 200 and len(train) == 800
    assert (holdout[TARGET] == "bad").sum() == 60  # exactly the 30 % of the full data
    both = pd.concat([train, holdout])
    assert not both.duplicated().any()
    again_train, again_holdout = split(frame, config)
    pd.testing.assert_frame_equal(holdout, again_holdout)


def test_report_text_puts_failures_first_and_the_error_names_them_all() -> None:
    report = ValidationReport("batch.csv", 3, [
        CheckResult("columns", True, "all 21 present"),
        CheckResult("range:age", False, "2 values under 18"),
        CheckResult("nulls", True, "none"),
        CheckResult("domain:purpose", False, "unknown 'boat'")])
    assert report.to_text() == "\n".join([
        "data validation of batch.csv (3 rows): FAILED 2 of 4 checks",
        "  [FAIL] range:age: 2 values under 18",
        "  [FAIL] domain:purpose: unknown 'boat'",
        "  [ok] columns: all 21 present",
        "  [ok] nulls: none"])
    assert str(DataValidationError(report)) == (
        "batch.csv: data validation failed: range:age, domain:purpose")
    passed = ValidationReport("good.csv", 1, [CheckResult("nulls", True, "none")])
    assert passed.to_text() == "data validation of good.csv (1 rows): PASSED\n  [ok] nulls: none"


def test_the_reports_json_form_names_source_rows_verdict_and_each_check() -> None:
    report = ValidationReport("batch.csv", 40, [CheckResult("columns", True, "all present"),
                                                CheckResult("range:age", False, "2 under 18")])
    assert report.to_dict() == {
        "source": "batch.csv", "rows": 40, "passed": False,
        "checks": [{"name": "columns", "passed": True, "detail": "all present"},
                   {"name": "range:age", "passed": False, "detail": "2 under 18"}]}
