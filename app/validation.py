"""Check scoring requests against `training.schema`: the only place columns are declared.

Every problem is collected, keyed by the field's path (`amount`, `instances[2].age`), so
that one answer names every bad field. Types are strict: JSON `true` is not an integer,
`12.0` and `"12"` are not integers either, and categories must match exactly. An object
with far more keys than its schema is refused as a whole, before any field is looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any, NamedTuple

from app.request_id import is_sane
from training.schema import COLUMNS_BY_NAME, INPUTS, TARGET, Column

BATCH_KEY = "instances"
KNOWN_FIELDS = frozenset(column.name for column in INPUTS)
# Unknown keys an object may carry and still get one message per key; beyond that the
# object is refused in one message (a request of 100,000 junk keys costs one line).
MAX_UNKNOWN_FIELDS = 20


class ValidationFailed(Exception):
    """A request that does not match the schema; `fields` maps each path to its problem."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(f"{len(fields)} invalid field(s)")
        self.fields = fields


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def describe(column: Column) -> str:
    """What a valid value of `column` is, in words (used by messages and the form)."""
    if column.is_numeric:
        return f"must be an integer between {column.minimum} and {column.maximum}"
    options = ", ".join(f"'{category}'" for category in column.categories)
    return f"must be one of {options}"


def check_value(column: Column, value: Any) -> str | None:
    """The problem with one value of `column`, or None when it is valid."""
    if column.is_numeric:
        # bool is a subclass of int in Python, but `true` is not a number in JSON.
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{describe(column)} (got {_json_type(value)})"
        if not column.minimum <= value <= column.maximum:  # type: ignore[operator]
            return f"{describe(column)} (got {value})"
        return None
    if not isinstance(value, str):
        return f"{describe(column)} (got {_json_type(value)})"
    if value not in column.categories:
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f"{describe(column)} (got {shown!r})"
    return None


def too_many_keys(payload: dict[Any, Any], known: int, path: str) -> dict[str, str]:
    """The one problem of an object with far more keys than its `known` fields, else {}."""
    if len(payload) <= known + MAX_UNKNOWN_FIELDS:
        return {}
    return {path: f"has {len(payload)} fields; at most {known} are known"}


def _acceptor(column: Column) -> Callable[[Any], bool]:
    """A quick test that says yes exactly when check_value finds no problem (JSON values)."""
    if column.is_numeric:
        low, high = column.minimum, column.maximum
        return lambda value: type(value) is int and low <= value <= high  # noqa: E721
    categories = frozenset(column.categories)
    return lambda value: type(value) is str and value in categories  # noqa: E721


# Per request and row this is the hot loop; check_value words the message when it fails.
ACCEPTS = tuple((column, _acceptor(column)) for column in INPUTS)
# A batch is first checked a column at a time against these sets (loops in C); any doubt
# sends it through the per-row checks above, which also word the messages.
CATEGORY_SETS = {column.name: frozenset(column.categories) for column in INPUTS
                 if not column.is_numeric}


def batch_columns(instances: list[Any]) -> dict[str, list[Any]] | None:
    """The values of a batch field by field, when every applicant is an object of known
    fields, every required one present, every value valid and none null (then each applicant
    is its own clean row); None at the first doubt. Only fields every row holds are kept."""
    if set(map(type, instances)) != {dict}:  # type() is dict for each: one loop in C
        return None
    columns: dict[str, list[Any]] = {}
    known_keys = 0  # the known fields the rows hold, all rows together
    for column in INPUTS:
        name = column.name
        try:
            values = list(map(itemgetter(name), instances))
        except KeyError:
            if column.required:
                return None
            # May be left out (not in the row either), but not null: the row drops nulls.
            values = [item[name] for item in instances if name in item]
            if not values:
                continue
        else:
            columns[name] = values
        known_keys += len(values)
        if column.is_numeric:
            # type(True) is bool and type(None) is NoneType: only JSON integers pass.
            if set(map(type, values)) != {int} or min(values) < column.minimum \
                    or max(values) > column.maximum:  # type: ignore[operator]
                return None
        else:
            try:
                if not CATEGORY_SETS[name].issuperset(values):  # a number never equals a str
                    return None
            except TypeError:  # an array or object among the values
                return None
    # Every row holds its known fields counted above, so more keys than those in all means
    # an unknown field somewhere (one sum of lengths, not a look-up of every key).
    return columns if sum(map(len, instances)) == known_keys else None


