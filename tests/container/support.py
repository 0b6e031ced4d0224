"""Helpers of the container tests: run make targets and compose the way the pipeline does."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

ROOT = Path(__file__).resolve().parents[2]
# Hang guards for make, not timing checks: a cold build downloads the dependencies and
# trains the model three times (train + the model tests) on a possibly busy machine.
BUILD_TIMEOUT = 3600
STACK_TIMEOUT = 600
# The Docker API's answer to one call (removing a container, starting one): docker-py's
# default of 60 s is too short for an engine on a busy machine; a hang guard, not a check.
DOCKER_API_TIMEOUT = 600
# Measurements printed in the session's terminal summary (conftest.py), by heading: each
# stage's result and duration in the bare-machine `make pipeline` run (test_fresh_machine.py),
# the requests the Swarm rollouts carried (test_swarm.py).
FRESH_MACHINE_STAGES: list[str] = []
SWARM_ROLLOUTS: list[str] = []
SUMMARIES = {"make pipeline on a bare Debian: stage durations": FRESH_MACHINE_STAGES,
             "Docker Swarm: requests during each rollout": SWARM_ROLLOUTS}


@dataclass
class Made:
    """The outcome of one `make` run: exit status and combined output."""

    target: str
    status: int
    output: str

    def tail(self, lines: int = 60) -> str:
        """The last lines of the output, for assertion messages."""
        return "\n".join(self.output.splitlines()[-lines:])


def make_command(target: str, variables: dict[str, str] | None = None) -> list[str]:
    """`make <target> VAR=value ...`, as the pipeline calls it."""
    command = ["make", "--no-print-directory", target]
    return command + [f"{name}={value}" for name, value in (variables or {}).items()]


def run_captured(target: str, command: list[str], timeout: float,
                 cwd: Path | None = None, environ: dict[str, str] | None = None) -> Made:
    """Run a make command, stdout and stderr together, and keep its outcome."""
    completed = subprocess.run(command, cwd=cwd, env=environ, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=timeout,
                               check=False)
    return Made(target, completed.returncode, completed.stdout)


def docker_client() -> docker.DockerClient:
    """A client of the local engine with the tests' API deadline."""
    return docker.from_env(timeout=DOCKER_API_TIMEOUT)


def run_make(target: str, variables: dict[str, str] | None = None,
             timeout: float = STACK_TIMEOUT) -> Made:
    """`make <target> VAR=value ...` in the checkout, in Docker mode, output captured."""
    environ = {**os.environ, "PIPELINE_MODE": "docker"}
    return run_captured(target, make_command(target, variables), timeout, ROOT, environ)


def dockerfile_default(dockerfile: Path, argument: str) -> str:
    """The default value of `ARG <argument>=...` in a Dockerfile."""
    found = re.search(rf"^ARG {argument}=(\S+)$", dockerfile.read_text(), re.M)
    assert found, f"{dockerfile} has no default for ARG {argument}"
    return found.group(1)


def checkout_archive(prefix: str, uid: int = 0, gid: int = 0, untracked: bool = True) -> bytes:
    """The checkout's files as a tar under `prefix`, owned by uid:gid: tracked and new ones,
    none that git ignores (what a Jenkins agent's workspace holds after the checkout), or
    with `untracked=False` only the tracked ones (what a clone holds)."""
    listing = ["--cached", "--others", "--exclude-standard"] if untracked else ["--cached"]
    listed = subprocess.run(["git", "ls-files", "-z", *listing], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    files = [name for name in listed if name and (ROOT / name).is_file()]
    # Directories too, or the engine would create them owned by root.
    directories = sorted({str(parent) for name in files for parent in Path(name).parents
                          if str(parent) != "."})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in ["", *directories]:
            info = tarfile.TarInfo(f"{prefix}/{name}".rstrip("/"))
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, gid
            archive.addfile(info)
        for name in files:
            info = archive.gettarinfo(str(ROOT / name), arcname=f"{prefix}/{name}")
            info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
            with open(ROOT / name, "rb") as content:
                archive.addfile(info, content)
    return buffer.getvalue()


def compose_available() -> bool:
    """Whether `docker compose` (v2) or `docker-compose` (v1) exists."""
    return bool(compose_command())


def compose_command() -> list[str]:
    """`docker compose` when the v2 plugin exists, else `docker-compose` (as the Makefile)."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker", "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else []


def remove_image(client: docker.DockerClient, reference: str) -> None:
    """Untag an image the tests built, keeping its layers as build cache."""
    try:
        client.images.remove(reference, force=True, noprune=True)
    except docker.errors.ImageNotFound:
        pass


def image_references(tag: str) -> tuple[str, str, str, str]:
    """What `make image IMAGE_TAG=tag` tags: the app image, its build stage, NGINX's image
    and the tracking image (MLflow server, training containers)."""
    app = f"credit-risk-app:{tag}"
    return app, f"{app}-build", f"credit-risk-nginx:{tag}", f"credit-risk-mlflow:{tag}"


def remove_built_images(client: docker.DockerClient, tag: str) -> None:
    """Untag every image `make image IMAGE_TAG=tag` made (their layers stay as cache)."""
    for reference in image_references(tag):
        remove_image(client, reference)


def remove_project_containers(client: docker.DockerClient, project: str) -> None:
    """Remove every container of a compose project, running or not."""
    for container in client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"}):
        container.remove(force=True)


def remove_project_volumes(client: docker.DockerClient, project: str) -> None:
    """Remove the volumes of a compose project (also those gate-image/retrain-image made)."""
    for volume in client.volumes.list(
            filters={"label": f"com.docker.compose.project={project}"}):
        volume.remove(force=True)


@dataclass
class Images:
    """The images of one `make image` run, and the make variables that name them."""

    tag: str
    app: str
    proxy: str
    tracking: str
    variables: dict[str, str] = field(default_factory=dict)


@dataclass
class Stack:
    """A compose stack of the test images under its own project name and public port."""

    project: str
    port: int
    variables: dict[str, str]
    gate: Made
    reports: Path

    @property
    def url(self) -> str:
        """The public URL: NGINX."""
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run a compose command against this stack, with the Makefile's variables."""
        environ = {**os.environ, **self.variables}
        return subprocess.run([*compose_command(), *arguments], cwd=ROOT, env=environ,
                              capture_output=True, text=True, timeout=STACK_TIMEOUT,
                              check=False)

    def container(self, client: docker.DockerClient, service: str) -> Container:
        """The running container of one service."""
        found = client.containers.list(filters={
            "label": [f"com.docker.compose.project={self.project}",
                      f"com.docker.compose.service={service}"]})
        assert len(found) == 1, f"expected one running {service} container, found {found}"
        return found[0]
