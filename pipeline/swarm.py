"""Deploy the stack to Docker Swarm and wait for the rollout: `python -m pipeline.swarm`.

Commands (the Makefile's swarm targets call them):
  up        deploy deploy/swarm/tracking.yml + stack.yml under the stack name with the
            images of IMAGE_TAG, then wait until every service has converged. A service
            whose update Swarm rolled back fails the command, naming the rollback:
            `docker stack deploy` itself exits 0 after an automatic rollback, so success is
            read from each service's UpdateStatus, never from the deploy's exit status.
  tracking  deploy tracking.yml alone (MLflow and the stack's network) and wait for it: the
            gate needs the registry of record before anything is deployed.
  down      remove the stack and wait until its tasks and network are gone (volumes stay).

Images are deployed by content: each is tagged <repository>:swarm-<its ID's first 12 hex>
and the stack names that tag, so a rebuilt image rolls out under an unchanged IMAGE_TAG and
an unchanged one never restarts its service. NGINX's site config under Swarm is the one
template (pipeline/nginx_site.py) with the app's host name as backend. It and the feedback
token are a Docker config and a Docker secret named after their content's hash (Swarm never
changes one in place); the ones a new deployment no longer uses are removed. Standard
library only (see pipeline/__init__.py).
Exit status 0 on success, 1 with a message otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import nginx_site
from pipeline.commands import ROOT, CommandError, cli_main, output

logger = logging.getLogger("pipeline.swarm")

STACK_DIR = ROOT / "deploy" / "swarm"
TRACKING_FILE = STACK_DIR / "tracking.yml"
SERVICE_FILE = STACK_DIR / "stack.yml"
NGINX_DOCKERFILE = ROOT / "nginx" / "Dockerfile"
# Gunicorn's address on the stack's network (the image's GUNICORN_BIND port).
APP_ADDRESS = "app:8000"
# Swarm's update states (docker service inspect: UpdateStatus.State).
COMPLETED = "completed"
ROLLED_BACK = "rollback_completed"
STOPPED_STATES = {"paused", "rollback_paused", ROLLED_BACK}
# A stack's objects carry this label (docker stack deploy sets it).
NAMESPACE_LABEL = "com.docker.stack.namespace"
POLL_SECONDS = 2.0
DOCKER_TIMEOUT = 120.0


class SwarmError(CommandError):
    """A deployment that did not converge, or a machine that cannot deploy; says which."""


def docker(*args: str, timeout: float = DOCKER_TIMEOUT,
           environ: Mapping[str, str] | None = None) -> str:
    """Run the docker CLI and return its stdout; SwarmError with its stderr on failure."""
    return output(["docker", *args], timeout, environ, error=SwarmError)


# --- the machine ---------------------------------------------------------------------------
def ensure_manager(advertise_address: str) -> None:
    """Make this engine a swarm manager: a single-node swarm is created when the engine is
    in none; a worker node cannot deploy (SwarmError)."""
    state, control = docker("info", "--format",
                            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}").split()
    if state == "inactive":
        docker("swarm", "init", "--advertise-addr", advertise_address)
        logger.info("created a single-node swarm (advertise address %s); `docker swarm leave "
                    "--force` dissolves it", advertise_address)
    elif state != "active" or control != "true":
        raise SwarmError(f"this Docker engine is not a swarm manager (state {state}, manager "
                         f"{control}): deploy from a manager node")


def refuse_running_compose(project: str) -> None:
    """The compose stack of the same name publishes the same port and mounts the same
    volumes: SwarmError while any of its containers runs."""
    names = docker("ps", "--filter", f"label=com.docker.compose.project={project}",
                   "--format", "{{.Names}}").split()
    if names:
        raise SwarmError(f"the compose stack {project} is running ({', '.join(names)}): "
                         f"`make down` first (it holds PUBLIC_PORT and the same volumes)")


# The image variables the stack files read, and the make variables that name each image.
IMAGE_VARIABLES = {"APP_REF": "APP_IMAGE", "PROXY_REF": "PROXY_IMAGE",
                   "TRACKING_REF": "TRACKING_IMAGE"}


def content_reference(reference: str) -> str:
    """Tag a local image with its content (<repository>:swarm-<12 hex of its ID>) and return
    that tag; SwarmError when the image does not exist.

    Swarm compares a service's image by name: a rebuilt `latest` would never roll out, and
    an unchanged image under a new tag would restart its service for nothing. A tag that
    names the content rolls out exactly what changed; the previous one stays for a rollback.
    """
    try:
        image_id = docker("image", "inspect", "--format", "{{.Id}}", reference).strip()
    except SwarmError:
        raise SwarmError(f"image {reference} is missing (run `make image` first)") from None
    repository = reference.rsplit(":", 1)[0]
    tagged = f"{repository}:swarm-{image_id.removeprefix('sha256:')[:12]}"
    docker("tag", image_id, tagged)
    return tagged


def image_environment(environ: Mapping[str, str], variables: Sequence[str]) -> dict[str, str]:
    """The stack files' image variables: each make-named image (<NAME>:IMAGE_TAG) by content."""
    try:
        return {variable: content_reference(
            f"{environ[IMAGE_VARIABLES[variable]]}:{environ['IMAGE_TAG']}")
            for variable in variables}
    except KeyError as error:
        raise SwarmError(f"{error.args[0]} is not set (the Makefile sets it)") from None


