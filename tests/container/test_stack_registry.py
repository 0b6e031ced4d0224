"""The stack's registry of record is its MLflow server: the gate registers there, the
follower brings the app along with the production alias, and the app outlives the server."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import docker
import pytest
import requests

from pipeline.deployment import replica_probe
from tests.container.support import Images, Stack, run_make
from tests.helpers import wait_until
from training.canary_release import arm_position
from training.gate import PROMOTED
from training.tracking import PRODUCTION_ALIAS, REGISTERED_MODEL, VERSION_TAG

pytestmark = pytest.mark.slow

# Hang guards for events (a follower check every 5 s, a worker's swap every 5 s), not timings.
FOLLOW_DEADLINE = 180
# One quick family, so that the training container's run takes seconds.
QUICK_TRAINING = {"TRAINING_MODEL_FAMILIES": "logistic_regression", "TRAINING_CV_FOLDS": "3"}
# The training container's first step: a challenger trained on the image's data.
TRAIN_CANDIDATE = "python -m training train --data data/credit.csv --output /tmp/candidate"
# Run in the app container: its Gunicorn's /metrics, which sums up every live worker.
METRICS_PROBE = replica_probe("/metrics", timeout=10)
# credit_model_info is 1 for a version some live worker serves (multiprocess livemax).
SERVED_SAMPLE = re.compile(r'^credit_model_info\{version="([^"]+)"\} 1\.0$', re.MULTILINE)


def served_version(stack: Stack) -> str:
    """The version the stack serves, through NGINX."""
    answer = requests.get(f"{stack.url}/readyz", timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model_version"])


def worker_versions(stack: Stack, client: docker.DockerClient) -> set[str]:
    """The versions the app container's live workers serve, from its own /metrics: one
    answer through NGINX speaks for whichever worker took it, not for the others."""
    probed = stack.container(client, "app").exec_run(["python", "-c", METRICS_PROBE])
    text = probed.output.decode()
    assert probed.exit_code == 0, text[-2000:]
    return set(SERVED_SAMPLE.findall(text))


def wait_for_every_worker(stack: Stack, client: docker.DockerClient, version: str) -> None:
    """Wait until every live worker of the app serves `version` (each swaps on its own)."""
    wait_until(lambda: worker_versions(stack, client) == {version}, FOLLOW_DEADLINE,
               f"every worker serving {version}")


def registry_state(stack: Stack) -> dict[str, Any]:
    """The app's view of where its versions come from (/api/v1/model's registry)."""
    answer = requests.get(f"{stack.url}/api/v1/model", timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["registry"])


def mlflow_api(stack: Stack, path: str, **params: str) -> dict[str, Any]:
    """A GET of MLflow's REST API on its loopback-published port."""
    answer = requests.get(f"http://127.0.0.1:{stack.variables['MLFLOW_PORT']}/api/2.0/mlflow/"
                          f"{path}", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def alias_version(stack: Stack) -> str:
    """The registry name of the version MLflow's production alias names."""
    found = mlflow_api(stack, "registered-models/alias", name=REGISTERED_MODEL,
                       alias=PRODUCTION_ALIAS)["model_version"]
    return next(tag["value"] for tag in found["tags"] if tag["key"] == VERSION_TAG)


def training_container(stack: Stack, images: Images, client: docker.DockerClient,
                       script: str) -> str:
    """Run a shell script in a training container as gate-image's, but with a cache of its
    own (not the stack's registry volume): what it changes reaches the app only through
    MLflow and the follower. Returns its output; a failure shows it."""
    container = client.containers.run(
        images.tracking, ["sh", "-c", script], detach=True,
        network=f"{stack.project}_default",
        environment={"MLFLOW_TRACKING_URI": "http://mlflow:5000", "TRAINING_TRACKING": "on",
                     "MLFLOW_DISABLE_TELEMETRY": "true", **QUICK_TRAINING})
    try:
        status = container.wait(timeout=600)["StatusCode"]
        output = container.logs().decode()
    finally:
        container.remove(force=True)
    assert status == 0, output[-4000:]
    return output


def test_the_gate_registered_the_image_model_and_the_follower_is_in_step(
        stack: Stack, images: Images) -> None:
    assert json.loads((stack.reports / "gate.json").read_text())["decision"] == PROMOTED
    # The version the stack serves is the one MLflow's alias names, not a folder's own idea.
    assert alias_version(stack) == served_version(stack)
    state = wait_until(lambda: (lambda s: s if s["in_step"] else None)(registry_state(stack)),
                       FOLLOW_DEADLINE, "the follower reporting in step")
    assert state["server"] == "http://mlflow:5000" and state["error"] is None


def test_the_app_follows_the_alias_outlives_mlflow_and_follows_a_rollback(
        stack: Stack, images: Images, docker_client: docker.DockerClient) -> None:
    before = served_version(stack)

    # Train and gate a challenger into MLflow, then promote it there: only the alias moves.
    output = training_container(
        stack, images, docker_client,
        TRAIN_CANDIDATE + " && { python -m training gate --candidate /tmp/candidate; status=$?;"
        " [ $status -eq 0 ] || [ $status -eq 4 ]; }"
        " && version=$(python -c \"import json; print(json.load(open("
        "'/var/lib/credit/reports/gate.json'))['challenger']['version'])\")"
        " && python -m training promote \"$version\" --reason 'stack test'"
        " && echo \"promoted=$version\"")
    promoted = output.rsplit("promoted=", 1)[1].split()[0]
    assert promoted != before and alias_version(stack) == promoted
    wait_for_every_worker(stack, docker_client, promoted)

    # MLflow stops: the follower says so, the app keeps serving the same version.
    stopped = stack.compose("stop", "mlflow")
    assert stopped.returncode == 0, stopped.stderr
    state = wait_until(lambda: (lambda s: s if s["in_step"] is False else None)(
        registry_state(stack)), FOLLOW_DEADLINE, "the app reporting the registry unreachable")
    assert "unreachable" in state["error"]
    for _ in range(5):
        assert served_version(stack) == promoted
        assert requests.get(f"{stack.url}/readyz", timeout=30).status_code == 200

    # MLflow is back; a rollback there moves the alias, and the app follows it.
    made = run_make("tracking-up", stack.variables)
    assert made.status == 0, made.tail()
    training_container(stack, images, docker_client,
                       "python -m training rollback --reason 'stack test'")
    assert alias_version(stack) == before
    wait_for_every_worker(stack, docker_client, before)
    wait_until(lambda: registry_state(stack)["in_step"], FOLLOW_DEADLINE,
               "the follower back in step")


def canary_of(stack: Stack) -> dict[str, Any] | None:
    """The canary release a worker of the stack applies, from /readyz through NGINX."""
    answer = requests.get(f"{stack.url}/readyz", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["canary"]


def test_promotion_canary_runs_the_challenger_beside_production_until_the_report_ends_it(
        stack: Stack, images: Images, docker_client: docker.DockerClient) -> None:
    production = alias_version(stack)
    wait_for_every_worker(stack, docker_client, production)
    # PROMOTION=canary: the gate releases the challenger on half the requests instead.
    gate = ("TRAINING_PROMOTION=canary TRAINING_CANARY_SHARE=0.5 python -m training gate "
            "--candidate /tmp/candidate")
    output = training_container(stack, images, docker_client,
                                f"{TRAIN_CANDIDATE} && {gate} && python -m training canary-status")
    status = json.loads(output[output.index('{\n  "production"'):])
    challenger = status["canary"]["version"]
    assert status["production"] == production and challenger != production
    # The follower mirrors the release into the stack's folder; the workers apply it.
    wait_until(lambda: (canary_of(stack) or {}).get("version") == challenger,
               FOLLOW_DEADLINE, f"a worker applying canary {challenger}")
    applicant = requests.get(f"{stack.url}/api/v1/openapi.json", timeout=30).json()[
        "components"]["schemas"]["Applicant"]["example"]
    traces = [f"stack-canary-{n}" for n in range(12)]
    arms = {}
    for trace in traces:  # under NGINX's per-client rate: a short pause between requests
        answer = requests.post(f"{stack.url}/api/v1/predict", json=applicant,
                               headers={"X-Request-ID": trace}, timeout=30)
        assert answer.status_code == 200, answer.text
        arms[trace] = (answer.headers["X-Model-Arm"], answer.headers["X-Model-Version"])
        time.sleep(0.2)
    expected = {trace: ("canary", challenger) if arm_position(trace) < 0.5
                else ("production", production) for trace in traces}
    # A worker that had not followed yet answers production; none answers a wrong pairing.
    assert all(arms[t] in (expected[t], ("production", production)) for t in traces), arms
    assert ("canary", challenger) in arms.values()

    # The canary job's command: nothing fed back yet, so it waits (make: exit 2) and says why.
    made = run_make("canary-report-image", {**stack.variables, "CANARY_ACT": "true"})
    report = json.loads((stack.reports / "canary-report.json").read_text())
    assert made.status != 0 and report["recommendation"] == "wait", made.tail()
    assert report["arms"]["canary"]["rows"] >= 1 and report["actions"] == []
    assert "labelled outcomes in the smaller arm" in report["test_result"]

    # Aborted through the stack's registry of record: production answers everything again.
    made = run_make("training-image", {**stack.variables,
                                       "ARGS": "canary-abort --reason 'stack test'"})
    assert made.status == 0, made.tail()
    wait_until(lambda: all(canary_of(stack) is None for _ in range(6)), FOLLOW_DEADLINE,
               "every worker dropping the canary")
    assert served_version(stack) == production
