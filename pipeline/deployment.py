"""Where the service was deployed and what every replica serves: `python -m pipeline.deployment`.

The smoke test's second half. For each replica of the app (the compose project's app
containers, the Swarm stack's running app tasks, or the Helm release's pods) it reads the
image the replica runs and asks the replica itself, inside its container, which model
version its /readyz names; with --expected-version it waits (bounded) until every replica
names that version (a node's follower may still be fetching it) and fails otherwise.
reports/deploy.json records the answer for the build summary.

Standard library only (see pipeline/__init__.py); docker and kubectl are called as CLIs.
Exit status 0 when every replica is ready (on the expected version), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.commands import CommandError, cli_main, output

logger = logging.getLogger("pipeline.deployment")

TARGETS = ("compose", "swarm", "kubernetes")
# The Helm chart's name: its pods' app.kubernetes.io/name label (deploy/helm/credit-risk).
CHART = "credit-risk"
REPORT_FILE = "deploy.json"


def replica_probe(path: str, timeout: float) -> str:
    """Python source to run inside a replica's container: GET `path` of its own Gunicorn
    (not a neighbour's, as through NGINX) and print the body; non-zero exit on an error."""
    return ("import os, urllib.request; "
            "port = os.environ['GUNICORN_BIND'].rsplit(':', 1)[1]; "
            f"print(urllib.request.urlopen(f'http://127.0.0.1:{{port}}{path}', "
            f"timeout={timeout:g}).read().decode())")


# A replica's own /readyz: the model version it serves, and the canary it applies (JSON).
READYZ_PROBE = replica_probe("/readyz", timeout=4)
# The app image's revision label (the Dockerfile's org.opencontainers.image.revision).
REVISION_LABEL = "org.opencontainers.image.revision"
COMMAND_TIMEOUT = 60.0
POLL_SECONDS = 3.0


class DeploymentError(CommandError):
    """A replica that cannot be listed or asked, or that serves the wrong version."""


@dataclass
class Replica:
    """One replica of the app: where it runs, its image, and the model it serves."""

    name: str
    node: str
    image: str
    revision: str
    model_version: str  # "" when the replica could not be asked; `problem` says why
    problem: str = ""
    canary: str = ""  # the canary release it applies, e.g. "v2 (canary, 10%)"; "" for none


@dataclass(frozen=True)
class Readyz:
    """What a replica's own /readyz said, or why it could not be asked."""

    model_version: str = ""
    canary: str = ""
    problem: str = ""


def run(command: Sequence[str]) -> str:
    """Run a CLI and return its stdout; DeploymentError with its stderr on failure."""
    return output(command, COMMAND_TIMEOUT, error=DeploymentError)


def asked(command: Sequence[str]) -> Readyz:
    """What a probe command (READYZ_PROBE in the replica) prints, or why it printed none."""
    try:
        return readyz_answer(run(command))
    except DeploymentError as error:
        return Readyz(problem=str(error))


def readyz_answer(printed: str) -> Readyz:
    """The model version and canary release of a /readyz body printed as JSON."""
    try:
        body = json.loads(printed)
        version = str(body["model_version"])
    except (ValueError, TypeError, KeyError) as error:
        return Readyz(problem=f"/readyz answered {printed.strip()[:200]!r} ({error!r})")
    release = body.get("canary")
    canary = (f"{release.get('version')} ({release.get('mode')}, "
              f"{release.get('share', 0):.0%})" if isinstance(release, dict) else "")
    return Readyz(version, canary)


# --- Docker: compose containers and Swarm tasks --------------------------------------------
def container_replica(container_id: str, name: str, node: str) -> Replica:
    """A replica running in a container of this engine."""
    details = json.loads(run(["docker", "inspect", container_id]))[0]
    image = json.loads(run(["docker", "image", "inspect", details["Image"]]))[0]
    labels = image["Config"].get("Labels") or {}
    answer = asked(["docker", "exec", container_id, "python", "-c", READYZ_PROBE])
    return Replica(name, node, details["Config"]["Image"], labels.get(REVISION_LABEL, ""),
                   answer.model_version, answer.problem, answer.canary)


def compose_replicas(project: str) -> list[Replica]:
    """The running app containers of the compose project."""
    listing = run(["docker", "ps", "--filter", f"label=com.docker.compose.project={project}",
                   "--filter", "label=com.docker.compose.service=app",
                   "--format", "{{.ID}} {{.Names}}"])
    return [container_replica(cid, name, "this host")
            for cid, name in (line.split() for line in listing.splitlines())]


def swarm_replicas(stack: str) -> list[Replica]:
    """The stack's app tasks that should be running, asked through their containers (a task
    on another node is listed with its image, unasked)."""
    service = f"{stack}_app"
    task_ids = run(["docker", "service", "ps", "--quiet", "--no-trunc",
                    "--filter", "desired-state=running", service]).split()
    tasks = json.loads(run(["docker", "inspect", *task_ids])) if task_ids else []
    node_names = {}
    replicas = []
    for task in tasks:
        node_id = task.get("NodeID", "")
        if node_id and node_id not in node_names:
            node_names[node_id] = run(["docker", "node", "inspect", "--format",
                                       "{{.Description.Hostname}}", node_id]).strip()
        name = f"{service}.{task.get('Slot') or node_id}.{task['ID'][:12]}"
        node = node_names.get(node_id, "unassigned")
        container = (task.get("Status", {}).get("ContainerStatus") or {}).get("ContainerID")
        try:
            replicas.append(container_replica(container, name, node))
        except DeploymentError as error:
            image = task["Spec"]["ContainerSpec"]["Image"]
            replicas.append(Replica(name, node, image, "", "",
                                    f"{task['Status']['State']}, not on this node or gone "
                                    f"({error})"))
    return replicas


# --- Kubernetes: the Helm release's pods ---------------------------------------------------
def pod_replicas(pods: dict[str, Any], ask: Callable[[str], Readyz]) -> list[Replica]:
    """Replicas from `kubectl get pods -o json`: the app container's image, each pod asked
    through `ask` (pod name -> its /readyz answer)."""
    replicas = []
    for pod in pods.get("items", []):
        name = pod["metadata"]["name"]
        app = next((c for c in pod["spec"]["containers"] if c["name"] == "app"),
                   pod["spec"]["containers"][0])
        ready = any(condition.get("type") == "Ready" and condition.get("status") == "True"
                    for condition in pod.get("status", {}).get("conditions", []))
        answer = ask(name) if ready else Readyz(problem="pod not ready")
        replicas.append(Replica(name, pod["spec"].get("nodeName", "unscheduled"),
                                app["image"], "", answer.model_version, answer.problem,
                                answer.canary))
    return replicas


def kubernetes_replicas(release: str, namespace: str, kubectl_path: str) -> list[Replica]:
    """The pods of the Helm release (the chart's selector labels)."""
    kubectl = [kubectl_path, "--namespace", namespace]
    pods = json.loads(run([*kubectl, "get", "pods", "--output", "json", "--selector",
                           f"app.kubernetes.io/name={CHART},app.kubernetes.io/instance={release}"]))
    return pod_replicas(pods, lambda pod: asked(
        [*kubectl, "exec", pod, "--container", "app", "--", "python", "-c", READYZ_PROBE]))


# --- the check -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Where:
    """A deployment: its target, its name (project, stack or release) and, for Kubernetes,
    the namespace and the kubectl to ask with."""

    target: str
    name: str
    namespace: str = "default"
    kubectl: str = "kubectl"


def list_replicas(where: Where) -> list[Replica]:
    """The replicas of the deployment."""
    if where.target == "compose":
        return compose_replicas(where.name)
    if where.target == "swarm":
        return swarm_replicas(where.name)
    return kubernetes_replicas(where.name, where.namespace, where.kubectl)


def mismatches(replicas: Sequence[Replica], expected: str | None) -> list[str]:
    """What is wrong: no replica, a replica not asked, or one on another model version."""
    if not replicas:
        return ["no replica of the app is running"]
    wrong = []
    for replica in replicas:
        if replica.problem:
            wrong.append(f"{replica.name}: {replica.problem}")
        elif expected is not None and replica.model_version != expected:
            wrong.append(f"{replica.name} serves model {replica.model_version}, "
                         f"expected {expected}")
    return wrong


def check(where: Where, expected: str | None, timeout: float) -> list[Replica]:
    """The replicas once all of them serve `expected` (any version when None);
    DeploymentError listing what is still wrong at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        replicas = list_replicas(where)
        wrong = mismatches(replicas, expected)
        if not wrong:
            return replicas
        if time.monotonic() >= deadline:
            raise DeploymentError(f"after {timeout:.0f} s: " + "; ".join(wrong))
        logger.info("wait: %s", "; ".join(wrong))
        time.sleep(POLL_SECONDS)


def write_report(path: Path, target: str, name: str, url: str,
                 replicas: Sequence[Replica]) -> None:
    """reports/deploy.json: the target, the deployment's name, its URL and its replicas."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"target": target, "name": name, "url": url,
                                "replicas": [asdict(replica) for replica in replicas]},
                               indent=2) + "\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.deployment",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=TARGETS, required=True)
    parser.add_argument("--name", required=True,
                        help="compose project, Swarm stack or Helm release")
    parser.add_argument("--namespace", default="default", help="Kubernetes namespace")
    parser.add_argument("--kubectl", default="kubectl", help="the kubectl to ask pods with")
    parser.add_argument("--url", default="", help="the public URL, for the report")
    parser.add_argument("--expected-version", default=None,
                        help="every replica must serve this model version")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for every replica to be on it (default 120)")
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    return parser


def check_and_report(arguments: argparse.Namespace) -> None:
    """Wait for every replica to be as expected, then write reports/deploy.json."""
    where = Where(arguments.target, arguments.name, arguments.namespace, arguments.kubectl)
    replicas = check(where, arguments.expected_version, arguments.timeout)
    write_report(arguments.reports / REPORT_FILE, arguments.target, arguments.name,
                 arguments.url, replicas)
    for replica in replicas:
        logger.info("ok   %s on %s: image %s (revision %s), model %s%s", replica.name,
                    replica.node, replica.image, replica.revision[:12] or "?",
                    replica.model_version,
                    f", canary {replica.canary}" if replica.canary else "")


def main(argv: list[str] | None = None) -> int:
    """Check the replicas and write reports/deploy.json; 0 when all are as expected."""
    return cli_main(build_parser(), check_and_report, argv, logger)


if __name__ == "__main__":
    sys.exit(main())
