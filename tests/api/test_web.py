"""The HTML form and result page for end users."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient

from training.artifact import LoadedModel
from training.explain import top_factors
from training.schema import FEATURES, INPUTS, PROTECTED


def form_data(applicant: dict[str, Any]) -> dict[str, str]:
    """An applicant as a browser submits it: every value a string."""
    return {name: str(value) for name, value in applicant.items()}


def text(response: Any) -> str:
    """The response's HTML with entities decoded."""
    return unescape(response.get_data(as_text=True))


def test_form_renders_a_labelled_control_for_every_schema_column(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = text(response)
    for column in INPUTS:
        assert f'<label for="f-{column.name}">' in page
        assert column.label in page and column.description in page
        if column.is_numeric:
            assert re.search(rf'<input type="number" id="f-{column.name}" name="{column.name}"',
                             page)
            assert f'min="{column.minimum}" max="{column.maximum}"' in page
        else:
            select = re.search(rf'<select id="f-{column.name}".*?</select>', page, re.S)
            assert select, column.name
            options = re.findall(r'<option value="([^"]*)"', select.group(0))
            assert options == [""] + list(column.categories)


def test_form_marks_protected_fields_optional_and_not_used_for_scoring(
        client: FlaskClient) -> None:
    page = text(client.get("/"))
    assert "not used for scoring" in page
    for column in PROTECTED:
        tag = re.search(rf'<select id="f-{column.name}"[^>]*>', page, re.S).group(0)
        assert "required" not in tag
    for column in FEATURES:
        tag = re.search(rf'<(select|input)[^>]*id="f-{column.name}"[^>]*>', page, re.S).group(0)
        assert "required" in tag


def test_form_can_be_prefilled_with_a_typical_applicant(client: FlaskClient,
                                                        applicant: dict[str, Any]) -> None:
    page = text(client.get("/?example=1"))
    for name, value in applicant.items():
        if isinstance(value, int):
            assert f'id="f-{name}"' in page and f'value="{value}"' in page
        else:
            assert f'<option value="{value}" selected>' in page


def test_form_post_shows_risk_decision_factors_and_version(
        client: FlaskClient, applicant: dict[str, Any], trained_model: LoadedModel) -> None:
    risky = {**applicant, "duration": 60, "amount": 15000, "status": "no checking account"}
    response = client.post("/", data=form_data(risky))
    assert response.status_code == 200
    page = text(response)
    api = client.post("/api/v1/predict", json=risky).get_json()
    prediction = api["predictions"][0]
    assert f"{prediction['probability_bad'] * 100:.1f}%" in page
    assert f"Recommendation: <span class=\"decision\">{prediction['decision'].capitalize()}" \
        in page
    assert api["model_version"] in page
    factors = top_factors(trained_model, risky)
    assert factors
    for factor in factors:
        assert factor["label"] in page
    assert "Raises the risk" in page or "Lowers the risk" in page


def test_form_post_is_logged_like_an_api_prediction(
        client: FlaskClient, applicant: dict[str, Any], prediction_log: Any) -> None:
    page = client.post("/", data=form_data(applicant)).get_data(as_text=True)
    (line,) = prediction_log.read_text().splitlines()
    assert '"inputs"' in line and '"model_version"' in line
    # The page's reference is the logged request id: the one feedback on this case names.
    logged = json.loads(line)["request_id"]
    assert f'<code class="request-id">{logged}</code>' in page


@pytest.mark.parametrize(("field", "value", "message"), [
    ("amount", "12.5", "Enter a whole number from 100–100,000 DM."),
    ("amount", "50", "Enter a whole number from 100–100,000 DM."),
    ("age", "abc", "Enter a whole number from 18–100 years."),
    ("duration", "", "Please fill in this field."),
    ("purpose", "", "Please choose an option."),
    ("purpose", "yacht", "Please choose one of the listed options."),
    ("foreign_worker", "martian", "Please choose one of the listed options."),
])
def test_form_post_with_bad_input_re_renders_with_a_message_at_the_field(
        client: FlaskClient, applicant: dict[str, Any], field: str, value: str,
        message: str) -> None:
    data = {**form_data(applicant), field: value}
    response = client.post("/", data=data)
    assert response.status_code == 422
    page = text(response)
    assert re.search(rf'<p class="error-text" id="e-{field}">{re.escape(message)}</p>', page)
    assert 'aria-invalid="true"' in page and "Please correct 1 field" in page
    kept = next(n for n in ("age", "duration") if n != field)
    assert f'value="{applicant[kept]}"' in page, "the other answers are kept"


@pytest.mark.parametrize("digits", ["\u0663\u0665", "\uff13\uff15", "\u0969\u096b"],
                         ids=["arabic-indic", "fullwidth", "devanagari"])
def test_form_accepts_only_ascii_digits_like_the_api(
        client: FlaskClient, applicant: dict[str, Any], prediction_log: Any,
        digits: str) -> None:
    """int() reads '٣٥' as 35; the API refuses it, so the form must too."""
    response = client.post("/", data={**form_data(applicant), "age": digits})
    assert response.status_code == 422
    assert re.search(r'<p class="error-text" id="e-age">Enter a whole number', text(response))
    assert not prediction_log.exists() or not prediction_log.read_text()


def test_form_ignores_non_schema_form_fields(client: FlaskClient,
                                             applicant: dict[str, Any]) -> None:
    response = client.post("/", data={**form_data(applicant), "submit": "Assess"})
    assert response.status_code == 200


def test_form_without_a_model_shows_an_html_error(make_app: Any, tmp_path: Any,
                                                  applicant: dict[str, Any]) -> None:
    client = make_app(MODEL_REGISTRY=str(tmp_path / "empty")).test_client()
    response = client.post("/", data=form_data(applicant))
    assert response.status_code == 503 and response.mimetype == "text/html"


def test_stylesheet_is_served(client: FlaskClient) -> None:
    response = client.get("/static/style.css")
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert 'href="/static/style.css"' in text(client.get("/"))


def test_unknown_page_is_html_for_browsers_and_json_for_api_clients(
        client: FlaskClient) -> None:
    browser = client.get("/nowhere", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.status_code == 404 and browser.mimetype == "text/html"
    api_client = client.get("/nowhere", headers={"Accept": "*/*"})
    assert api_client.status_code == 404 and api_client.get_json()["error"] == "not_found"
