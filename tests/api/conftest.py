"""API test fixtures: an app on a registry whose production model is the session's model."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.openapi import example_applicant
from training.artifact import LoadedModel

AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path, promoted_registry: Path) -> AppFactory:
    """Build apps on the promoted registry, logs in tmp_path; keyword args override config."""

    def build(**overrides: Any) -> Flask:
        config: dict[str, Any] = {
            "TESTING": True,
            "MODEL_REGISTRY": str(promoted_registry),
            "PREDICTION_LOG": str(tmp_path / "run" / "predictions.jsonl"),
            "FEEDBACK_LOG": str(tmp_path / "run" / "feedback.jsonl"),
            "MODEL_RELOAD_SECONDS": 0,  # follow the pointer on every request
        }
        config.update(overrides)
        return create_app(config)

    return build


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    """The service with the default settings and the trained model in production."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of `app`."""
    return app.test_client()


@pytest.fixture
def applicant(trained_model: LoadedModel) -> dict[str, Any]:
    """A valid applicant: the model's typical values (a fresh dict per test)."""
    return example_applicant(trained_model.card["reference"])


@pytest.fixture
def prediction_log(app: Flask) -> Path:
    """Where `app` appends its prediction lines."""
    return Path(app.config["PREDICTION_LOG"])


def metric_value(client: FlaskClient, sample: str) -> float | None:
    """The value of one sample line of /metrics (`name{labels}` exactly), None if absent."""
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for_metric(client: FlaskClient, sample: str, expected: Any,
                    deadline_seconds: float = 30.0) -> bool:
    """Whether the sample reaches `expected` before the deadline (for values a background
    thread publishes, such as drift)."""
    deadline = time.monotonic() + deadline_seconds
    while metric_value(client, sample) != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
