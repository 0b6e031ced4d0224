"""The one declaration of every column of the credit data set.

Data validation, the training loader, the API validator, the HTML form, the OpenAPI document
and the drift monitor all read this module; nothing else lists the columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    """How a column's values are typed."""

    CATEGORICAL = "categorical"
    INTEGER = "integer"


class Role(str, Enum):
    """What a column is for."""

    FEATURE = "feature"  # a model input
    PROTECTED = "protected"  # kept for fairness reporting, never a model input
    TARGET = "target"  # the label


@dataclass(frozen=True)
class Column:
    """One column: its type, domain, role and human description."""

    name: str
    kind: Kind
    role: Role
    label: str
    description: str
    categories: tuple[str, ...] = ()  # for categorical columns, in their natural order
    minimum: int | None = None  # inclusive bounds for integer columns
    maximum: int | None = None
    unit: str = ""

    @property
    def required(self) -> bool:
        """Whether a scoring request must carry this column (model inputs only)."""
        return self.role is Role.FEATURE

    @property
    def is_numeric(self) -> bool:
        """Whether the column holds numbers rather than labels."""
        return self.kind is Kind.INTEGER


def _categorical(name: str, label: str, description: str, categories: tuple[str, ...],
                 role: Role = Role.FEATURE) -> Column:
    return Column(name=name, kind=Kind.CATEGORICAL, role=role, label=label,
                  description=description, categories=categories)


def _integer(name: str, label: str, description: str, minimum: int, maximum: int,
             unit: str) -> Column:
    return Column(name=name, kind=Kind.INTEGER, role=Role.FEATURE, label=label,
                  description=description, minimum=minimum, maximum=maximum, unit=unit)


# Numeric bounds are the plausible domain of a consumer credit application, wider than the
# observed 1973-1975 range (duration 4-72, amount 250-18,424, age 19-75) so that a valid
# applicant is never refused, yet tight enough to catch unit mistakes (cents, days).
COLUMNS: tuple[Column, ...] = (
    _categorical("status", "Checking account", "Status of the debtor's checking account.",
                 ("no checking account", "< 0 DM", "0 to < 200 DM",
                  ">= 200 DM or salary for >= 1 year")),
    _integer("duration", "Duration", "Credit duration in months.", 1, 120, "months"),
    _categorical("credit_history", "Credit history", "History of compliance with previous or "
                 "concurrent credit contracts.",
                 ("delay in paying off in the past", "critical account or other credits elsewhere",
                  "no credits taken or all credits paid back duly",
                  "existing credits paid back duly till now",
                  "all credits at this bank paid back duly")),
    _categorical("purpose", "Purpose", "What the credit is for.",
                 ("others", "car (new)", "car (used)", "furniture/equipment", "radio/television",
                  "domestic appliances", "repairs", "vacation", "retraining", "business")),
    _integer("amount", "Amount", "Credit amount in Deutsche Mark.", 100, 100_000, "DM"),
    _categorical("savings", "Savings", "Savings account or bonds of the debtor.",
                 ("unknown or no savings account", "< 100 DM", "100 to < 500 DM",
                  "500 to < 1000 DM", ">= 1000 DM")),
    _categorical("employment_duration", "Employment", "Time with the current employer.",
                 ("unemployed", "< 1 year", "1 to < 4 years", "4 to < 7 years", ">= 7 years")),
    _categorical("installment_rate", "Instalment rate", "Credit instalments as a share of "
                 "disposable income.", (">= 35%", "25 to < 35%", "20 to < 25%", "< 20%")),
    _categorical("personal_status_sex", "Personal status and sex", "Combined marital status "
                 "and sex, as coded by the bank.",
                 ("male: divorced/separated", "female: non-single or male: single",
                  "male: married/widowed", "female: single"), role=Role.PROTECTED),
    _categorical("other_debtors", "Other debtors", "Another debtor or a guarantor.",
                 ("none", "co-applicant", "guarantor")),
    _categorical("present_residence", "Residence", "Time the debtor has lived in the present "
                 "residence.", ("< 1 year", "1 to < 4 years", "4 to < 7 years", ">= 7 years")),
    _categorical("property", "Property", "The debtor's most valuable property.",
                 ("unknown or no property", "car or other",
                  "building society savings or life insurance", "real estate")),
    _integer("age", "Age", "Age of the debtor in years.", 18, 100, "years"),
    _categorical("other_installment_plans", "Other instalment plans", "Instalment plans from "
                 "providers other than the bank.", ("bank", "stores", "none")),
    _categorical("housing", "Housing", "Type of housing.", ("for free", "rent", "own")),
    _categorical("number_credits", "Credits at this bank", "Number of credits at this bank, "
                 "including the current one.", ("1", "2-3", "4-5", ">= 6")),
    _categorical("job", "Job", "Quality of the debtor's job.",
                 ("unemployed or unskilled non-resident", "unskilled resident",
                  "skilled employee or official",
                  "manager, self-employed or highly qualified employee")),
    _categorical("people_liable", "Dependants", "Number of people who financially depend on "
                 "the debtor.", ("3 or more", "0 to 2")),
    _categorical("telephone", "Telephone", "Whether a landline is registered in the debtor's "
                 "name.", ("no", "yes")),
    _categorical("foreign_worker", "Foreign worker", "Whether the debtor is a foreign worker.",
                 ("yes", "no"), role=Role.PROTECTED),
    _categorical("credit_risk", "Credit risk", "Whether the credit contract was complied with "
                 "(good) or not (bad).", ("good", "bad"), role=Role.TARGET),
)

COLUMNS_BY_NAME: dict[str, Column] = {column.name: column for column in COLUMNS}
TARGET: str = next(column.name for column in COLUMNS if column.role is Role.TARGET)
POSITIVE_LABEL = "bad"  # the model predicts the probability of a bad credit risk
FEATURES: tuple[Column, ...] = tuple(c for c in COLUMNS if c.role is Role.FEATURE)
PROTECTED: tuple[Column, ...] = tuple(c for c in COLUMNS if c.role is Role.PROTECTED)
INPUTS: tuple[Column, ...] = tuple(c for c in COLUMNS if c.role is not Role.TARGET)


def column(name: str) -> Column:
    """Return the column called `name`, or raise KeyError naming it."""
    try:
        return COLUMNS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown column {name!r}") from None


def feature_names() -> list[str]:
    """Names of the model's input columns, in schema order."""
    return [c.name for c in FEATURES]


def numeric_feature_names() -> list[str]:
    """Names of the numeric model inputs, in schema order."""
    return [c.name for c in FEATURES if c.is_numeric]


def categorical_feature_names() -> list[str]:
    """Names of the categorical model inputs, in schema order."""
    return [c.name for c in FEATURES if not c.is_numeric]


def column_names() -> list[str]:
    """Names of every column of the data file, in schema order."""
    return [c.name for c in COLUMNS]
