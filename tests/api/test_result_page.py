"""The result page labels each main factor with the direction it moves the risk."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient

from training.artifact import LoadedModel
from training.explain import top_factors

FACTOR = re.compile(r'<li class="factor (?P<css>raises|lowers)">\s*'
                    r'<span class="factor-name">(?P<label>[^<]+)</span>.*?'
                    r'<span class="factor-effect">(?P<effect>[^<]+)</span>', re.S)


def shown_factors(page: str) -> dict[str, tuple[str, str]]:
    """Label -> (css class, effect text) of every factor on the result page."""
    return {m.group("label").strip(): (m.group("css"), " ".join(m.group("effect").split()))
            for m in FACTOR.finditer(unescape(page))}


@pytest.mark.parametrize("changes", [
    {"duration": 60, "amount": 15000, "status": "no checking account"},  # a risky applicant
    {"duration": 6, "amount": 500, "status": ">= 200 DM or salary for >= 1 year",
     "savings": ">= 1000 DM"},  # a safe one
], ids=["risky", "safe"])
def test_each_factor_says_raises_or_lowers_by_the_sign_of_its_effect(
        client: FlaskClient, applicant: dict[str, Any], trained_model: LoadedModel,
        changes: dict[str, Any]) -> None:
    person = {**applicant, **changes}
    response = client.post("/", data={name: str(value) for name, value in person.items()})
    assert response.status_code == 200
    shown = shown_factors(response.get_data(as_text=True))
    factors = top_factors(trained_model, person)
    assert factors and set(shown) == {factor["label"] for factor in factors}
    for factor in factors:
        css, effect = shown[factor["label"]]
        word = "Raises" if factor["effect"] > 0 else "Lowers"
        assert css == word.lower()
        assert effect == f"{word} the risk by {abs(factor['effect']) * 100:.1f} points"


def test_the_two_applicants_show_both_directions(
        client: FlaskClient, applicant: dict[str, Any], trained_model: LoadedModel) -> None:
    # The cases above would pass vacuously if every factor pointed one way.
    risky = top_factors(trained_model, {**applicant, "duration": 60, "amount": 15000,
                                        "status": "no checking account"})
    safe = top_factors(trained_model, {**applicant, "duration": 6, "amount": 500,
                                       "status": ">= 200 DM or salary for >= 1 year",
                                       "savings": ">= 1000 DM"})
    assert any(f["effect"] > 0 for f in risky) and any(f["effect"] < 0 for f in safe)
