"""The app image as `make image` builds it: who it runs as, what it holds, what it says."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree

import docker
import pytest
from mlflow.tracking import MlflowClient

import training
from pipeline.smoke import MODEL_VERSION_LABEL
from tests.container.support import ROOT, Images, run_make
from training.gate import FLOOR_PASSED
from training.report_names import PLOT_FILES, PLOTS_DIR
from training.registry import new_version_name

pytestmark = pytest.mark.slow

# Bounded wait for the image's HEALTHCHECK (start period 60 s, then every 10 s).
HEALTHY_WITHIN = 240.0


def run_in_image(client: docker.DockerClient, image: str, script: str) -> str:
    """Run a Python snippet in a throw-away container of `image`, without network."""
    output = client.containers.run(image, ["python", "-c", script], remove=True,
                                   network_mode="none")
    return output.decode()


def card_in_image(client: docker.DockerClient, image: str) -> dict:
    """The model card baked into the image."""
    return json.loads(run_in_image(client, image, "print(open('/opt/model/model.json').read())"))


def test_image_runs_as_a_non_root_user(docker_client: docker.DockerClient,
                                       images: Images) -> None:
    assert docker_client.images.get(images.app).attrs["Config"]["User"] not in ("", "root", "0")
    uid = run_in_image(docker_client, images.app, "import os; print(os.getuid())")
    assert int(uid) != 0


def test_model_file_matches_the_sha256_on_its_card(docker_client: docker.DockerClient,
                                                   images: Images) -> None:
    script = ("import hashlib, json; "
              "card = json.load(open('/opt/model/model.json')); "
              "digest = hashlib.sha256(open('/opt/model/model.joblib', 'rb').read()).hexdigest(); "
              "print(json.dumps({'card': card['artifact_sha256'], 'file': digest}))")
    hashes = json.loads(run_in_image(docker_client, images.app, script))
    assert hashes["file"] == hashes["card"]
    # And the project's own loader, which refuses a mismatch, accepts it.
    loaded = run_in_image(docker_client, images.app,
                          "from pathlib import Path; from training.artifact import load_artifact; "
                          "print(load_artifact(Path('/opt/model')).version)")
    assert loaded.strip()


def test_runtime_holds_no_tests_no_installer_and_no_plotting(
        docker_client: docker.DockerClient, images: Images) -> None:
    # matplotlib comes with requirements-training.txt: the build stage plots, serving never.
    script = ("import importlib.util, os; "
              "print([m for m in ('pytest', 'pip', 'matplotlib') if importlib.util.find_spec(m)], "
              "os.path.exists('tests'))")
    assert run_in_image(docker_client, images.app, script).strip() == "[] False"


def test_labels_name_the_commit_and_the_registry_version_of_the_model(
        docker_client: docker.DockerClient, images: Images) -> None:
    labels = docker_client.images.get(images.app).labels
    card = card_in_image(docker_client, images.app)
    assert labels[MODEL_VERSION_LABEL] == new_version_name(card)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=False).stdout.strip() or "unknown"
    assert labels["org.opencontainers.image.revision"] == head == card["git_commit"]
    assert labels["org.opencontainers.image.version"] == training.__version__


def test_healthcheck_turns_healthy_and_the_baked_model_serves(
        docker_client: docker.DockerClient, images: Images) -> None:
    container = docker_client.containers.run(images.app, detach=True)
    try:
        deadline = time.monotonic() + HEALTHY_WITHIN
        status = "starting"
        while status == "starting" and time.monotonic() < deadline:
            time.sleep(2)
            container.reload()
            status = container.attrs["State"].get("Health", {}).get("Status", "none")
            if container.status != "running":
                break
        logs = container.logs(tail=40).decode(errors="replace")
        assert status == "healthy", f"health {status}, state {container.status}:\n{logs}"
        # Gunicorn's start hook registered and promoted the baked-in model.
        code, output = container.exec_run(
            ["python", "-c", "import urllib.request; "
             "print(urllib.request.urlopen('http://127.0.0.1:8000/readyz').read().decode())"])
        assert code == 0, output
        label = docker_client.images.get(images.app).labels[MODEL_VERSION_LABEL]
        assert json.loads(output)["model_version"] == label
    finally:
        container.remove(force=True, v=True)


def test_reports_come_out_of_the_image(images: Images, tmp_path: Path) -> None:
    made = run_make("reports-from-image", {**images.variables, "REPORTS": str(tmp_path)})
    assert made.status == 0, made.tail()
    suite = ElementTree.parse(tmp_path / "junit-model-image.xml").getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests", "0")) > 0
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    floor = json.loads((tmp_path / "floor-gate.json").read_text())
    assert floor["decision"] == FLOOR_PASSED
    assert (tmp_path / "junit-floor-gate.xml").is_file()
    card = json.loads((tmp_path / "model-card.json").read_text())
    build = json.loads((tmp_path / "build-info.json").read_text())
    assert build["model_version"] == new_version_name(card)
    assert build["artifact_sha256"] == card["artifact_sha256"]
    plotted = sorted(path.name for path in (tmp_path / PLOTS_DIR).glob("*.png"))
    assert plotted == sorted(PLOT_FILES)
    image = json.loads((tmp_path / "image.json").read_text())
    assert image["size_bytes"] > 0
    assert image["labels"][MODEL_VERSION_LABEL] == build["model_version"]
    # The build's MLflow run, in the embedded store the build kept among its reports.
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    run = client.get_run(card["tracking"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["holdout/roc_auc"] == pytest.approx(card["metrics"]["roc_auc"])
    assert run.data.tags["gate.floor.decision"] == FLOOR_PASSED
    assert run.data.tags["artifact_sha256"] == card["artifact_sha256"]
