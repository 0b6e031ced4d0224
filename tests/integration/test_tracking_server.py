"""Training and the gate against a real `mlflow server` process, as with MLFLOW_TRACKING_URI
pointing at a shared server; and what happens when that server is gone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient

from tests.conftest import DATA_FILE, ROOT
from tests.servers import Server, running_mlflow_server, stop_server
from training.follower_status import registry_status
from training.registry import Registry
from training.report_names import MLFLOW_RUN_FILE

pytestmark = pytest.mark.slow

# Two families with small grids: a real run with two child runs in well under a minute.
SMALL_TRAINING = {"TRAINING_MODEL_FAMILIES": "logistic_regression,gradient_boosting",
                  "TRAINING_LOGISTIC_C_GRID": "0.1", "TRAINING_BOOSTING_LEARNING_RATES": "0.1",
                  "TRAINING_BOOSTING_MAX_LEAF_NODES": "7", "TRAINING_BOOSTING_MAX_ITER": "30",
                  "TRAINING_CV_FOLDS": "3"}


def training_cli(server_url: str, work: Path, *arguments: str, **variables: str
                 ) -> subprocess.CompletedProcess[str]:
    """`python -m training ...` as `make train` runs it, tracking to the server. One quick
    try per request: a server that is gone must be reported now, not after minutes."""
    environment = {**os.environ, **SMALL_TRAINING, **variables,
                   "MLFLOW_TRACKING_URI": server_url,
                   "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
                   "REPORTS_DIR": str(work / "reports"),
                   "MODEL_REGISTRY": str(work / "registry")}
    return subprocess.run([sys.executable, "-m", "training", *arguments], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One MLflow server for the module, its store in a temp dir."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as running:
        yield running


def test_train_and_gate_are_recorded_on_the_server(server: Server, tmp_path: Path) -> None:
    output = tmp_path / "model"
    trained = training_cli(server.url, tmp_path, "train", "--data", str(DATA_FILE),
                           "--output", str(output))
    assert trained.returncode == 0, trained.stdout + trained.stderr
    gated = training_cli(server.url, tmp_path, "gate", "--candidate", str(output),
                         "--data", str(DATA_FILE))
    assert gated.returncode == 0, gated.stdout + gated.stderr

    card = json.loads((output / "model.json").read_text())
    assert card["tracking"]["tracking_uri"] == server.url
    client = MlflowClient(server.url)
    run = client.get_run(card["tracking"]["run_id"])
    # The summary's link opens the run's page in the server's UI.
    run_file = json.loads((tmp_path / "reports" / MLFLOW_RUN_FILE).read_text())
    assert run_file["run_url"] == (f"{server.url}/#/experiments/{run.info.experiment_id}"
                                   f"/runs/{run.info.run_id}")
    page = requests.get(run_file["run_url"], timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert client.get_experiment(run.info.experiment_id).name == "credit-risk"
    assert run.info.status == "FINISHED"
    assert run.data.params["model_family"] == card["model_family"]
    assert run.data.metrics["holdout/roc_auc"] == pytest.approx(card["metrics"]["roc_auc"])
    assert run.data.tags["gate.decision"] == "promoted"
    children = client.search_runs([run.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert sorted(child.data.params["model_family"] for child in children) == [
        "gradient_boosting", "logistic_regression"]
    # Artifacts went through the server (served artifacts), not to a path of the client's.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = server_store(server) / "artifacts"
    assert list(stored.rglob("model.json")), f"no model card under {stored}"
    downloaded = Path(client.download_artifacts(run.info.run_id, "gate/gate.json",
                                                str(tmp_path / "download")))
    assert json.loads(downloaded.read_text())["decision"] == "promoted"
    mlflow.set_tracking_uri(server.url)
    try:
        [logged] = mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id], output_format="list",
            filter_string=f"source_run_id = '{run.info.run_id}'")
        signature = mlflow.models.get_model_info(logged.model_uri).signature
    finally:
        mlflow.set_tracking_uri(None)
    assert signature.inputs.input_names() == card["features"]


def test_a_server_gone_before_the_gate_stops_it_before_the_registry_changes(
        tmp_path: Path) -> None:
    output = tmp_path / "model"
    with running_mlflow_server(tmp_path / "store") as own:
        trained = training_cli(own.url, tmp_path, "train", "--data", str(DATA_FILE),
                               "--output", str(output))
        assert trained.returncode == 0, trained.stdout + trained.stderr
        stop_server(own)
        gated = training_cli(own.url, tmp_path, "gate", "--candidate", str(output),
                             "--data", str(DATA_FILE))
    assert gated.returncode == 1
    assert f"MLflow tracking at {own.url}: could not reach the tracking store" in gated.stdout
    assert Registry(tmp_path / "registry").versions() == []  # nothing registered
    assert (output / "model.joblib").is_file()  # the model is still there to gate again


def train_and_gate(server: Server, trainer: Path, grid: str, **variables: str) -> str:
    """Train a logistic regression with C=`grid` and gate it (any challenger at least as
    good as the champion wins: tolerance 1); the version the gate registered."""
    output = trainer / f"model-{grid}"
    for command in (("train", "--output", str(output)), ("gate", "--candidate", str(output))):
        done = training_cli(server.url, trainer, *command, "--data", str(DATA_FILE),
                            TRAINING_MODEL_FAMILIES="logistic_regression",
                            TRAINING_LOGISTIC_C_GRID=grid, TRAINING_CHAMPION_TOLERANCE="1",
                            **variables)
        assert done.returncode == 0, done.stdout + done.stderr
    gate = json.loads((trainer / "reports" / "gate.json").read_text())
    return str(gate["challenger"]["version"])


def test_a_replica_follows_the_alias_and_keeps_serving_when_the_server_is_gone(
        tmp_path: Path) -> None:
    trainer, replica = tmp_path / "trainer", tmp_path / "replica"  # two machines' folders
    with running_mlflow_server(tmp_path / "store") as own:
        versions = []
        for grid in ("0.1", "1.0"):
            versions.append(train_and_gate(own, trainer, grid))
            followed = training_cli(own.url, replica, "follow", "--once")
            assert followed.returncode == 0, followed.stdout + followed.stderr
            assert last_line(followed) == versions[-1]
            assert Registry(replica / "registry").production_version() == versions[-1]
            assert registry_status(replica / "registry")["in_step"] is True
        first, second = versions
        assert training_cli(own.url, trainer, "rollback").returncode == 0
        assert last_line(training_cli(own.url, replica, "follow", "--once")) == first
        assert Registry(replica / "registry").production_version() == first

        # A version whose bytes changed on the server is refused; the replica stays put.
        [stored] = [path for path in (server_store(own) / "artifacts").rglob(
            "model.joblib") if path.parent.name == second]
        stored.write_bytes(stored.read_bytes() + b"tampered")
        shutil.rmtree(replica / "registry" / second)
        assert training_cli(own.url, trainer, "promote", second).returncode == 0
        refused = training_cli(own.url, replica, "follow", "--once")
        assert refused.returncode == 1 and f"version {second} refused" in refused.stdout
        assert Registry(replica / "registry").production_version() == first

        stop_server(own)
        gone = training_cli(own.url, replica, "follow", "--once")
    assert gone.returncode == 1 and "unreachable" in gone.stdout
    status = registry_status(replica / "registry")  # what /api/v1/model shows
    assert status["in_step"] is False and status["server"] == own.url
    # The replica's folder still serves: its version loads, verified, without the server.
    assert Registry(replica / "registry").load_production().version == first


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    """What a command printed last (its log lines come first on the same stream)."""
    return done.stdout.strip().splitlines()[-1]


def server_store(server: Server) -> Path:
    """The folder the server keeps its database and artifacts in (its log sits there)."""
    return server.logs["log"].parent


def test_promotion_canary_releases_the_challenger_and_a_replica_follows_the_release(
        tmp_path: Path) -> None:
    trainer, replica = tmp_path / "trainer", tmp_path / "replica"  # two machines' folders
    with running_mlflow_server(tmp_path / "store") as own:
        first, second = (train_and_gate(own, trainer, grid, TRAINING_PROMOTION="canary",
                                        TRAINING_CANARY_SHARE="0.25") for grid in ("0.1", "1.0"))
        gate = json.loads((trainer / "reports" / "gate.json").read_text())
        assert "released as canary on 25% of requests" in gate["reasons"][-1]

        # The first model had no champion to run beside: it was promoted. The second runs
        # as the canary, and a replica's follower mirrors both aliases into its folder.
        assert training_cli(own.url, replica, "follow", "--once").returncode == 0
        folder = Registry(replica / "registry")
        assert folder.production_version() == first
        release = folder.canary_release()
        assert (release.version, release.share, release.mode) == (second, 0.25, "canary")
        status = training_cli(own.url, trainer, "canary-status")
        assert json.loads(status.stdout[status.stdout.index("{"):])["canary"]["version"] == \
            second

        promoted = training_cli(own.url, trainer, "canary-promote", "--reason", "test")
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        assert training_cli(own.url, replica, "follow", "--once").returncode == 0
        assert folder.production_version() == second and folder.canary_release() is None
        client = MlflowClient(own.url)
        moves = client.search_runs([client.get_experiment_by_name("credit-risk").experiment_id],
                                   "tags.moved_alias = 'canary'")
        assert sorted(run.data.tags["trigger"] for run in moves) == ["canary", "canary-promote"]
