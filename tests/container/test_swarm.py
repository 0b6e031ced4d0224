"""Docker Swarm, deployed the pipeline's way with DEPLOY_TARGET=swarm: the gate against the
stack's MLflow, `make swarm-up`, the smoke test of every replica, then, with clients
sending all along, a rolling update, a failing image rolled back, and a killed replica.

The tests of this module share one stack and run in file order (each starts from the version
the previous one left). Everything is removed afterwards, also when a test fails: the stack,
its volumes, configs and secrets, the images built here, and the swarm itself when this
module created it (with the docker_gwbridge network it brings).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from pipeline import deployment, swarm
from pipeline.bench import applicants
from pipeline.smoke import MODEL_VERSION_LABEL
from tests.container.support import (SWARM_ROLLOUTS, Images, Made, Stack,
                                     remove_project_volumes, run_make)
from tests.helpers import free_port, wait_until
from tests.servers import BackgroundLoad
from training.gate import PROMOTED

pytestmark = pytest.mark.slow

REPLICAS = 3
CLIENT_THREADS = 2
# NGINX sees these clients through Docker's port publishing, not from the load generator's
# exempt address: 2 threads pausing 0.3 s stay under its 10 requests/s per client.
CLIENT_PAUSE = 0.3
# How long Swarm may take to notice a failing healthcheck (start period 60 s, then 3 failed
# checks 5 s apart), roll back, and bring a killed replica back, on a busy machine.
ROLLOUT_TIMEOUT = 600
REVISION = deployment.REVISION_LABEL


class SwarmStack(Stack):
    """The stack under test (its project name is the stack's name), and what Swarm adds."""

    def make(self, target: str, **overrides: str) -> Made:
        """`make <target>` with this stack's variables (and `overrides`)."""
        return run_make(target, {**self.variables, **overrides}, timeout=ROLLOUT_TIMEOUT + 120)

    def replicas(self) -> list[deployment.Replica]:
        """The app's replicas as the smoke test sees them."""
        return deployment.swarm_replicas(self.project)


def derived_image(client: docker.DockerClient, base: str, repository: str,
                  tag: str, extra: str = "") -> str:
    """Build <repository>:<tag> FROM `base` with a new revision label (and `extra` lines):
    a new version of the app without a rebuild."""
    dockerfile = f"FROM {base}\nLABEL {REVISION}=\"{repository}\"\n{extra}\n"
    reference = f"{repository}:{tag}"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=reference, rm=True,
                        network_mode="none")
    return reference


