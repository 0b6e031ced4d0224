"""The MLflow Model Registry as the registry of record, on the embedded store: versions, the
production alias, history as runs, and the local folder as a verified cache."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import DATA_FILE, fresh_store
from training import tracking
from training.artifact import ModelIntegrityError
from training.cli import main
from training.config import TrainingConfig
from training.mlflow_registry import PRODUCTION_ALIAS, VERSION_TAG, MlflowRegistry
from training.registry import Registry, RegistryError

# One family, one grid point: each model in seconds. The two grids give two models.
QUICK = {"TRAINING_MODEL_FAMILIES": "logistic_regression", "TRAINING_CV_FOLDS": "3"}
GRIDS = ("0.1", "1.0")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, empty_store: Path
          ) -> Iterator[dict[str, Any]]:
    """A store of its own with two gated models: the first promoted, the second promoted
    over it (ties promote), both trained and gated through the CLI as `make train` does."""
    base = tmp_path_factory.mktemp("registry-of-record")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**QUICK, "TRAINING_TRACKING_DIR": str(
                                fresh_store(empty_store, base / "mlruns")),
                            "MODEL_REGISTRY": str(base / "cache"),
                            "REPORTS_DIR": str(base / "reports")}.items():
            patch.setenv(name, value)
        statuses = []
        for number, grid in enumerate(GRIDS):
            patch.setenv("TRAINING_LOGISTIC_C_GRID", grid)
            output = base / f"model-{number}"
            statuses.append(main(["train", "--data", str(DATA_FILE), "--output", str(output)]))
            # Any challenger at least as good as the champion is promoted.
            patch.setenv("TRAINING_CHAMPION_TOLERANCE", "1")
            statuses.append(main(["gate", "--candidate", str(output), "--data",
                                  str(DATA_FILE)]))
        patch.delenv("TRAINING_LOGISTIC_C_GRID")
        config = TrainingConfig.from_env()
        yield {"config": config, "statuses": statuses, "base": base,
               "client": MlflowClient(tracking.tracking_uri(config))}


def alias_version(client: MlflowClient) -> str:
    """The registry name of the version the production alias names, read from MLflow."""
    model_version = client.get_model_version_by_alias(tracking.REGISTERED_MODEL,
                                                      PRODUCTION_ALIAS)
    return model_version.tags[VERSION_TAG]


def test_gated_models_are_versions_with_their_gate_and_metrics(store: dict[str, Any]) -> None:
    assert store["statuses"] == [0, 0, 0, 0]
    registry = tracking.open_registry(store["config"])
    assert isinstance(registry, MlflowRegistry)
    first, second = registry.versions()
    tags = store["client"].search_model_versions(
        f"name = '{tracking.REGISTERED_MODEL}'")[0].tags
    assert {VERSION_TAG, "artifact_sha256", "gate.decision", "holdout.roc_auc"} <= set(tags)
    card = registry.card(second)
    by_name = {item.tags[VERSION_TAG]: item for item in store["client"].search_model_versions(
        f"name = '{tracking.REGISTERED_MODEL}'")}
    assert by_name[second].tags["artifact_sha256"] == card["artifact_sha256"]
    assert by_name[second].tags["gate.decision"] == "promoted"
    assert float(by_name[second].tags["holdout.roc_auc"]) == pytest.approx(
        card["metrics"]["roc_auc"], rel=1e-5)
    assert first != second


def test_the_alias_is_the_truth_and_the_cache_pointer_follows_it(
        store: dict[str, Any]) -> None:
    registry = tracking.open_registry(store["config"])
    first, second = registry.versions()
    assert alias_version(store["client"]) == second == registry.production_version()
    cache = Registry(store["config"].registry_dir)
    assert cache.production_version() == second
    # Moved in MLflow by someone else: the registry answers the alias, not the cache.
    number = {item.tags[VERSION_TAG]: item.version for item in
              store["client"].search_model_versions(
                  f"name = '{tracking.REGISTERED_MODEL}'")}[first]
    store["client"].set_registered_model_alias(tracking.REGISTERED_MODEL, PRODUCTION_ALIAS,
                                               number)
    try:
        assert registry.production_version() == first
        assert registry.load_production().version == first
    finally:
        registry.promote(second, reason="put back by the test")
    assert cache.production_version() == second


def test_rollback_and_promote_move_the_alias_and_history_is_runs(
        store: dict[str, Any], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI on the module's store (each test otherwise gets a store of its own).
    monkeypatch.setenv("TRAINING_TRACKING_DIR", str(store["config"].tracking_dir))
    registry = tracking.open_registry(store["config"])
    first, second = registry.versions()
    assert main(["rollback", "--reason", "bad week"]) == 0
    assert alias_version(store["client"]) == first == Registry(
        store["config"].registry_dir).production_version()
    capsys.readouterr()
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert f"* {first}" in listing and f"  {second}" in listing
    assert main(["promote", second, "--reason", "fixed"]) == 0
    assert alias_version(store["client"]) == second
    moves = [(event["action"], event["version"]) for event in registry.history()]
    assert moves[-2:] == [("rollback", first), ("promote", second)]
    assert registry.history()[-2]["reason"] == "bad week"


def test_a_version_missing_from_the_cache_is_downloaded_and_verified(
        store: dict[str, Any]) -> None:
    registry = tracking.open_registry(store["config"])
    first, _ = registry.versions()
    shutil.rmtree(store["config"].registry_dir / first)
    assert registry.load_verified(first).card["artifact_sha256"] == registry.card(first)[
        "artifact_sha256"]
    assert first in Registry(store["config"].registry_dir).versions()


def test_an_altered_artifact_in_the_store_is_never_cached_nor_loaded(
        store: dict[str, Any]) -> None:
    registry = tracking.open_registry(store["config"])
    first, _ = registry.versions()
    [stored] = [path for path in (store["base"] / "mlruns").rglob("model.joblib")
                if path.parent.name == first]
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes() + b"tampered")
    shutil.rmtree(store["config"].registry_dir / first)
    with pytest.raises(ModelIntegrityError, match="sha256"):
        registry.load(first)
    assert first not in Registry(store["config"].registry_dir).versions()


def test_an_unknown_version_is_a_registry_error_naming_it(store: dict[str, Any]) -> None:
    registry = tracking.open_registry(store["config"])
    with pytest.raises(RegistryError, match="no version 20000101T000000Z-deadbeef"):
        registry.promote("20000101T000000Z-deadbeef")


def test_a_store_without_the_model_adopts_what_the_local_folder_serves(
        tmp_path: Path, trained_model_dir: Path, tracking_dir: Path) -> None:
    folder = Registry(tmp_path / "registry")  # kept as a folder before, or seeded by an image
    serving = folder.register(trained_model_dir)
    folder.promote(serving, reason="before MLflow")
    config = TrainingConfig(registry_dir=folder.root, tracking_dir=tracking_dir)
    registry = tracking.open_registry(config)
    assert registry.production_version() == serving
    client = MlflowClient(tracking.tracking_uri(config))
    assert alias_version(client) == serving
    [adopted] = registry.history()
    assert (adopted["action"], adopted["version"]) == ("promote", serving)
    assert "adopted from the local registry" in adopted["reason"]


def test_tracking_off_keeps_the_local_folder_as_the_registry(tmp_path: Path) -> None:
    config = TrainingConfig(tracking="off", registry_dir=tmp_path / "registry")
    registry = tracking.open_registry(config)
    assert type(registry) is Registry and registry.root == tmp_path / "registry"
