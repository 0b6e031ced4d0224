"""Canary versions for tests: a second name for the trained model, an inverted one (a
clearly worse model whose answers differ from production's), and a faulty one.

The faulty canary stands for a model with a bug that its build-time checks miss: it scores
the reference rows (so it passes `check_servable` and loads), and raises for applicants
older than FAULTY_ABOVE_AGE, as a broken encoding of a new feature would. It lives in the
`tests` package so that Gunicorn's workers (run from the repository root) can unpickle it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from training.artifact import load_artifact, save_artifact
from training.canary_release import CanaryRelease, new_release
from training.gate import PROMOTED
from training.registry import Registry

FAULTY_ABOVE_AGE = 60  # the reference rows' ages are the median, 19 and 75: 75 must score
CANARY_VERSION = "canary-twin"
FAULTY_VERSION = "canary-faulty"
INVERTED_VERSION = "canary-inverted"
GATED = {"gate": {"decision": PROMOTED, "reasons": ["test canary"], "champion": None}}


class FailsOnAges(BaseEstimator, TransformerMixin):
    """Passes rows through, but raises for ages in (above, 75): a bug the checks miss."""

    def __init__(self, above: int = FAULTY_ABOVE_AGE) -> None:
        self.above = above

    def fit(self, frame: pd.DataFrame, target: Any = None) -> "FailsOnAges":
        """Nothing to learn."""
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows unchanged, or ValueError when one is in the faulty age range."""
        ages = pd.to_numeric(frame["age"])
        if ((ages > self.above) & (ages < 75)).any():
            raise ValueError(f"cannot encode age above {self.above}")
        return frame


class Inverted(BaseEstimator):
    """The trained model with its probabilities swapped between the classes: a servable
    model that ranks applicants backwards (ROC AUC 1 - the original's)."""

    def __init__(self, model: Any = None) -> None:
        self.model = model

    @property
    def classes_(self) -> Any:
        """The wrapped model's classes."""
        return self.model.classes_

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        """The wrapped model's probabilities, columns reversed."""
        return self.model.predict_proba(frame)[:, ::-1]


def register_twin(registry: Registry, artifact_dir: Path,
                  version: str = CANARY_VERSION) -> str:
    """The trained model again, as a gated version under another name."""
    return registry.register(artifact_dir, version=version, card_updates=GATED)


def register_faulty(registry: Registry, artifact_dir: Path, work_dir: Path) -> str:
    """A gated version that fails on applicants older than FAULTY_ABOVE_AGE."""
    trained = load_artifact(artifact_dir)
    faulty = Pipeline([("fails_on_ages", FailsOnAges()), ("model", trained.pipeline)])
    return _register_variant(registry, artifact_dir, work_dir, faulty, FAULTY_VERSION)


def register_inverted(registry: Registry, artifact_dir: Path, work_dir: Path) -> str:
    """A gated version that answers every applicant with 1 - production's probability."""
    inverted = Inverted(load_artifact(artifact_dir).pipeline)
    return _register_variant(registry, artifact_dir, work_dir, inverted, INVERTED_VERSION)


def _register_variant(registry: Registry, artifact_dir: Path, work_dir: Path, pipeline: Any,
                      version: str) -> str:
    """Save `pipeline` with the trained model's card (its own sha256) and register it."""
    card = {key: value for key, value in load_artifact(artifact_dir).card.items()
            if key != "artifact_sha256"}
    target = work_dir / f"{version}-artifact"
    shutil.rmtree(target, ignore_errors=True)
    save_artifact(target, pipeline, card)
    return registry.register(target, version=version, card_updates=GATED)


def release(registry: Registry, version: str, mode: str = "canary", share: float = 0.2,
            max_error_rate: float = 0.01, max_latency_ms: float = 250.0) -> CanaryRelease:
    """Start a canary release of `version` in a file registry, as the follower would."""
    started = new_release(version, mode, share, max_error_rate, max_latency_ms, "test")
    registry.set_canary(started)
    return started
