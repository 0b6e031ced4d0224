"""The model artifact: one fitted Pipeline in `model.joblib` beside its card `model.json`.

Bytes are checked against the card's sha256 before anything is unpickled, and a card built
by another scikit-learn version is refused: unpickling across versions is unsupported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn

from training.fast_scorer import FAST, PIPELINE, Columns, FastScorer, FastScorerRefused, \
    derive_fast_scorer

logger = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
CARD_FILE = "model.json"
APPROVE = "approve"
DECLINE = "decline"


class ModelIntegrityError(Exception):
    """An artifact that must not be loaded: missing, altered, or built for other libraries."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class LoadedModel:
    """A verified pipeline with its card, and the fast scorer verified against it, if any."""

    pipeline: Any
    card: dict[str, Any]
    fast_scorer: FastScorer | None = None
    fast_scorer_refusal: str = ""  # why the Pipeline scores requests, when it does

    @property
    def scoring_path(self) -> str:
        """Which path scores requests: 'fast' or 'pipeline'."""
        return FAST if self.fast_scorer is not None else PIPELINE

    @property
    def version(self) -> str:
        """The model's registry version (or 'unregistered')."""
        return str(self.card.get("version", "unregistered"))

    @property
    def threshold(self) -> float:
        """Probability of bad risk at and above which an application is declined."""
        return float(self.card["threshold"])

    def predict_proba_bad(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of a bad credit risk for each row of `frame`."""
        classes = list(self.pipeline.classes_)
        return self.pipeline.predict_proba(frame)[:, classes.index(self.card["positive_label"])]

    def predict_proba_bad_rows(self, rows: Sequence[Mapping[str, Any]],
                               columns: Columns | None = None) -> np.ndarray:
        """Probability of a bad credit risk for validated applicant dicts (the request path):
        the verified fast scorer when there is one, else the Pipeline. `columns`: the same
        rows field by field, when the caller has read them (a batch's validation does)."""
        if self.fast_scorer is not None:
            return self.fast_scorer.predict_proba_bad(rows, columns)
        return self.predict_proba_bad(pd.DataFrame(list(rows), columns=self.card["features"]))

    def decide(self, probabilities: np.ndarray) -> list[str]:
        """Turn probabilities of bad risk into decisions with the card's threshold."""
        threshold = self.threshold  # once, not per row; Python floats compare fastest
        values = np.asarray(probabilities, dtype=np.float64).tolist()
        return [DECLINE if p >= threshold else APPROVE for p in values]


def write_card(directory: Path, card: dict[str, Any]) -> None:
    """Write `model.json` atomically (temp file, then rename)."""
    atomic_write(directory / CARD_FILE, json.dumps(card, indent=2, sort_keys=True) + "\n")


def save_artifact(directory: Path, pipeline: Any, card: dict[str, Any]) -> dict[str, Any]:
    """Write the pipeline and its card into `directory`; return the card with its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    joblib.dump(pipeline, model_path)
    card = {**card, "artifact_sha256": sha256_of(model_path), "artifact_file": MODEL_FILE}
    write_card(directory, card)
    return card


def read_card(directory: Path) -> dict[str, Any]:
    """Read `model.json` from an artifact directory."""
    path = directory / CARD_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelIntegrityError(f"{path}: model card is missing") from None
    except json.JSONDecodeError as error:
        raise ModelIntegrityError(f"{path}: model card is not valid JSON ({error})") from None


def load_artifact(directory: Path) -> LoadedModel:
    """Load a pipeline only after its sha256 and library versions match its card."""
    card = read_card(directory)
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ModelIntegrityError(f"{model_path}: model file is missing")
    expected = card.get("artifact_sha256")
    actual = sha256_of(model_path)
    if expected != actual:
        raise ModelIntegrityError(
            f"{model_path}: sha256 {actual} does not match the card's {expected}")
    built_with = card.get("environment", {}).get("scikit_learn")
    if built_with != sklearn.__version__:
        raise ModelIntegrityError(
            f"{model_path}: built with scikit-learn {built_with}, "
            f"this environment has {sklearn.__version__}")
    return with_fast_scorer(LoadedModel(pipeline=joblib.load(model_path), card=card))


def with_fast_scorer(model: LoadedModel) -> LoadedModel:
    """The model with a fast scorer that agrees with its Pipeline, or with the reason why
    the Pipeline itself will score (logged)."""
    try:
        scorer = derive_fast_scorer(model.pipeline, model.card)
    except FastScorerRefused as error:
        logger.warning("model %s: scoring with the scikit-learn Pipeline, no fast scorer: %s",
                       model.version, error)
        return LoadedModel(model.pipeline, model.card, fast_scorer_refusal=str(error))
    # Debug only: the CLI prints JSON on stdout, where its log lines go too.
    logger.debug("model %s: scoring with the fast %s scorer (agrees with the Pipeline)",
                 model.version, scorer.family)
    return LoadedModel(model.pipeline, model.card, fast_scorer=scorer)


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` so that readers see the old or the new file, never half."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as temp:
            temp.write(text)
            temp.flush()
            os.fsync(temp.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
