"""Fixtures shared by every test kind: the data, a model trained in a temp dir, a registry."""

from __future__ import annotations

import shutil
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


@pytest.fixture(scope="session")
def training_config(tmp_path_factory: pytest.TempPathFactory) -> TrainingConfig:
    """The default training config, with registry and reports in a temp dir."""
    base = tmp_path_factory.mktemp("training")
    return TrainingConfig(data_path=DATA_FILE, registry_dir=base / "registry",
                          reports_dir=base / "reports")


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
