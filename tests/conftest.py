"""Fixtures shared by every test kind: the data, a model trained in a temp dir, a registry."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.session_cache import reuse_or_make
from training.artifact import LoadedModel, load_artifact
from training.config import TrainingConfig
from training.registry import Registry
from training.tracking import DATABASE_FILE
from training.train import build_model

ROOT = Path(__file__).resolve().parent.parent
DATA_FILE = ROOT / "data" / "credit.csv"


@pytest.fixture(scope="session")
def data_file() -> Path:
    """The real credit data set shipped with the repository."""
    return DATA_FILE


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded MLflow store holding its schema and nothing else, made once: a test copies
    it (milliseconds) instead of creating its own (seconds of schema migrations)."""
    from mlflow.tracking import MlflowClient  # installed for training (requirements-training)

    directory = tmp_path_factory.mktemp("empty-mlruns")
    reuse_or_make("empty-mlflow-store", directory, lambda target: MlflowClient(
        f"sqlite:///{target / DATABASE_FILE}").search_experiments())
    return directory


def fresh_store(empty_store: Path, directory: Path) -> Path:
    """A store of its own at `directory`, copied from the empty one."""
    shutil.copytree(empty_store, directory)
    return directory


@pytest.fixture(scope="session", autouse=True)
def session_store(tmp_path_factory: pytest.TempPathFactory, empty_store: Path
                  ) -> Iterator[Path]:
    """The embedded store of session- and module-scoped fixtures (TRAINING_TRACKING_DIR, for
    the CLI in subprocesses too): never the repository's mlruns/, nor a server that the
    developer's MLFLOW_TRACKING_URI names."""
    directory = fresh_store(empty_store, tmp_path_factory.mktemp("mlruns") / "store")
    names = ("TRAINING_TRACKING_DIR", "MLFLOW_TRACKING_URI")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["TRAINING_TRACKING_DIR"] = str(directory)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    repository_store = ROOT / "mlruns"
    existed = repository_store.exists()
    yield directory
    # A CLI run with a hand-built environment falls back to mlruns/ and shares its registry
    # with every later run: name the leak instead of letting tests depend on it.
    assert existed or not repository_store.exists(), (
        f"a test wrote to {repository_store}: pass TRAINING_TRACKING_DIR to its subprocess")
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def tracking_dir(empty_store: Path, session_store: Path,
                 tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own embedded store: the registry of record lives there (the production
    alias), so one test's promotions are never another's champion."""
    directory = fresh_store(empty_store, tmp_path_factory.mktemp("mlruns") / "store")
    monkeypatch.setenv("TRAINING_TRACKING_DIR", str(directory))
    return directory


@pytest.fixture(scope="session")
def training_config(tmp_path_factory: pytest.TempPathFactory,
                    empty_store: Path) -> TrainingConfig:
    """The default training config, with registry, reports and tracking in temp dirs."""
    base = tmp_path_factory.mktemp("training")
    return TrainingConfig(data_path=DATA_FILE, registry_dir=base / "registry",
                          reports_dir=base / "reports",
                          tracking_dir=fresh_store(empty_store, base / "mlruns"))


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory,
                      training_config: TrainingConfig) -> Path:
    """A model trained once per session with the real config, as an artifact directory
    (once per mutation run when the mutant cannot change it: tests/session_cache.py)."""
    directory = tmp_path_factory.mktemp("model") / "artifact"
    reuse_or_make("trained-model", directory,
                  lambda target: build_model(DATA_FILE, target, training_config))
    return directory


@pytest.fixture(scope="session")
def trained_model(trained_model_dir: Path) -> LoadedModel:
    """The session's trained model, loaded and verified."""
    return load_artifact(trained_model_dir)


@pytest.fixture(scope="session")
def promoted_registry_template(tmp_path_factory: pytest.TempPathFactory,
                               trained_model_dir: Path) -> Path:
    """A registry whose production model is the session's trained model, made once: register
    and promote each verify the model, which was most of an API test's set-up."""
    directory = tmp_path_factory.mktemp("promoted") / "registry"

    def promote_trained(target: Path) -> None:
        registry = Registry(target)
        registry.promote(registry.register(trained_model_dir), reason="test fixture")

    reuse_or_make("promoted-registry", directory, promote_trained, made_from=("trained-model",))
    return directory


@pytest.fixture
def promoted_registry(tmp_path: Path, promoted_registry_template: Path) -> Path:
    """A fresh registry directory whose production model is the session's trained model."""
    return Path(shutil.copytree(promoted_registry_template, tmp_path / "registry"))


@pytest.fixture
def artifact_copy(tmp_path: Path, trained_model_dir: Path) -> Path:
    """A writable copy of the trained artifact, for tests that tamper with it."""
    return Path(shutil.copytree(trained_model_dir, tmp_path / "artifact-copy"))
