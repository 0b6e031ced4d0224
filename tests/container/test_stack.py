"""The compose stack, deployed the pipeline's way: gate-image, up, smoke, restart, down."""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path
from xml.etree import ElementTree

import docker
import pytest
import requests
from docker.models.containers import Container

from pipeline.smoke import MODEL_VERSION_LABEL
from tests.conftest import DATA_FILE
from tests.container.support import Images, Stack, run_make
from training.data import load_dataset
from training.gate import PROMOTED
from training.simulate import simulate_batch

pytestmark = pytest.mark.slow

COUNT_LOG_LINES = ("import os; path = os.environ['PREDICTION_LOG']; "
                   "print(sum(1 for _ in open(path)) if os.path.exists(path) else 0)")


def prediction_log_lines(container: Container) -> int:
    """Lines of the prediction log inside the app container (its named volume)."""
    code, output = container.exec_run(["python", "-c", COUNT_LOG_LINES])
    assert code == 0, output
    return int(output)


def test_gate_from_the_image_promotes_into_a_fresh_registry_volume(
        stack: Stack, docker_client: docker.DockerClient) -> None:
    assert stack.gate.status == 0, stack.gate.tail()
    assert json.loads((stack.reports / "gate.json").read_text())["decision"] == PROMOTED
    suite = ElementTree.parse(stack.reports / "junit-gate.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    # Created with compose's labels, so that `up` adopts it as the stack's own volume.
    volume = docker_client.volumes.get(f"{stack.project}_registry")
    assert volume.attrs["Labels"]["com.docker.compose.project"] == stack.project


def test_only_nginx_publishes_a_public_port(stack: Stack,
                                            docker_client: docker.DockerClient) -> None:
    for service in ("app", "follower"):
        container = stack.container(docker_client, service)
        assert all(not bindings for bindings in container.ports.values()), service
    nginx = stack.container(docker_client, "nginx")
    assert [b["HostPort"] for b in nginx.ports["80/tcp"]][0] == str(stack.port)
    # MLflow's UI and API (no authentication): the loopback interface only.
    mlflow = stack.container(docker_client, "mlflow")
    assert [(b["HostIp"], b["HostPort"]) for b in mlflow.ports["5000/tcp"]] == [
        ("127.0.0.1", stack.variables["MLFLOW_PORT"])]


@pytest.mark.parametrize("service", ["app", "nginx", "mlflow", "follower"])
def test_services_are_read_only_limited_and_restarted(stack: Stack, service: str,
                                                      docker_client: docker.DockerClient
                                                      ) -> None:
    host = stack.container(docker_client, service).attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["Memory"] > 0 and host["NanoCpus"] > 0
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert "/tmp" in host["Tmpfs"]


@pytest.mark.parametrize(("service", "needed"), [
    ("app", set()), ("nginx", {"CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"}),
    ("mlflow", set()), ("follower", set())])
def test_services_drop_every_capability_but_what_they_need(
        stack: Stack, service: str, needed: set[str], docker_client: docker.DockerClient) -> None:
    """The running stack (healthy, smoke-tested) proves these are enough."""
    host = stack.container(docker_client, service).attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert {cap.removeprefix("CAP_") for cap in host["CapAdd"] or []} == needed
    assert "no-new-privileges=true" in host["SecurityOpt"]


def test_nginx_workers_run_without_root(stack: Stack,
                                        docker_client: docker.DockerClient) -> None:
    nginx = stack.container(docker_client, "nginx")
    code, output = nginx.exec_run(["sh", "-c", "for p in /proc/[0-9]*; do "
                                   "[ \"$(cat $p/comm)\" = nginx ] && stat -c '%u' $p; done"])
    owners = output.decode().split()
    assert owners.count("0") == 1 and len(owners) >= 2, owners  # the master only


def test_smoke_through_nginx_serves_the_labelled_model(stack: Stack, images: Images,
                                                       docker_client: docker.DockerClient
                                                       ) -> None:
    made = run_make("smoke", stack.variables)
    assert made.status == 0, made.tail()
    label = docker_client.images.get(images.app).labels[MODEL_VERSION_LABEL]
    assert f"model version {label} is the expected one" in made.output


def test_prediction_log_survives_recreating_the_app_container(
        stack: Stack, docker_client: docker.DockerClient) -> None:
    assert run_make("smoke", stack.variables).status == 0
    before = stack.container(docker_client, "app")
    lines = prediction_log_lines(before)
    assert lines >= 1

    recreated = stack.compose("up", "-d", "--no-deps", "--force-recreate", "app")
    assert recreated.returncode == 0, recreated.stdout + recreated.stderr
    made = run_make("up", stack.variables)  # waits until healthy again
    assert made.status == 0, made.tail()

    after = stack.container(docker_client, "app")
    assert after.id != before.id
    assert prediction_log_lines(after) == lines
    made = run_make("smoke", stack.variables)
    assert made.status == 0, made.tail()
    assert prediction_log_lines(after) == lines + 1


def test_retrain_from_the_image_moves_the_batch_in_and_the_running_stack_follows(
        stack: Stack, tmp_path: Path) -> None:
    # Last in this module: it moves production away from the image's own model.
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    batch = simulate_batch(load_dataset(DATA_FILE), "covariate", 0.5, rows=200, seed=5)
    batch.to_csv(incoming / "simulated-covariate.csv", index=False)

    made = run_make("retrain-image", {**stack.variables, "INCOMING": str(incoming)})
    assert made.status == 0, made.tail()
    assert not list(incoming.glob("*.csv"))  # moved into the stack's training-data volume
    gate = json.loads((stack.reports / "gate.json").read_text())
    assert gate["decision"] == PROMOTED
    retrained = gate["challenger"]["version"]

    # No restart: the running service follows the registry volume's production pointer.
    made = run_make("smoke", {**stack.variables, "RETRAIN": "true"})
    assert made.status == 0, made.tail()
    assert f"model version {retrained} is the expected one" in made.output


def test_feedback_is_off_without_the_secret_and_needs_its_token_with_it(
        stack: Stack, tmp_path: Path) -> None:
    def feedback(base: str, request_id: str, token: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(f"{base}/api/v1/feedback", headers=headers, timeout=30,
                             json={"request_id": request_id, "outcome": "bad"})

    disabled = feedback(stack.url, "0" * 32, "any-token-of-16-characters")
    assert disabled.status_code == 503 and disabled.json()["error"] == "feedback_disabled"

    token = secrets.token_urlsafe(32)
    secret = tmp_path / "feedback_token"
    secret.write_text(token + "\n")
    secret.chmod(0o644)  # compose bind-mounts it as it is: the app's uid must read it
    with_secret = dataclasses.replace(
        stack, variables={**stack.variables, "FEEDBACK_TOKEN_SECRET": str(secret)})
    recreated = with_secret.compose("up", "-d", "--no-deps", "--force-recreate", "app")
    assert recreated.returncode == 0, recreated.stdout + recreated.stderr
    made = run_make("up", with_secret.variables)  # waits until healthy again
    assert made.status == 0, made.tail()
    request_id = requests.post(f"{stack.url}/api/v1/predict", timeout=30,
                               json=load_dataset(DATA_FILE).iloc[0].drop("credit_risk")
                               .to_dict()).json()["request_id"]
    assert feedback(stack.url, request_id, None).status_code == 401
    assert feedback(stack.url, request_id, token).status_code == 201
    assert feedback(stack.url, request_id, token).status_code == 409
