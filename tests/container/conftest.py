"""Fixtures of the container tests: a real Docker engine, the images `make image` builds, and
a compose stack brought up the way the pipeline does it (gate-image, then up).

Everything goes through the Makefile's targets, so the tests exercise the commands Jenkins
runs. Names are unique per session (image tag, compose project, published port), so a
developer's own images and stack on port 8005 are never touched; everything created is
removed afterwards, except the build cache (image tags are removed without pruning their
parent layers) and the base images.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import docker.errors
import pytest

from tests.container import support
from tests.container.support import (BUILD_TIMEOUT, SUMMARIES, Images, Stack,
                                     compose_available, image_references,
                                     remove_built_images, remove_project_volumes, run_make)
from tests.helpers import free_port, require_component


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What the container tests measured: the bare-machine `make pipeline`'s stage durations
    and the Swarm rollouts' requests, when they ran."""
    for heading, lines in SUMMARIES.items():
        if lines:
            terminalreporter.write_sep("-", heading)
            for line in lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of a Docker engine that answers, and compose; mandatory in CI."""
    client = None
    reason = ""
    try:
        client = support.docker_client()
        client.ping()
    except docker.errors.DockerException as error:
        reason = f"needs Docker: no engine answers ({error})"
    require_component(client is not None and not reason, reason)
    require_component(compose_available(),
                      "needs Docker Compose: neither `docker compose` (v2) nor "
                      "`docker-compose` (v1) is installed")
    yield client
    client.close()


@pytest.fixture(scope="session")
def images(docker_client: docker.DockerClient) -> Iterator[Images]:
    """`make image` under a unique tag (the layers come from the build cache when warm)."""
    tag = f"test-{uuid.uuid4().hex[:8]}"
    app, _, proxy, tracking = image_references(tag)
    try:
        made = run_make("image", {"IMAGE_TAG": tag}, timeout=BUILD_TIMEOUT)
        assert made.status == 0, f"make image failed:\n{made.tail()}"
        yield Images(tag, app, proxy, tracking, {"IMAGE_TAG": tag})
    finally:
        remove_built_images(docker_client, tag)


@pytest.fixture(scope="session")
def stack(docker_client: docker.DockerClient, images: Images,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The pipeline's order on a fresh project: gate-image (starts MLflow, creates the
    registry volume and promotes the image's model there), then up (waits until every
    service is healthy); down -v afterwards."""
    project = f"credit-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    reports = tmp_path_factory.mktemp("stack-reports")
    variables = {**images.variables, "COMPOSE_PROJECT_NAME": project,
                 "PUBLIC_PORT": str(port), "MLFLOW_PORT": str(free_port()),
                 "REPORTS": str(reports)}
    stack = Stack(project, port, variables, run_make("gate-image", variables), reports)
    try:
        made = run_make("up", variables)
        assert made.status == 0, f"make up failed:\n{made.tail()}"
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans")
        remove_project_volumes(docker_client, project)