# --- what the stack files read -------------------------------------------------------------
def dockerfile_defaults(dockerfile: Path = NGINX_DOCKERFILE) -> dict[str, str]:
    """The ARG defaults of a Dockerfile (`ARG NAME=value` lines)."""
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile.read_text(), re.M))


def swarm_site_config() -> str:
    """The NGINX site config for Swarm: the image's listen address and static root, the app's
    host name resolved per request."""
    image = dockerfile_defaults()
    # The upstream group is not used here (NGINX_BACKEND names the app); its server is a
    # loopback address so that loading the config resolves no name.
    values = nginx_site.SiteValues(upstream="127.0.0.1:8000", listen=image["NGINX_LISTEN"],
                                   static_root=image["NGINX_STATIC_ROOT"],
                                   backend=APP_ADDRESS)
    return nginx_site.render(values)


@dataclass(frozen=True)
class StackObject:
    """A file the stack turns into a Docker config or secret, named after its content."""

    variable: str  # the stack file's variables: <variable>_NAME and <variable>_FILE
    path: Path
    name: str


def content_object(stack: str, variable: str, path: Path) -> StackObject:
    """The object for `path`, named <stack>_<kind>_<first 12 hex digits of its sha256>."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    kind = variable.lower()
    return StackObject(variable, path, f"{stack}_{kind}_{digest}")


def stack_objects(stack: str, work_dir: Path, token_file: str) -> list[StackObject]:
    """Write the site config (and, without a token file, a blank token: feedback disabled,
    as in compose) into `work_dir` and return the config and the secret."""
    work_dir.mkdir(parents=True, exist_ok=True)
    site = work_dir / "credit-risk.conf"
    site.write_text(swarm_site_config())
    if token_file:
        token = Path(token_file).resolve()
    else:
        # Swarm refuses an empty secret; the app reads a blank file as no token.
        token = work_dir / "no-feedback-token"
        token.write_text("\n")
    return [content_object(stack, "NGINX_SITE", site),
            content_object(stack, "FEEDBACK_TOKEN", token)]


def stack_environment(objects: Sequence[StackObject],
                      environ: Mapping[str, str]) -> dict[str, str]:
    """The environment `docker stack deploy` substitutes into the stack files."""
    environment = dict(environ)
    for item in objects:
        environment[f"{item.variable}_NAME"] = item.name
        environment[f"{item.variable}_FILE"] = str(item.path)
    return environment


# --- services and their rollout ------------------------------------------------------------
def stack_services(stack: str) -> list[dict[str, Any]]:
    """`docker service inspect` of every service of the stack."""
    names = docker("service", "ls", "--filter", f"label={NAMESPACE_LABEL}={stack}",
                   "--format", "{{.Name}}").split()
    return json.loads(docker("service", "inspect", *names)) if names else []


@dataclass(frozen=True)
class Before:
    """A service as it was before the deployment: its task spec and last update's start."""

    task_template: str
    update_started: str | None


def snapshot(services: Sequence[dict[str, Any]]) -> dict[str, Before]:
    """What a deployment may change, by service name."""
    return {service["Spec"]["Name"]: Before(
        json.dumps(service["Spec"]["TaskTemplate"], sort_keys=True),
        (service.get("UpdateStatus") or {}).get("StartedAt")) for service in services}