def stack_objects(client: docker.DockerClient, name: str) -> list[str]:
    """What of the stack is still there: services, containers, networks, configs, secrets,
    volumes."""
    label = {"label": f"{swarm.NAMESPACE_LABEL}={name}"}
    left = []
    if client.info()["Swarm"]["LocalNodeState"] == "active":
        left += [f"service {s.name}" for s in client.services.list(filters=label)]
        left += [f"config {c.name}" for c in client.configs.list(filters=label)]
        left += [f"secret {s.name}" for s in client.secrets.list(filters=label)]
    left += [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
    left += [f"network {n.name}" for n in client.networks.list(filters=label)]
    left += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    left += [f"volume {v.name}" for v in client.volumes.list()
             if v.name.startswith(f"{name}_")]
    return left


def remove_images(client: docker.DockerClient, built: list[str], kept: list[str]) -> None:
    """Remove the images built here, and the content tags swarm-up gave them and the `kept`
    images (whose own tags stay for the other tests); layers stay as build cache."""
    ids = {}
    for reference in built + kept:
        try:
            ids[client.images.get(reference).id] = reference in built
        except docker.errors.ImageNotFound:
            continue
    for image in client.images.list():
        for tag in image.tags if image.id in ids else []:
            if ":swarm-" in tag or ids[image.id]:
                client.images.remove(tag, force=True, noprune=True)


@pytest.fixture(scope="module")
def docker_images(docker_client: docker.DockerClient, images: Images) -> Iterator[list[str]]:
    """The references this module builds; removed afterwards with every content tag."""
    built: list[str] = []
    yield built
    remove_images(docker_client, built, [images.app, images.proxy, images.tracking])


@pytest.fixture(scope="module")
def swarm_stack(docker_client: docker.DockerClient, images: Images,
                docker_images: list[str],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmStack]:
    """The pipeline's order with DEPLOY_TARGET=swarm: gate-image (which deploys the stack's
    MLflow, creating a single-node swarm when there is none), then swarm-up."""
    was_manager = docker_client.info()["Swarm"]["LocalNodeState"] == "active"
    networks_before = {network.name for network in docker_client.networks.list()}
    name = f"credit-swarm-{uuid.uuid4().hex[:8]}"
    reports = tmp_path_factory.mktemp("swarm-reports")
    variables = {**images.variables, "COMPOSE_PROJECT_NAME": name, "DEPLOY_TARGET": "swarm",
                 "PUBLIC_PORT": str(free_port()), "REPORTS": str(reports),
                 "SWARM_TIMEOUT": str(ROLLOUT_TIMEOUT)}
    try:
        gate = run_make("gate-image", variables, timeout=ROLLOUT_TIMEOUT)
        stack = SwarmStack(name, int(variables["PUBLIC_PORT"]), variables, gate, reports)
        made = stack.make("swarm-up")
        assert made.status == 0, f"make swarm-up failed:\n{made.tail()}"
        yield stack
    finally:
        down = run_make("swarm-down", variables, timeout=ROLLOUT_TIMEOUT)
        remove_project_volumes(docker_client, name)  # the registry volume gate-image made
        for volume in docker_client.volumes.list(
                filters={"label": f"{swarm.NAMESPACE_LABEL}={name}"}):
            volume.remove(force=True)
        if not was_manager and docker_client.info()["Swarm"]["LocalNodeState"] == "active":
            docker_client.swarm.leave(force=True)
            if "docker_gwbridge" not in networks_before:
                for network in docker_client.networks.list(names=["docker_gwbridge"]):
                    network.remove()
        assert down.status == 0, down.tail()
        assert stack_objects(docker_client, name) == []


def service(client: docker.DockerClient, stack: SwarmStack, name: str) -> dict[str, Any]:
    """`docker service inspect` of one service of the stack."""
    return client.services.get(f"{stack.project}_{name}").attrs


def image_label(client: docker.DockerClient, reference: str, label: str) -> str:
    """One label of a local image."""
    return client.images.get(reference).labels.get(label, "")


def test_the_gate_promotes_into_the_stacks_own_mlflow(
        swarm_stack: SwarmStack, docker_client: docker.DockerClient) -> None:
    assert swarm_stack.gate.status == 0, swarm_stack.gate.tail()
    gate = json.loads((swarm_stack.reports / "gate.json").read_text())
    assert gate["decision"] == PROMOTED
    # The registry of record is the Swarm stack's MLflow service, not a compose container.
    assert service(docker_client, swarm_stack, "mlflow")["Spec"]["Mode"]["Replicated"] == {
        "Replicas": 1}
    assert docker_client.containers.list(
        filters={"label": f"com.docker.compose.project={swarm_stack.project}"}) == []


def test_smoke_checks_the_public_url_and_every_replica(
        swarm_stack: SwarmStack, images: Images, docker_client: docker.DockerClient) -> None:
    made = swarm_stack.make("smoke")
    assert made.status == 0, made.tail()
    report = json.loads((swarm_stack.reports / deployment.REPORT_FILE).read_text())
    expected = image_label(docker_client, images.app, MODEL_VERSION_LABEL)
    assert report["target"] == "swarm" and report["url"] == swarm_stack.url
    assert len(report["replicas"]) == REPLICAS
    assert {replica["model_version"] for replica in report["replicas"]} == {expected}


def test_services_are_replicated_hardened_and_resolved_per_task(
        swarm_stack: SwarmStack, docker_client: docker.DockerClient) -> None:
    app = service(docker_client, swarm_stack, "app")
    assert app["Spec"]["Mode"]["Replicated"]["Replicas"] == REPLICAS
    assert app["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
    update = app["Spec"]["UpdateConfig"]
    assert (update["Order"], update["FailureAction"]) == ("start-first", "rollback")
    container = app["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert container["ReadOnly"] is True
    assert container["CapabilityDrop"] == ["ALL"]
    secret = container["Secrets"][0]
    assert (secret["File"]["UID"], secret["File"]["Mode"]) == ("10001", 0o400)
    nginx = service(docker_client, swarm_stack, "nginx")
    port = nginx["Spec"]["EndpointSpec"]["Ports"][0]
    assert (port["PublishMode"], port["PublishedPort"]) == ("host", swarm_stack.port)
    # Only NGINX is published: MLflow has no authentication.
    for name in ("app", "mlflow", "follower"):
        assert not service(docker_client, swarm_stack, name)["Spec"]["EndpointSpec"].get(
            "Ports"), name


def test_a_rolling_update_serves_every_request_and_moves_every_replica(
        swarm_stack: SwarmStack, images: Images, docker_images: list[str],
        docker_client: docker.DockerClient) -> None:
    next_app = derived_image(docker_client, images.app, "credit-risk-next", images.tag)
    docker_images.append(next_app)
    nginx_tasks = {task["ID"] for task in docker_client.services.get(
        f"{swarm_stack.project}_nginx").tasks(filters={"desired-state": "running"})}
    with BackgroundLoad(swarm_stack.url, applicants(1)[0], threads=CLIENT_THREADS,
                        max_seconds=ROLLOUT_TIMEOUT, pause=CLIENT_PAUSE) as load:
        made = swarm_stack.make("swarm-update", APP_IMAGE="credit-risk-next")
    SWARM_ROLLOUTS.append(f"rolling update: {len(load.outcomes)} requests, "
                          f"{len(load.failures())} failed")
    assert made.status == 0, made.tail()
    assert load.failures() == [], load.failures()[:5]
    assert len(load.outcomes) >= 50, "the clients barely ran during the update"
    replicas = swarm_stack.replicas()
    assert len(replicas) == REPLICAS
    assert {replica.revision for replica in replicas} == {"credit-risk-next"}
    # NGINX's image did not change, so its task was left alone.
    assert {task["ID"] for task in docker_client.services.get(
        f"{swarm_stack.project}_nginx").tasks(filters={"desired-state": "running"})} == nginx_tasks


def test_an_image_that_never_gets_healthy_is_rolled_back_and_the_old_one_serves_on(
        swarm_stack: SwarmStack, images: Images, docker_images: list[str],
        docker_client: docker.DockerClient) -> None:
    broken = derived_image(docker_client, images.app, "credit-risk-unhealthy", images.tag,
                           'HEALTHCHECK CMD ["python", "-c", "raise SystemExit(1)"]')
    docker_images.append(broken)
    with BackgroundLoad(swarm_stack.url, applicants(1)[0], threads=CLIENT_THREADS,
                        max_seconds=ROLLOUT_TIMEOUT, pause=CLIENT_PAUSE) as load:
        made = swarm_stack.make("swarm-update", APP_IMAGE="credit-risk-unhealthy")
    SWARM_ROLLOUTS.append(f"failing image rolled back: {len(load.outcomes)} requests, "
                          f"{len(load.failures())} failed")
    assert made.status != 0, made.tail()
    assert "the update was rolled back" in made.output, made.tail()
    assert load.failures() == [], load.failures()[:5]
    assert {replica.revision for replica in swarm_stack.replicas()} == {"credit-risk-next"}
    update = service(docker_client, swarm_stack, "app")["UpdateStatus"]
    assert update["State"] == swarm.ROLLED_BACK


def test_a_killed_replica_is_replaced_and_costs_at_most_the_requests_it_held(
        swarm_stack: SwarmStack, docker_client: docker.DockerClient) -> None:
    app = docker_client.services.get(f"{swarm_stack.project}_app")
    victim = app.tasks(filters={"desired-state": "running"})[0]["Status"]["ContainerStatus"][
        "ContainerID"]

    def others_running() -> bool:
        """REPLICAS tasks running (healthy) in containers other than the killed one."""
        return len([task for task in app.tasks(filters={"desired-state": "running"})
                    if task["Status"]["State"] == "running"
                    and task["Status"]["ContainerStatus"]["ContainerID"] != victim]) >= REPLICAS

    with BackgroundLoad(swarm_stack.url, applicants(1)[0], threads=CLIENT_THREADS,
                        max_seconds=ROLLOUT_TIMEOUT, pause=CLIENT_PAUSE) as load:
        load.wait_until(lambda outcomes: len(outcomes) >= 10, timeout=60)
        docker_client.containers.get(victim).kill()
        wait_until(others_running, ROLLOUT_TIMEOUT, "a replacement replica running, healthy")
        served = len(load.outcomes)
        load.wait_until(lambda outcomes: len(outcomes) >= served + 10, timeout=60)
    SWARM_ROLLOUTS.append(f"replica killed: {len(load.outcomes)} requests, "
                          f"{len(load.failures())} failed")
    assert len(load.failures()) <= CLIENT_THREADS, load.failures()
    assert len(swarm_stack.replicas()) == REPLICAS
