"""The deploy targets' logic that needs no engine: how a Swarm rollout is judged from a
service's UpdateStatus, the objects named after their content, the stack files' variables,
and how replicas are judged. The real deployments run in tests/container/test_swarm.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import deployment, swarm
from pipeline.deployment import Replica


def service(task_template: dict[str, Any], update: dict[str, str] | None) -> dict[str, Any]:
    """A `docker service inspect` document with what rollout_state reads."""
    document: dict[str, Any] = {"Spec": {"Name": "s_app", "TaskTemplate": task_template}}
    if update is not None:
        document["UpdateStatus"] = update
    return document


OLD = {"ContainerSpec": {"Image": "app:1"}}
NEW = {"ContainerSpec": {"Image": "app:2"}}
EARLIER = "2026-12-04T05:00:00.1Z"
NOW = "2026-12-04T05:10:00.1Z"


@pytest.mark.parametrize(("after", "update", "expected"), [
    # created by this deployment: only its task count is left to check
    (NEW, None, "done"),
    # unchanged spec, no new update: nothing rolls
    (OLD, {"State": "completed", "StartedAt": EARLIER}, "done"),
    # unchanged spec deployed again: Swarm may clear the old update's status
    (OLD, {}, "done"),
    # new spec, Swarm has not started the update yet (the old one's status still shows)
    (NEW, {"State": "completed", "StartedAt": EARLIER}, "waiting"),
    (NEW, {"State": "updating", "StartedAt": NOW}, "waiting"),
    (NEW, {"State": "completed", "StartedAt": NOW}, "done"),
    # the rollback has put the old spec back: the new StartedAt gives it away
    (OLD, {"State": "rollback_started", "StartedAt": NOW}, "waiting"),
    (OLD, {"State": "rollback_completed", "StartedAt": NOW}, "rollback_completed"),
    (NEW, {"State": "paused", "StartedAt": NOW}, "paused"),
])
def test_rollout_state_reads_the_update_this_deployment_started(
        after: dict[str, Any], update: dict[str, str] | None, expected: str) -> None:
    before = swarm.snapshot([service(OLD, {"State": "completed", "StartedAt": EARLIER})])
    inspected = service(after, update or None)  # {}: no UpdateStatus at all
    state = swarm.rollout_state(inspected, None if update is None else before["s_app"])
    assert state == expected


def test_a_content_object_is_named_after_its_content(tmp_path: Path) -> None:
    path = tmp_path / "site.conf"
    path.write_text("a")
    first = swarm.content_object("stack", "NGINX_SITE", path)
    assert re.fullmatch(r"stack_nginx_site_[0-9a-f]{12}", first.name)
    assert swarm.content_object("stack", "NGINX_SITE", path) == first
    path.write_text("b")
    assert swarm.content_object("stack", "NGINX_SITE", path).name != first.name


def test_without_a_token_the_secret_is_blank_so_feedback_stays_disabled(tmp_path: Path) -> None:
    objects = swarm.stack_objects("stack", tmp_path, token_file="")
    token = next(item for item in objects if item.variable == "FEEDBACK_TOKEN")
    # Swarm refuses an empty secret; the app strips the newline and disables feedback.
    assert token.path.read_bytes() == b"\n"
    given = tmp_path / "token"
    given.write_text("s3cret-token-of-32-characters-xx\n")
    objects = swarm.stack_objects("stack", tmp_path, token_file=str(given))
    assert next(item for item in objects if item.variable == "FEEDBACK_TOKEN").path == given


def stack_variables() -> set[str]:
    """Every ${VARIABLE} the two stack files read, without a default."""
    text = swarm.TRACKING_FILE.read_text() + swarm.SERVICE_FILE.read_text()
    return set(re.findall(r"\$\{(\w+)\}", text))


def test_every_variable_without_a_default_is_set_by_make_or_pipeline_swarm(
        tmp_path: Path) -> None:
    objects = swarm.stack_objects("stack", tmp_path, token_file="")
    environment = swarm.stack_environment(objects, {})
    exported = set(re.findall(r"^export (\w+) \?=", (swarm.ROOT / "Makefile").read_text(), re.M))
    assert stack_variables() <= exported | set(environment) | set(swarm.IMAGE_VARIABLES)


def test_the_app_rolls_out_start_first_and_rolls_back_on_failure() -> None:
    stack = yaml.safe_load(swarm.SERVICE_FILE.read_text())
    app = stack["services"]["app"]
    assert app["deploy"]["update_config"]["order"] == "start-first"
    assert app["deploy"]["update_config"]["failure_action"] == "rollback"
    # No IPVS on some kernels (and no need for a VIP): every service resolves to its tasks.
    tracking = yaml.safe_load(swarm.TRACKING_FILE.read_text())
    for services in (stack["services"], tracking["services"]):
        for name, spec in services.items():
            assert spec["deploy"]["endpoint_mode"] == "dnsrr", name
            assert spec["read_only"] is True, name
            assert spec["cap_drop"] == ["ALL"], name
    assert stack["services"]["nginx"]["ports"][0]["mode"] == "host"


def test_dockerfile_defaults_are_read_from_the_nginx_image() -> None:
    defaults = swarm.dockerfile_defaults()
    assert defaults["NGINX_LISTEN"] == "80"
    assert defaults["NGINX_BACKEND"] == "credit_risk_app"


# --- replicas ------------------------------------------------------------------------------
def replica(name: str, version: str, problem: str = "") -> Replica:
    """A replica on node n1 of image app:1."""
    return Replica(name, "n1", "app:1", "abc", version, problem)


def test_mismatches_name_each_replica_that_is_wrong() -> None:
    replicas = [replica("a", "v2"), replica("b", "v1"), replica("c", "", "exec failed")]
    assert deployment.mismatches(replicas, "v2") == ["b serves model v1, expected v2",
                                                     "c: exec failed"]
    assert deployment.mismatches(replicas[:1], "v2") == []
    assert deployment.mismatches([], None) == ["no replica of the app is running"]


def pod(name: str, ready: str, containers: list[str]) -> dict[str, Any]:
    """A pod as `kubectl get pods -o json` lists it, with what pod_replicas reads."""
    return {"metadata": {"name": name},
            "spec": {"nodeName": "node-1",
                     "containers": [{"name": c, "image": f"registry/{c}:7"} for c in containers]},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_pods_are_read_through_their_app_container_and_asked_only_when_ready() -> None:
    pods = {"items": [pod("p1", "True", ["follower", "app"]), pod("p2", "False", ["app"])]}
    asked = []

    def ask(name: str) -> deployment.Readyz:
        asked.append(name)
        return deployment.Readyz("v3", "v4 (shadow, 10%)")

    replicas = deployment.pod_replicas(pods, ask)
    assert asked == ["p1"]
    assert [(r.name, r.image, r.model_version, r.problem, r.canary) for r in replicas] == [
        ("p1", "registry/app:7", "v3", "", "v4 (shadow, 10%)"),
        ("p2", "registry/app:7", "", "pod not ready", "")]


@pytest.mark.parametrize(("printed", "expected"), [
    ('{"status": "ready", "model_version": "v2", "canary": null}', ("v2", "", "")),
    ('{"status": "ready", "model_version": "v2", "canary": {"version": "v3", "mode": '
     '"canary", "share": 0.2}}', ("v2", "v3 (canary, 20%)", "")),
    ('{"status": "ready", "model_version": "v2"}', ("v2", "", "")),
])
def test_a_replicas_readyz_gives_its_model_and_its_canary(
        printed: str, expected: tuple[str, str, str]) -> None:
    answer = deployment.readyz_answer(printed + "\n")
    assert (answer.model_version, answer.canary, answer.problem) == expected


@pytest.mark.parametrize("printed", ["v2", '{"status": "starting"}', "[]", ""])
def test_a_readyz_answer_without_a_version_is_a_problem_naming_it(printed: str) -> None:
    answer = deployment.readyz_answer(printed)
    assert answer.model_version == "" and "/readyz answered" in answer.problem


def test_the_report_lists_every_replica(tmp_path: Path) -> None:
    deployment.write_report(tmp_path / "deploy.json", "swarm", "stack", "http://h:1",
                            [replica("a", "v2")])
    written = json.loads((tmp_path / "deploy.json").read_text())
    assert written["target"] == "swarm" and written["url"] == "http://h:1"
    assert written["replicas"] == [{"name": "a", "node": "n1", "image": "app:1",
                                    "revision": "abc", "model_version": "v2", "problem": "",
                                    "canary": ""}]
