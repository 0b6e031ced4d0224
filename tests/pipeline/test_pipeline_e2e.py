"""`make pipeline` end to end: every real stage, the summary, and the e-mail.

Docker mode when an engine answers (CI=true requires one), native mode otherwise; set
PIPELINE_MODE to force one. Reports, registry and model go to a temp directory, the native
service listens on a free port, and the e-mail goes to a real SMTP server started here.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from pipeline import preflight, runner
from pipeline.stages import DOCKER, STAGES
from tests.container.support import (docker_client, remove_built_images,
                                     remove_project_volumes)
from tests.helpers import IN_CI, free_port, require_component
from tests.pipeline.test_notify import SMTP_READY_WITHIN, Inbox
from training.report_names import PLOT_FILES, PLOTS_DIR

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FAILING_TEST = "tests/pipeline/fixtures/deliberately_failing.py"
TIMEOUT = 45 * 60  # a whole pipeline on a 2-core machine: training, tests, image, deploy


def pipeline_mode() -> str:
    """Docker when an engine answers, else native (PIPELINE_MODE overrides); CI needs Docker.

    Locally a mode whose components are missing skips ("needs NGINX", "needs Docker"); in CI
    it fails (`require_component`)."""
    mode, reason = runner.detect_mode(os.environ)
    if IN_CI and not os.environ.get("PIPELINE_MODE"):
        require_component(mode == DOCKER, f"needs Docker: the pipeline test runs in Docker "
                                          f"mode in CI, and {reason}")
    problem = preflight.check(preflight.pipeline_job(mode))
    require_component(problem is None, f"needs {problem.split(' needs ', 1)[-1]}"
                      if problem else "")
    return mode


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Make variables and environment for one isolated pipeline run; stops what it deployed."""
    mode = pipeline_mode()
    variables = {"REPORTS": str(tmp_path / "reports"), "MODEL_REGISTRY": str(tmp_path / "registry"),
                 "MODEL_DIR": str(tmp_path / "model"), "PIPELINE_MODE": mode}
    run_id = uuid.uuid4().hex[:8]
    if mode == DOCKER:
        # A stack of its own: images, compose project, volumes and public port apart from
        # the developer's stack on 8005.
        variables.update(IMAGE_TAG=f"e2e-{run_id}", COMPOSE_PROJECT_NAME=f"credit-e2e-{run_id}",
                         PUBLIC_PORT=str(free_port()), MLFLOW_PORT=str(free_port()))
    else:
        # A service of its own: ports, pid files and logs apart from any `make serve`.
        variables.update(SERVE_PORT=str(free_port()), GUNICORN_PORT=str(free_port()),
                         RUN_DIR=str(tmp_path / "run"))
    yield variables
    stop = "down" if mode == DOCKER else "serve-stop"
    subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), stop,
                    *[f"{key}={value}" for key, value in variables.items()]],
                   env=clean_env({}), capture_output=True, timeout=300, check=False)
    if mode == DOCKER:
        client = docker_client()
        remove_project_volumes(client, variables["COMPOSE_PROJECT_NAME"])
        remove_built_images(client, variables["IMAGE_TAG"])
        client.close()


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without the outer make's state (when run by make test)."""
    environ = {key: value for key, value in os.environ.items()
               if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SMTP_HOST", "NOTIFY_TO")}
    return {**environ, **extra}


def make_pipeline(variables: dict[str, str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run `make pipeline` with the run's variables; its output is kept for the assertions."""
    assert shutil.which("make")
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "pipeline",
                           *[f"{key}={value}" for key, value in variables.items()]],
                          env=clean_env(env), capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)


def test_pipeline_runs_every_stage_to_a_green_summary_and_an_email(
        workspace: dict[str, str]) -> None:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port,
                            ready_timeout=SMTP_READY_WITHIN)
    controller.start()
    try:
        result = make_pipeline(workspace, {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
                                           "SMTP_TLS": "none", "NOTIFY_TO": "team@example.com"})
    finally:
        controller.stop()
    output = result.stdout[-6000:] + result.stderr[-3000:]
    reports = Path(workspace["REPORTS"])
    record = json.loads((reports / "stages.json").read_text())
    assert result.returncode == 0, output
    assert record["status"] == "SUCCESS" and record["mode"] == workspace["PIPELINE_MODE"]
    assert [stage["name"] for stage in record["stages"]] == [
        runner.PREFLIGHT, *(stage.name for stage in STAGES)]
    results = {stage["result"] for stage in record["stages"]}
    assert results <= {runner.PASSED, runner.NOT_APPLICABLE}, record
    summary = (reports / "summary.txt").read_text()
    assert summary.startswith("credit-risk pipeline: SUCCESS"), summary
    assert "decision: promoted" in summary
    for kind in ("unit", "data", "gate"):
        assert (reports / f"junit-{kind}.xml").is_file(), kind
    # Model tests: junit-model.xml natively, junit-model-image.xml out of the image.
    assert list(reports.glob("junit-model*.xml"))
    assert len(inbox.messages) == 1, output
    message = inbox.messages[0]
    assert message["Subject"].startswith("credit-risk SUCCESS"), message["Subject"]
    assert message.get_body(preferencelist=("html",)) is not None
    # The model build's plots reached reports/ (out of the image in Docker mode) and the
    # e-mail, inline.
    assert sorted(path.name for path in (reports / PLOTS_DIR).glob("*.png")) == sorted(PLOT_FILES)
    assert sorted(part.get_filename() for part in message.walk()
                  if part.get_content_type() == "image/png") == sorted(PLOT_FILES)


def test_failing_stage_gives_a_red_summary_naming_it(workspace: dict[str, str]) -> None:
    variables = dict(workspace, PYTEST_ARGS=f"{FAILING_TEST} -k deliberately_failing")
    result = make_pipeline(variables, {})
    reports = Path(workspace["REPORTS"])
    record = json.loads((reports / "stages.json").read_text())
    stages = {stage["name"]: stage["result"] for stage in record["stages"]}
    assert result.returncode != 0
    assert stages["unit tests"] == runner.FAILED, result.stdout[-4000:]
    assert stages["build image"] == runner.NOT_RUN
    summary = (reports / "summary.txt").read_text()
    assert summary.startswith("credit-risk pipeline: FAILURE - stage 'unit tests' failed")
    assert "test_deliberately_failing_stage" in summary
    (eml,) = (reports / "outbox").glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == "credit-risk FAILURE: stage 'unit tests' failed (local run)"
    assert "SMTP_HOST is not set" in result.stdout