def validate_applicant(payload: Any, prefix: str = "") -> tuple[dict[str, Any], dict[str, str]]:
    """One applicant: the clean row (inputs only) and the problems by field path."""
    if not isinstance(payload, dict):
        return {}, {prefix or "body": f"must be a JSON object (got {_json_type(payload)})"}
    errors = too_many_keys(payload, len(KNOWN_FIELDS), prefix or "body")
    if errors:
        return {}, errors
    for name in payload:
        if name not in KNOWN_FIELDS:
            errors[_path(prefix, str(name))] = ("unknown field; the model's inputs are "
                                                "listed in /api/v1/openapi.json")
    row: dict[str, Any] = {}
    for column, accepts in ACCEPTS:
        value = payload.get(column.name)
        if accepts(value):  # the common case: one cheap test, no message built
            row[column.name] = value
            continue
        if value is None:
            if column.required:
                errors[_path(prefix, column.name)] = f"is required; {describe(column)}"
            continue  # an optional (protected) field may be left out or null
        problem = check_value(column, value)
        if problem:
            errors[_path(prefix, column.name)] = problem
        else:
            row[column.name] = value
    return row, errors


class ScoringRequest(NamedTuple):
    """A valid scoring request: its rows, whether it was a batch, and the rows field by
    field when validation read them so (a clean batch; None otherwise)."""

    rows: list[dict[str, Any]]
    batch: bool
    columns: dict[str, list[Any]] | None = None


def validate_request(payload: Any, max_batch_size: int) -> ScoringRequest:
    """All rows of a scoring request and whether it was a batch; ValidationFailed otherwise."""
    if isinstance(payload, dict) and BATCH_KEY in payload:
        return _validate_batch(payload, max_batch_size)
    if not isinstance(payload, dict):
        raise ValidationFailed({"body": "must be a JSON object: one applicant, or "
                                        f"{{\"{BATCH_KEY}\": [applicants]}} "
                                        f"(got {_json_type(payload)})"})
    row, errors = validate_applicant(payload)
    if errors:
        raise ValidationFailed(errors)
    return ScoringRequest([row], batch=False)


def _validate_batch(payload: dict[str, Any], max_batch_size: int) -> ScoringRequest:
    errors = too_many_keys(payload, 1, "body") or {
        str(name): f"unknown field; a batch holds only \"{BATCH_KEY}\""
        for name in payload if name != BATCH_KEY}
    instances = payload[BATCH_KEY]
    if not isinstance(instances, list):
        errors[BATCH_KEY] = f"must be an array of applicants (got {_json_type(instances)})"
    elif not instances:
        errors[BATCH_KEY] = "must hold at least one applicant"
    elif len(instances) > max_batch_size:
        errors[BATCH_KEY] = (f"must hold at most {max_batch_size} applicants "
                             f"(got {len(instances)})")
    if errors:
        raise ValidationFailed(errors)
    columns = batch_columns(instances)
    if columns is not None:
        return ScoringRequest(instances, batch=True, columns=columns)
    rows = []
    for index, item in enumerate(instances):
        row, problems = validate_applicant(item, f"{BATCH_KEY}[{index}]")
        errors.update(problems)
        rows.append(row)
    if errors:
        raise ValidationFailed(errors)
    return ScoringRequest(rows, batch=True)


FEEDBACK_FIELDS = ("request_id", "outcome")


def outcome_values() -> tuple[str, ...]:
    """The true outcomes a feedback record may report: the target's categories."""
    return COLUMNS_BY_NAME[TARGET].categories


def validate_feedback(payload: Any) -> dict[str, str]:
    """A feedback record {"request_id", "outcome"}; ValidationFailed naming bad fields."""
    if not isinstance(payload, dict):
        raise ValidationFailed({"body": f"must be a JSON object (got {_json_type(payload)})"})
    crowded = too_many_keys(payload, len(FEEDBACK_FIELDS), "body")
    if crowded:
        raise ValidationFailed(crowded)
    errors = {str(name): "unknown field" for name in payload if name not in FEEDBACK_FIELDS}
    request_id = payload.get("request_id")
    if not isinstance(request_id, str) or not is_sane(request_id):
        errors["request_id"] = ("is required: the request_id of a prediction (letters, "
                                "digits, '.', '_', ':', '-'; at most 128)")
    outcome = payload.get("outcome")
    if outcome not in outcome_values() or not isinstance(outcome, str):
        errors["outcome"] = "must be one of " + ", ".join(f"'{v}'" for v in outcome_values())
    if errors:
        raise ValidationFailed(errors)
    return {"request_id": request_id, "outcome": outcome}  # type: ignore[dict-item]
