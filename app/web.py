"""The HTML pages for end users: the application form and its result.

The form is generated from `training.schema` and checked by the same validator as the
API; a bad submission re-renders the form with a message at each bad field.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, g, render_template, request

from app.errors import ApiError
from app.model_holder import MODEL_ARM_HEADER, MODEL_VERSION_HEADER
from app.request_id import new_request_id
from app.scoring import score_rows
from app.service import service
from app.validation import ValidationFailed, describe, validate_request
from training.explain import top_factors
from training.schema import COLUMNS_BY_NAME, FEATURES, PROTECTED, Column

bp = Blueprint("web", __name__)

# ASCII digits only, like the API's JSON: Python's \d and int() also take other scripts'
# digits ("١٢", "１２"), which the API would refuse.
INTEGER = re.compile(r"[+-]?[0-9]{1,9}")


def form_payload(form: dict[str, str]) -> dict[str, Any]:
    """The schema's fields of a submitted form, typed: blanks left out, whole numbers as int."""
    payload: dict[str, Any] = {}
    for column in (*FEATURES, *PROTECTED):
        raw = (form.get(column.name) or "").strip()
        if not raw:
            continue
        payload[column.name] = int(raw) if column.is_numeric and INTEGER.fullmatch(raw) else raw
    return payload


def form_messages(fields: dict[str, str], payload: dict[str, Any]) -> dict[str, str]:
    """The validator's problems, phrased for a person filling in the form."""
    messages = {}
    for name, problem in fields.items():
        column = COLUMNS_BY_NAME.get(name)
        if column is None:
            messages[name] = problem
        elif name not in payload:
            messages[name] = ("Please fill in this field." if column.is_numeric
                              else "Please choose an option.")
        elif column.is_numeric:
            messages[name] = f"Enter a whole number from {_hint(column)}."
        else:
            messages[name] = "Please choose one of the listed options."
    return messages


def _render_form(values: dict[str, Any], errors: dict[str, str], status: int = 200) -> Any:
    model = service().holder.model
    return render_template("form.html", features=FEATURES, protected=PROTECTED,
                           values=values, errors=errors, describe=describe,
                           hint=_hint, model=model), status


def _hint(column: Column) -> str:
    """The short hint under a number input: its range and unit."""
    return f"{column.minimum:,}–{column.maximum:,} {column.unit}".strip()


def display_value(name: str, value: Any) -> str:
    """A value as a person reads it: numbers grouped with their unit, labels capitalised."""
    column = COLUMNS_BY_NAME[name]
    if column.is_numeric:
        return f"{value:,} {column.unit}".strip()
    text = str(value)
    return text[:1].upper() + text[1:]


@bp.get("/")
def form() -> Any:
    """The application form; `?example=1` fills it with a typical applicant."""
    values: dict[str, Any] = {}
    model = service().holder.model
    if request.args.get("example") and model is not None:
        from app.openapi import example_applicant
        values = example_applicant(model.card.get("reference"))
    return _render_form(values, {})


@bp.post("/")
def submit() -> Any:
    """Score a submitted form; show the result, or the form again with messages."""
    values = {name: value for name, value in request.form.items()}
    payload = form_payload(values)
    try:
        rows = validate_request(payload, max_batch_size=1).rows
    except ValidationFailed as error:
        return _render_form(values, form_messages(error.fields, payload), 422)
    try:
        model, scored = score_rows(service(), rows, new_request_id(), batch=False,
                                   trace_id=g.get("request_id"))
    except ApiError as error:
        return render_template("error.html", status=error.status, title="Service unavailable",
                               message=error.message), error.status
    result = scored[0]
    factors = top_factors(model, rows[0])
    return render_template("result.html", result=result, factors=factors, model=model,
                           columns=COLUMNS_BY_NAME, show=display_value,
                           percent=result.probability_bad * 100,
                           threshold_percent=model.threshold * 100), \
        200, {MODEL_VERSION_HEADER: model.version, MODEL_ARM_HEADER: scored.arm}
