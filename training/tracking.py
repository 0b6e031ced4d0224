"""Experiment tracking: where training runs and gate decisions are recorded, and whether.

Every `train`, `retrain` and image build is one MLflow run (training/mlflow_tracking.py does
the recording). This module only decides where: MLFLOW_TRACKING_URI when it is set (any
MLflow server or database), else the embedded store under `TrainingConfig.tracking_dir`, a
SQLite database and an artifact folder, no server needed. It imports nothing from MLflow, so
the commands that never train (`list`, `promote`, the service's start hook) run in the
runtime image, which does not install MLflow.

A tracking failure never loses a model: the store is reached before training starts (an
unreachable server stops the command at once, naming its URI), and the artifact is saved
before anything is recorded, so a store that fails afterwards leaves the model on disk and
the command exits 1 saying where it is. Tracking is off only when asked
(`TRAINING_TRACKING=off`): a model silently trained without its run would lose its lineage.
"""

from __future__ import annotations

import importlib
import os
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit
from typing import TYPE_CHECKING, Any, Protocol

from training.config import TrainingConfig
from training.registry import Registry

if TYPE_CHECKING:
    from training.gate import GateResult
    from training.mlflow_registry import MlflowRegistry

EXPERIMENT_NAME = "credit-risk"  # the project's name, shared by every run
REGISTERED_MODEL = EXPERIMENT_NAME  # and by the registry's one model
PRODUCTION_ALIAS = "production"  # the alias that names the version that serves
VERSION_TAG = "registry_version"  # a model version's name in the registry and its caches
TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"  # MLflow's own variable, read as MLflow does
DATABASE_FILE = "mlflow.db"
ARTIFACTS_FOLDER = "artifacts"
SETTINGS = ("on", "off")


class TrackingError(RuntimeError):
    """The tracking store could not be reached or could not record; names its URI."""


class TrainingRun(Protocol):
    """What the training commands record in their run."""

    def card_fields(self) -> dict[str, Any]:
        """Fields for the model card that point at this run."""

    def record_training(self, card: dict[str, Any], model_dir: Path) -> None:
        """Parameters, metrics, CV child runs, tags and artifacts of a trained model."""

    def record_floor(self, result: "GateResult", reports_dir: Path) -> None:
        """The build-time floor gate's decision and its reports."""


class UntrackedRun:
    """The run of a command with tracking turned off: records nothing."""

    def card_fields(self) -> dict[str, Any]:
        """No run: the card says tracking was off."""
        return {"tracking": {"enabled": False}}

    def record_training(self, card: dict[str, Any], model_dir: Path) -> None:
        """Nothing to record."""

    def record_floor(self, result: "GateResult", reports_dir: Path) -> None:
        """Nothing to record."""


def enabled(config: TrainingConfig) -> bool:
    """Whether runs are recorded; a setting other than on/off is refused."""
    if config.tracking not in SETTINGS:
        raise ValueError(f"TRAINING_TRACKING={config.tracking!r}: expected one of "
                         f"{', '.join(SETTINGS)}")
    return config.tracking == "on"


def tracking_uri(config: TrainingConfig) -> str:
    """MLFLOW_TRACKING_URI when set, else the embedded SQLite store under tracking_dir."""
    configured = os.environ.get(TRACKING_URI_VARIABLE, "").strip()
    if configured:
        return configured
    return f"sqlite:///{embedded_dir(config) / DATABASE_FILE}"


def embedded_dir(config: TrainingConfig) -> Path:
    """The embedded store's folder, absolute (runs record absolute artifact paths)."""
    return config.tracking_dir.resolve()


def artifact_location(config: TrainingConfig) -> str | None:
    """Where a new experiment keeps artifacts: the embedded folder, or the server's choice."""
    if os.environ.get(TRACKING_URI_VARIABLE, "").strip():
        return None
    return (embedded_dir(config) / ARTIFACTS_FOLDER).as_uri()


def training_run(config: TrainingConfig, trigger: str
                 ) -> AbstractContextManager[TrainingRun]:
    """The run a training command records into (`trigger`: train or retrain); the store
    is reached on entry, so an unreachable one fails before any training."""
    if not enabled(config):
        return nullcontext(UntrackedRun())
    return recorder().start_training_run(config, trigger)


def record_gate(card: dict[str, Any], result: "GateResult", reports_dir: Path,
                config: TrainingConfig) -> None:
    """Write the champion/challenger decision and both models' metrics to the challenger's
    run (a new run when its training run is not in this store)."""
    if not enabled(config):
        return
    recorder().record_gate(card, result, reports_dir, config)


def open_registry(config: TrainingConfig) -> "Registry | MlflowRegistry":
    """The registry of record: MLflow's (the local folder as its verified cache) when
    tracking is on, else the local folder alone."""
    if not enabled(config):
        return Registry(config.registry_dir)
    recorder()  # where MLflow is missing, this says so and how to turn tracking off
    registry_module = importlib.import_module("training.mlflow_registry")
    return registry_module.MlflowRegistry(config)


def check_reachable(config: TrainingConfig) -> None:
    """Fail now, naming the URI, when tracking is on and its store cannot be reached."""
    if not enabled(config):
        return
    recorder().experiment_id(config)


def shown_uri(uri: str) -> str:
    """The URI without a password, fit for logs and cards."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def recorder() -> ModuleType:
    """training.mlflow_tracking, imported on first use: MLflow is installed for training only
    (requirements-training.txt), so where it is missing tracking must be turned off."""
    try:
        return importlib.import_module("training.mlflow_tracking")
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith("mlflow"):
            raise
        raise TrackingError(f"tracking is on but MLflow is not installed ({error}): install "
                            "requirements-training.txt, or set TRAINING_TRACKING=off") from None
