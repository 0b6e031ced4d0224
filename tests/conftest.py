"""Fixtures shared by every test kind: the data, a model trained in a temp dir, a registry."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from training.artifact import LoadedModel, load_artifact
from training.config import TrainingConfig
from training.registry import Registry
from training.train import build_model

ROOT = Path(__file__).resolve().parent.parent
DATA_FILE = ROOT / "data" / "credit.csv"


@pytest.fixture(scope="session")
def data_file() -> Path:
    """The real credit data set shipped with the repository."""
    return DATA_FILE


@pytest.fixture(scope="session", autouse=True)
def tracking_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One embedded MLflow store for the session's training runs, the CLI's in subprocesses
    included (TRAINING_TRACKING_DIR), never the repository's mlruns/ nor a server that the
    developer's MLFLOW_TRACKING_URI names. One per session: creating a store takes seconds."""
    directory = tmp_path_factory.mktemp("mlruns")
    names = ("TRAINING_TRACKING_DIR", "MLFLOW_TRACKING_URI")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["TRAINING_TRACKING_DIR"] = str(directory)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield directory
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def training_config(tmp_path_factory: pytest.TempPathFactory,
                    tracking_dir: Path) -> TrainingConfig:
    """The default training config, with registry, reports and tracking in temp dirs."""
    base = tmp_path_factory.mktemp("training")
    return TrainingConfig(data_path=DATA_FILE, registry_dir=base / "registry",
                          reports_dir=base / "reports", tracking_dir=tracking_dir)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory,
                      training_config: TrainingConfig) -> Path:
    """A model trained once per session with the real config, as an artifact directory."""
    directory = tmp_path_factory.mktemp("model") / "artifact"
    build_model(DATA_FILE, directory, training_config)
    return directory


@pytest.fixture(scope="session")
def trained_model(trained_model_dir: Path) -> LoadedModel:
    """The session's trained model, loaded and verified."""
    return load_artifact(trained_model_dir)


@pytest.fixture
def promoted_registry(tmp_path: Path, trained_model_dir: Path) -> Path:
    """A fresh registry directory whose production model is the session's trained model."""
    registry = Registry(tmp_path / "registry")
    registry.promote(registry.register(trained_model_dir), reason="test fixture")
    return registry.root


@pytest.fixture
def artifact_copy(tmp_path: Path, trained_model_dir: Path) -> Path:
    """A writable copy of the trained artifact, for tests that tamper with it."""
    return Path(shutil.copytree(trained_model_dir, tmp_path / "artifact-copy"))
