"""Loading, validating and splitting the credit data, checked against `training.schema`.

`validate` runs every check and reports each failure; nothing stops at the first problem, so
one run tells a data owner everything that is wrong with a file.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from training.config import TrainingConfig
from training.schema import COLUMNS, POSITIVE_LABEL, TARGET, Column, column_names


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one validation check."""

    name: str
    passed: bool
    detail: str


@dataclass
class ValidationReport:
    """Every check run on one data set, with what failed and why."""

    source: str
    rows: int
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        """The checks that failed."""
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form of the report."""
        return {"source": self.source, "rows": self.rows, "passed": self.passed,
                "checks": [asdict(check) for check in self.checks]}

    def to_text(self) -> str:
        """Human-readable form: one line per check, failures first."""
        verdict = ("PASSED" if self.passed
                   else f"FAILED {len(self.failures)} of {len(self.checks)} checks")
        lines = [f"data validation of {self.source} ({self.rows} rows): {verdict}"]
        ordered = self.failures + [c for c in self.checks if c.passed]
        lines += [f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}" for c in ordered]
        return "\n".join(lines)


class DataValidationError(Exception):
    """Data that must not be used, carrying the full validation report."""

    def __init__(self, report: ValidationReport) -> None:
        names = ", ".join(check.name for check in report.failures)
        super().__init__(f"{report.source}: data validation failed: {names}")
        self.report = report


def file_sha256(path: Path) -> str:
    """Hex sha256 of a data file, recorded in model cards for lineage."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_csv(path: Path, content: bytes | None = None) -> pd.DataFrame:
    """Read a CSV as text columns, so that validation (not the parser) decides about types.

    With `content`, those bytes are parsed (already read from `path`, which names them)."""
    path = Path(path)
    if content is None and not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file")
    try:
        return pd.read_csv(path if content is None else io.BytesIO(content), dtype=str,
                           keep_default_na=True, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable CSV file ({error})") from None


def validate(frame: pd.DataFrame, config: TrainingConfig | None = None,
             source: str = "data", labelled: bool = True) -> ValidationReport:
    """Run every data check on a raw (text) frame and return the report."""
    config = config or TrainingConfig()
    expected = column_names() if labelled else [c for c in column_names() if c != TARGET]
    report = ValidationReport(source=source, rows=len(frame))
    report.checks.append(_check_columns(frame, expected))
    report.checks.append(_check(
        "row_count", len(frame) >= config.min_rows,
        f"{len(frame)} rows (at least {config.min_rows} needed)"))
    for column in COLUMNS:
        if column.name in frame.columns and column.name in expected:
            report.checks.extend(_check_column(frame[column.name], column, config))
    duplicates = int(frame.duplicated().sum())
    share = duplicates / len(frame) if len(frame) else 0.0
    report.checks.append(_check(
        "duplicate_rows", share <= config.max_duplicate_fraction,
        f"{duplicates} duplicate rows ({share:.1%}; limit {config.max_duplicate_fraction:.1%})"))
    if labelled and TARGET in frame.columns and len(frame):
        bad = float((frame[TARGET] == POSITIVE_LABEL).mean())
        report.checks.append(_check(
            "label_balance", config.min_bad_fraction <= bad <= config.max_bad_fraction,
            f"{bad:.1%} {POSITIVE_LABEL} (allowed {config.min_bad_fraction:.0%}"
            f"-{config.max_bad_fraction:.0%})"))
    return report


def to_model_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Convert a validated text frame to model dtypes: integers for numeric columns."""
    result = frame.copy()
    for column in COLUMNS:
        if column.name in result.columns:
            if column.is_numeric:
                result[column.name] = pd.to_numeric(result[column.name]).astype("int64")
            else:
                result[column.name] = result[column.name].astype(object)
    return result


def load_dataset(path: Path, config: TrainingConfig | None = None) -> pd.DataFrame:
    """Read, validate and type a labelled data file; raise DataValidationError on bad data."""
    frame = read_csv(path)
    report = validate(frame, config, source=str(path))
    if not report.passed:
        raise DataValidationError(report)
    return to_model_frame(frame)


def split(frame: pd.DataFrame, config: TrainingConfig,
          segments: list[int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified split into (train, holdout) with the config's seed, before any fitting.

    With `segments` (row counts of consecutive sources: the base file, then each batch),
    every source is split on its own, so a row keeps its side of the split in every later
    snapshot: a champion is never scored on rows it was trained on.
    """
    if not segments:
        segments = [len(frame)]
    if sum(segments) != len(frame):
        raise ValueError(f"segments cover {sum(segments)} rows, the data has {len(frame)}")
    trains, holdouts, start = [], [], 0
    for rows in segments:
        part = frame.iloc[start:start + rows]
        start += rows
        counts = part[TARGET].value_counts()
        stratify = part[TARGET] if len(counts) > 1 and counts.min() >= 2 else None
        train, holdout = train_test_split(part, test_size=config.holdout_fraction,
                                          stratify=stratify, random_state=config.seed)
        trains.append(train)
        holdouts.append(holdout)
    return (pd.concat(trains).reset_index(drop=True),
            pd.concat(holdouts).reset_index(drop=True))


def segments_path(data_path: Path) -> Path:
    """Where a snapshot records the row counts of the sources it was built from."""
    return Path(data_path).with_suffix(".segments.json")


def load_split(data_path: Path, config: TrainingConfig
               ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Load a validated data file and split it, per source when it is a snapshot:
    (all rows, train, holdout)."""
    frame = load_dataset(data_path, config)
    manifest = segments_path(data_path)
    segments = None
    if manifest.is_file():
        segments = [source["rows"] for source in json.loads(manifest.read_text())["sources"]]
    train, holdout = split(frame, config, segments)
    return frame, train, holdout


# --- individual checks ---------------------------------------------------------------------
def _check(name: str, passed: bool, detail: str) -> CheckResult:
    return CheckResult(name=name, passed=bool(passed), detail=detail)


def _check_columns(frame: pd.DataFrame, expected: list[str]) -> CheckResult:
    missing = [name for name in expected if name not in frame.columns]
    extra = [name for name in frame.columns if name not in expected]
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if extra:
        problems.append(f"unexpected {extra}")
    return _check("columns", not problems,
                  "; ".join(problems) or f"all {len(expected)} expected columns present")


def _check_column(values: pd.Series, column: Column, config: TrainingConfig
                  ) -> list[CheckResult]:
    name = column.name
    nulls = int(values.isna().sum())
    null_share = nulls / len(values) if len(values) else 0.0
    results = [_check(f"nulls:{name}", null_share <= config.max_null_fraction,
                      f"{nulls} empty values ({null_share:.1%}; "
                      f"limit {config.max_null_fraction:.1%})")]
    present = values.dropna()
    if column.is_numeric:
        numbers = pd.to_numeric(present, errors="coerce")
        not_integer = present[numbers.isna() | (numbers != numbers.round())]
        results.append(_check(f"type:{name}", not_integer.empty,
                              _examples("non-integer values", not_integer)))
        numbers = numbers.dropna()
        outside = present.loc[numbers.index][(numbers < column.minimum)
                                             | (numbers > column.maximum)]
        results.append(_check(f"range:{name}", outside.empty, _examples(
            f"values outside [{column.minimum}, {column.maximum}]", outside)))
    else:
        unknown = present[~present.isin(column.categories)]
        results.append(_check(f"domain:{name}", unknown.empty,
                              _examples("labels outside the schema", unknown)))
    return results


def _examples(what: str, offending: pd.Series) -> str:
    """Describe offending values: how many, a few examples, and their row numbers."""
    if offending.empty:
        return f"no {what}"
    shown = ", ".join(repr(v) for v in offending.unique()[:3])
    rows = ", ".join(str(int(i) + 2) for i in offending.index[:3])  # +2: header, 1-based
    return f"{len(offending)} {what}, e.g. {shown} (file lines {rows})"
