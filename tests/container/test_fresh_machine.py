"""A newcomer's first `make pipeline`, on a bare Debian with only Python and apt.

The repository's tracked files (what a clone holds: no .venv, no reports, no model) go into a
container of the bare Python base image (the official one, or its debootstrap stand-in). As
the README says, make comes first from apt; then README's `make pipeline` runs there in
native mode (no Docker inside), installing NGINX itself. It must end SUCCESS with the service
answering a prediction through NGINX. --network host: apt and pip reach their registries the
way this machine does, and the service's free loopback ports are reachable from here.
Each stage's duration is printed at the end of the session (tests/container/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import docker
import docker.errors
import pytest
import requests
from docker.models.containers import Container

from pipeline import preflight
from pipeline.bench import applicants
from pipeline.stages import NATIVE, STAGES
from tests.container.support import FRESH_MACHINE_STAGES, checkout_archive
from tests.helpers import free_port, require_component

pytestmark = pytest.mark.slow

BARE_IMAGE = preflight.base_images()[0]
WORKDIR = "/src"
# Hang guards, not timing checks: apt and pip download everything, and training, the tests
# and the model tests run on a possibly busy 2-core machine.
APT_TIMEOUT = 600
PIPELINE_TIMEOUT = 45 * 60
# The README's prerequisite on a bare Debian, before its two commands.
README_PREREQUISITE = "apt-get update -qq && apt-get install -y -qq --no-install-recommends make"


def docker_exec(container: Container, command: str, timeout: float,
                environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a shell command in the container's checkout, bounded by `timeout`."""
    options = [item for key, value in (environ or {}).items() for item in ("-e", f"{key}={value}")]
    return subprocess.run(["docker", "exec", "-w", WORKDIR, *options, container.name,
                           "bash", "-c", command], capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture
def bare_machine(docker_client: docker.DockerClient) -> Iterator[Container]:
    """A running container of the bare base image holding the tracked files; removed after."""
    try:
        docker_client.images.get(BARE_IMAGE)
    except docker.errors.ImageNotFound:
        require_component(False, f"needs Docker base image {BARE_IMAGE}: "
                          "`make system` pulls it or builds a stand-in")
    container = docker_client.containers.run(
        BARE_IMAGE, ["sleep", "infinity"], detach=True, network_mode="host",
        name=f"credit-fresh-{uuid.uuid4().hex[:8]}", init=True)
    try:
        # What a clone holds: the tracked files only (no .venv, reports or model).
        archive = checkout_archive(WORKDIR.lstrip("/"), untracked=False)
        assert container.put_archive("/", archive)
        yield container
    finally:
        # Also ends the service `make pipeline` left running on the host's loopback.
        container.remove(force=True, v=True)


def test_make_pipeline_on_a_bare_debian_ends_success_serving_through_nginx(
        bare_machine: Container) -> None:
    prepared = docker_exec(bare_machine, README_PREREQUISITE, APT_TIMEOUT)
    assert prepared.returncode == 0, prepared.stdout[-2000:] + prepared.stderr[-2000:]
    serve_port, gunicorn_port = free_port(), free_port()
    ran = docker_exec(bare_machine, "make pipeline", PIPELINE_TIMEOUT,
                      {"SERVE_PORT": str(serve_port), "GUNICORN_PORT": str(gunicorn_port)})
    output = ran.stdout[-8000:] + ran.stderr[-4000:]
    shown = docker_exec(bare_machine, "cat reports/stages.json", 60)
    assert shown.returncode == 0, output
    record = json.loads(shown.stdout)
    FRESH_MACHINE_STAGES[:] = [
        f"{stage['name']:<18} {stage['result']:<15} {stage['seconds']:7.1f}s"
        for stage in [*record["stages"], {"name": "total", "result": record["status"],
                                          "seconds": record["seconds"]}]]

    assert ran.returncode == 0, output
    assert record["status"] == "SUCCESS" and record["mode"] == NATIVE, output
    names = [stage["name"] for stage in record["stages"]]
    assert names == ["preflight", *(stage.name for stage in STAGES)]
    results = {stage["name"]: stage["result"] for stage in record["stages"]}
    assert results["deploy"] == results["smoke test"] == "passed"
    summary = docker_exec(bare_machine, "head -n 1 reports/summary.txt", 60).stdout
    assert summary.startswith("credit-risk pipeline: SUCCESS"), summary

    # The service the pipeline deployed answers from outside the container, through NGINX.
    response = requests.post(f"http://127.0.0.1:{serve_port}/api/v1/predict",
                             json=applicants(1)[0], timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Server"] == "nginx"
    production = docker_exec(bare_machine, "cat registry/production", 60).stdout.strip()
    assert production and response.json()["model_version"] == production
    assert 0.0 <= response.json()["predictions"][0]["probability_bad"] <= 1.0