def running_counts(stack: str) -> dict[str, tuple[int, int]]:
    """Running (healthy, when a healthcheck exists) and desired tasks, by service name."""
    counts = {}
    listing = docker("service", "ls", "--filter", f"label={NAMESPACE_LABEL}={stack}",
                     "--format", "{{.Name}} {{.Replicas}}")
    for line in listing.splitlines():
        name, replicas = line.split()[:2]
        running, desired = re.match(r"(\d+)/(\d+)", replicas).groups()
        counts[name] = (int(running), int(desired))
    return counts


def rollout_state(service: dict[str, Any], before: Before | None) -> str:
    """`waiting`, `done`, or the state a new update stopped in (a rollback, a pause), for one
    service after a deployment."""
    status = service.get("UpdateStatus") or {}
    started = status.get("StartedAt")
    if before is None:
        return "done"  # created now: only its tasks' count remains to check
    if started is not None and started != before.update_started:
        # An update began after the snapshot (a rollback keeps its StartedAt).
        state = status.get("State", "")
        if state == COMPLETED:
            return "done"
        return state if state in STOPPED_STATES else "waiting"
    # No new update. Unchanged (an identical deployment may even clear the old status), or
    # changed and Swarm has not started rolling it out yet.
    spec = json.dumps(service["Spec"]["TaskTemplate"], sort_keys=True)
    return "done" if spec == before.task_template else "waiting"


def task_errors(service: str) -> str:
    """The service's recent task states and errors, for a failure message."""
    try:
        return docker("service", "ps", "--no-trunc", "--format",
                      "{{.Name}} {{.Image}} {{.CurrentState}} {{.Error}}", service).strip()
    except SwarmError as error:
        return str(error)


def settle(stack: str, before: Mapping[str, Before], deadline: float) -> dict[str, str]:
    """Wait until every service of the stack has finished its update (completed, rolled
    back or paused) and, when completed, runs all its tasks healthy; return each service's
    state (`done` or the update state it stopped in). SwarmError at the monotonic deadline."""
    last, reported = "", set()
    while True:
        counts = running_counts(stack)
        states, pending = {}, []
        for service in stack_services(stack):
            name = service["Spec"]["Name"]
            states[name] = rollout_state(service, before.get(name))
            if states[name] in STOPPED_STATES:
                if name not in reported:
                    reported.add(name)
                    logger.info("%s: update %s: %s", name, states[name],
                                (service.get("UpdateStatus") or {}).get("Message", ""))
                continue
            running, desired = counts.get(name, (0, 0))
            if states[name] != "done" or running != desired:
                pending.append(f"{name} {running}/{desired}"
                               + ("" if states[name] == "done" else " updating"))
        if not pending:
            logger.info("settled: %s", ", ".join(
                f"{name} {running}/{desired}" for name, (running, desired) in counts.items()))
            return states
        summary = ", ".join(pending)
        if summary != last:
            logger.info("waiting: %s", summary)
            last = summary
        if time.monotonic() >= deadline:
            details = "\n".join(task_errors(item.split()[0]) for item in pending)
            raise SwarmError(f"not converged in time: {summary}\n{details}")
        time.sleep(POLL_SECONDS)


def roll_back_with(stack: str, stopped: Mapping[str, str], states: Mapping[str, str],
                   before: Mapping[str, Before], deadline: float) -> None:
    """One service's update stopped (rolled back or paused): roll back the others this
    deployment updated, so the stack runs one version, then raise SwarmError naming it."""
    now = snapshot(stack_services(stack))
    updated = [name for name, state in states.items()
               if state == "done" and name in before and now.get(name) != before[name]]
    for name in updated:
        docker("service", "rollback", "--detach", name)
    if updated:
        settle(stack, now, deadline)
    problems = "; ".join(
        f"{name}: the update was {'rolled back' if state == ROLLED_BACK else state}"
        for name, state in stopped.items())
    also = f" (rolled back with it: {', '.join(updated)})" if updated else ""
    raise SwarmError(f"{problems}{also}; the previous version keeps serving.\n"
                     + "\n".join(task_errors(name) for name in stopped))


