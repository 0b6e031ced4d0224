"""The agent's view: the Docker-mode stages run from inside the build agent image, the way
a Jenkins agent runs them (jenkins/agent/, jenkins/docker-compose.yml).

The agent image is built against the offline Debian stand-in base (the Debian docker.io and
docker-compose packages in place of Docker's repository). In a container of it, with the
host's Docker socket and the checkout copied to a workspace path the host does not have, the
stages `image`, `reports-from-image`, `gate-image`, `up`, `smoke` and `down` run as the
agent's user. Meanwhile a namesake of Jenkins runs: a container without a healthcheck under
the stack's own compose project name, as when Jenkins is started with the same
COMPOSE_PROJECT_NAME. `make up` must neither wait for it nor remove it, and the smoke test
must reach NGINX although the agent's 127.0.0.1 is not the host's.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from pipeline.smoke import MODEL_VERSION_LABEL
from tests.container.support import (BUILD_TIMEOUT, ROOT, STACK_TIMEOUT, Made,
                                     checkout_archive, compose_command, dockerfile_default,
                                     make_command, remove_built_images, remove_image,
                                     remove_project_containers, remove_project_volumes,
                                     run_captured)
from tests.helpers import free_port

pytestmark = pytest.mark.slow

AGENT_CONTEXT = ROOT / "jenkins" / "agent"
# The agent's workspace, as Jenkins lays it out under the node's remoteFS (casc.yaml).
WORKSPACE = "/home/jenkins/agent/workspace/credit-risk"
AGENT_UID = 1000
STAGES = ("image", "reports-from-image", "gate-image", "up", "smoke")
NAMESAKE_SERVICE = "controller"  # the Jenkins service of jenkins/docker-compose.yml


@dataclass
class Agent:
    """A running agent container with the workspace, and the stack's make variables."""

    container: Container
    variables: dict[str, str]

    def make(self, target: str, timeout: float = STACK_TIMEOUT) -> Made:
        """`make <target>` in the workspace, as the agent's user, as a Jenkins `sh` step."""
        command = ["docker", "exec", "-w", WORKSPACE, "-e", "PIPELINE_MODE=docker",
                   self.container.id, *make_command(target, self.variables)]
        return run_captured(target, command, timeout)


@pytest.fixture(scope="module")
def agent_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """jenkins/agent/ built on the stand-in base (the app image's default base name)."""
    reference = f"credit-risk-agent:test-{uuid.uuid4().hex[:8]}"
    base = dockerfile_default(ROOT / "Dockerfile", "PYTHON_IMAGE")
    try:
        built = run_captured("agent image", [
            "docker", "build", "--network", "host", "--build-arg", f"AGENT_IMAGE={base}",
            "--build-arg", "DOCKER_PACKAGES_FROM=debian", "-t", reference,
            str(AGENT_CONTEXT)], BUILD_TIMEOUT)
        assert built.status == 0, f"building the agent image failed:\n{built.tail()}"
        yield reference
    finally:
        remove_image(docker_client, reference)


def start_namesake(project: str, image: str, directory: Path) -> None:
    """A Jenkins stand-in under the stack's project name: running, without healthcheck."""
    compose_file = directory / "jenkins-namesake.yml"
    compose_file.write_text(
        f"services:\n  {NAMESAKE_SERVICE}:\n    image: {image}\n"
        "    command: [\"sleep\", \"infinity\"]\n    network_mode: none\n")
    started = subprocess.run([*compose_command(), "-p", project, "-f", str(compose_file),
                              "up", "-d"], capture_output=True, text=True,
                             timeout=STACK_TIMEOUT, check=False)
    assert started.returncode == 0, started.stdout + started.stderr


def namesake(client: docker.DockerClient, project: str) -> list[Container]:
    """The namesake's running containers."""
    return client.containers.list(filters={"label": [
        f"com.docker.compose.project={project}",
        f"com.docker.compose.service={NAMESAKE_SERVICE}"]})


@pytest.fixture(scope="module")
def agent(docker_client: docker.DockerClient, agent_image: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """The agent container (host socket, workspace copied in) next to a Jenkins namesake;
    afterwards every container, volume and image of the run is removed."""
    suffix = uuid.uuid4().hex[:8]
    project, tag = f"credit-agent-{suffix}", f"agent-{suffix}"
    variables = {"COMPOSE_PROJECT_NAME": project, "IMAGE_TAG": tag,
                 "PUBLIC_PORT": str(free_port()), "MLFLOW_PORT": str(free_port()),
                 "GIT_COMMIT": git_commit()}
    socket_group = os.stat("/var/run/docker.sock").st_gid
    container = None
    try:
        start_namesake(project, dockerfile_default(ROOT / "Dockerfile", "PYTHON_IMAGE"),
                       tmp_path_factory.mktemp("namesake"))
        container = docker_client.containers.run(
            agent_image, entrypoint=["sleep", "infinity"], detach=True,
            name=f"{project}-agent", group_add=[socket_group],
            volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}})
        made = container.exec_run(["mkdir", "-p", str(Path(WORKSPACE).parent)])
        assert made.exit_code == 0, made.output
        container.put_archive("/", checkout_archive(WORKSPACE.lstrip("/"), AGENT_UID,
                                                    AGENT_UID))
        yield Agent(container, variables)
    finally:
        if container is not None:
            container.remove(force=True)
        remove_project_containers(docker_client, project)
        for network in docker_client.networks.list(names=[f"{project}_default"]):
            network.remove()
        remove_project_volumes(docker_client, project)
        remove_built_images(docker_client, tag)


def git_commit() -> str:
    """The checkout's commit, as Jenkins's checkout would give the workspace."""
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_workspace_is_not_where_the_checkout_is_on_the_host(agent: Agent) -> None:
    code, output = agent.container.exec_run(["test", "-f", "Makefile"], workdir=WORKSPACE)
    assert code == 0, output
    code, output = agent.container.exec_run(["id", "-u"])
    assert output.decode().strip() == str(AGENT_UID)


def test_docker_stages_from_the_agent_end_with_a_smoke_tested_prediction(
        agent: Agent, docker_client: docker.DockerClient) -> None:
    project = agent.variables["COMPOSE_PROJECT_NAME"]
    for target in STAGES:
        made = agent.make(target, BUILD_TIMEOUT if target == "image" else STACK_TIMEOUT)
        assert made.status == 0, f"make {target} in the agent failed:\n{made.tail()}"
        if target == "up":  # it waited for, and reported, the stack's services only
            reported = re.findall(r"^/(\S+) \w+$", made.output, re.M)
            reported += [word for line in re.findall(r"^waiting: (.*)$", made.output, re.M)
                         for word in line.split() if word.startswith("/")]
            assert reported, made.tail()
            assert not [name for name in reported if NAMESAKE_SERVICE in name], made.tail()
        assert namesake(docker_client, project), f"make {target} removed the namesake"

    smoke = made.output
    label = docker_client.images.get(
        f"credit-risk-app:{agent.variables['IMAGE_TAG']}").labels[MODEL_VERSION_LABEL]
    assert "ok   /api/v1/predict: probability_bad=" in smoke
    assert f"model version {label} is the expected one" in smoke
    assert "smoke test passed" in smoke

    made = agent.make("down")
    assert made.status == 0, made.tail()
    left = docker_client.containers.list(all=True, filters={
        "label": f"com.docker.compose.project={project}"})
    assert [c.labels["com.docker.compose.service"] for c in left] == [NAMESAKE_SERVICE]