def remove_unused(stack: str, kind: str, keep: set[str]) -> None:
    """Remove the stack's configs or secrets (`kind`) other than `keep`; one still in use by
    a task is left for the next deployment."""
    names = docker(kind, "ls", "--filter", f"label={NAMESPACE_LABEL}={stack}",
                   "--format", "{{.Name}}").split()
    for name in set(names) - keep:
        try:
            docker(kind, "rm", name)
            logger.info("removed the unused %s %s", kind, name)
        except SwarmError as error:
            logger.info("kept %s %s: %s", kind, name, error)


def deploy(stack: str, files: Sequence[Path], environment: Mapping[str, str],
           timeout: float) -> None:
    """`docker stack deploy` the files under `stack` and wait for the rollout; SwarmError
    when a service's update was rolled back or paused (the others are rolled back too)."""
    before = snapshot(stack_services(stack))
    arguments = ["stack", "deploy", "--resolve-image", "never"]
    for path in files:
        arguments += ["--compose-file", str(path)]
    # The stack files' variables must be set: an unset one would deploy an empty value.
    docker(*arguments, stack, environ=environment)
    deadline = time.monotonic() + timeout
    states = settle(stack, before, deadline)
    stopped = {name: state for name, state in states.items() if state in STOPPED_STATES}
    if stopped:
        roll_back_with(stack, stopped, states, before, deadline)


def remove_stack(stack: str, timeout: float) -> None:
    """`docker stack rm` and wait until its containers and networks are gone (nothing to do
    on an engine in no swarm)."""
    if docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip() != "active":
        logger.info("this engine is in no swarm: no stack %s to remove", stack)
        return
    docker("stack", "rm", stack)
    deadline = time.monotonic() + timeout
    label = f"label={NAMESPACE_LABEL}={stack}"
    while True:
        left = (docker("ps", "--all", "--quiet", "--filter", label).split()
                + docker("network", "ls", "--quiet", "--filter", label).split())
        if not left:
            logger.info("removed stack %s (its volumes are kept)", stack)
            return
        if time.monotonic() >= deadline:
            raise SwarmError(f"stack {stack}: {len(left)} containers or networks still there "
                             f"after {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


# --- command line --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The command line: one of up, tracking, down, and the stack's settings."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.swarm",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("up", "tracking", "down"))
    parser.add_argument("--stack", required=True, help="the stack's name (COMPOSE_PROJECT_NAME)")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "swarm",
                        help="where the site config is written (build/swarm/<stack>/)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for the rollout (default 600)")
    parser.add_argument("--advertise-address", default="127.0.0.1",
                        help="for `docker swarm init` when the engine is in no swarm")
    parser.add_argument("--require-stack", action="store_true",
                        help="up: fail unless the stack is deployed (`make swarm-update`)")
    return parser


def run(arguments: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Carry out one command; SwarmError says what failed."""
    stack = arguments.stack
    if arguments.command == "down":
        remove_stack(stack, arguments.timeout)
        return
    ensure_manager(arguments.advertise_address)
    tracking_only = arguments.command == "tracking"
    if arguments.require_stack and not stack_services(stack):
        raise SwarmError(f"stack {stack} is not deployed: `make swarm-up` first")
    refuse_running_compose(stack)
    if tracking_only:
        environment = {**environ, **image_environment(environ, ["TRACKING_REF"])}
        deploy(stack, [TRACKING_FILE], environment, arguments.timeout)
        return
    objects = stack_objects(stack, arguments.work_dir / stack,
                            environ.get("FEEDBACK_TOKEN_SECRET", ""))
    environment = {**stack_environment(objects, environ),
                   **image_environment(environ, list(IMAGE_VARIABLES))}
    deploy(stack, [TRACKING_FILE, SERVICE_FILE], environment, arguments.timeout)
    for kind, variable in (("config", "NGINX_SITE"), ("secret", "FEEDBACK_TOKEN")):
        remove_unused(stack, kind, {item.name for item in objects if item.variable == variable})


def main(argv: list[str] | None = None) -> int:
    """Run the command; 0 on success, 1 with the reason logged."""
    return cli_main(build_parser(), lambda arguments: run(arguments, os.environ), argv, logger)


if __name__ == "__main__":
    sys.exit(main())
