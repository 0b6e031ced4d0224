"""The stage runner (`python -m pipeline run`), driving real make on a stand-in Makefile.

The stand-in has every target pipeline/stages.py names; each one records that it ran and
does what the test asks (fail, or make the gate promote, keep the champion or fail the
floor). The runner, make's exit statuses, the stage record, the summary and the outbox are
all real; only the work behind the targets is replaced, so these tests take seconds.
"""

from __future__ import annotations

import ast
import email
import email.policy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import runner
from pipeline.stages import DOCKER, NATIVE, STAGES, all_targets

ROOT = Path(__file__).resolve().parents[2]

# Each stand-in target: note its name, fail if FAIL names it; the gate targets write the
# decision GATE asks for to reports/gate.json and exit with the gate's own status.
GATE_RECIPE = (
    '\t@$(PY) -c "import json, os, sys; d = os.environ.get(\'GATE\', \'promoted\'); '
    "open(os.path.join(os.environ['REPORTS_DIR'], 'gate.json'), 'w').write("
    "json.dumps({'decision': d, 'reasons': ['stand-in'], 'checks': []})); "
    "sys.exit({'promoted': 0, 'champion_kept': 4, 'failed': 3}[d])\"\n")


def stand_in_makefile(directory: Path) -> None:
    """Write a Makefile with every stage target plus `report` and `notify`."""
    lines = ["SHELL := /bin/bash\n", ".PHONY: report notify\n"]
    for target in sorted(all_targets()):
        lines.append(f"{target}:\n\t@echo {target} >> $(RAN_LOG)\n")
        lines.append(f'\t@if [ "$(FAIL)" = "{target}" ]; then echo "{target} broke"; '
                     "exit 1; fi\n")
        if target in ("gate", "gate-image", "retrain", "retrain-image"):
            lines.append(GATE_RECIPE)
    lines.append("report:\n\t$(PY) -m pipeline report\n")
    lines.append("notify:\n\t$(PY) -m pipeline notify\n")
    (directory / "Makefile").write_text("".join(lines))


def run_pipeline(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess,
                                                                  dict, list[str]]:
    """Run `python -m pipeline run` in a directory holding the stand-in Makefile."""
    stand_in_makefile(tmp_path)
    reports, ran = tmp_path / "reports", tmp_path / "ran.txt"
    environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(ROOT),
               "PY": sys.executable, "REPORTS_DIR": str(reports), "RAN_LOG": str(ran),
               "PIPELINE_MODE": NATIVE, **env}
    result = subprocess.run([sys.executable, "-m", "pipeline", "run", *args], cwd=tmp_path,
                            env=environ, capture_output=True, text=True, timeout=120)
    record = json.loads((reports / "stages.json").read_text())
    return result, record, ran.read_text().split() if ran.exists() else []


def results(record: dict) -> dict[str, str]:
    """Stage name -> result."""
    return {stage["name"]: stage["result"] for stage in record["stages"]}


def outbox_message(tmp_path: Path) -> email.message.EmailMessage:
    """The one message in reports/outbox/."""
    (path,) = (tmp_path / "reports" / "outbox").glob("*.eml")
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def test_native_run_passes_every_stage_in_order(tmp_path: Path) -> None:
    result, record, ran = run_pipeline(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert record["status"] == "SUCCESS" and record["mode"] == NATIVE
    assert ran == ["setup", "lint", "test-unit", "test-data", "train-floor", "gate", "serve",
                   "smoke"]
    assert results(record)["reports from image"] == runner.NOT_APPLICABLE
    assert set(results(record).values()) == {runner.PASSED, runner.NOT_APPLICABLE}
    # One progress line per stage: number, name, mode, result, duration.
    progress = re.findall(r"stage (\d)/9  (.{18}) (\w+)\s+([A-Z ]+?)\s+(\d+\.\d)s",
                          result.stdout)
    assert [(n, name.strip(), mode) for n, name, mode, _, _ in progress] == [
        (str(i), stage.name, NATIVE) for i, stage in enumerate(STAGES, start=1)]
    summary = (tmp_path / "reports" / "summary.txt").read_text()
    assert summary.startswith("credit-risk pipeline: SUCCESS")
    message = outbox_message(tmp_path)
    assert message["X-Pipeline-Status"] == "SUCCESS"
    assert "SMTP_HOST is not set" in result.stdout


def test_docker_mode_runs_exactly_the_jenkins_targets(tmp_path: Path) -> None:
    result, record, ran = run_pipeline(tmp_path, PIPELINE_MODE=DOCKER)
    assert result.returncode == 0, result.stdout
    assert ran == [stage.docker_target for stage in STAGES]
    assert record["mode"] == DOCKER and "PIPELINE_MODE=docker" in record["mode_reason"]


def test_failed_stage_stops_the_run_and_gives_a_red_summary(tmp_path: Path) -> None:
    result, record, ran = run_pipeline(tmp_path, FAIL="test-data")
    assert result.returncode == 1
    assert ran[-1] == "test-data" and "train-floor" not in ran
    stages = results(record)
    assert stages["data tests"] == runner.FAILED
    assert {stages[name] for name in ("build image", "gate", "deploy", "smoke test")} == {
        runner.NOT_RUN}
    assert "make test-data exited with status 2" in json.dumps(record)
    summary = (tmp_path / "reports" / "summary.txt").read_text()
    assert "FAILED STAGE: data tests" in summary
    assert outbox_message(tmp_path)["Subject"] == (
        "credit-risk FAILURE: stage 'data tests' failed (local run)")


def test_champion_kept_is_unstable_and_deploys_nothing(tmp_path: Path) -> None:
    result, record, ran = run_pipeline(tmp_path, GATE="champion_kept")
    assert result.returncode == 4, result.stdout
    assert record["status"] == "UNSTABLE"
    assert "serve" not in ran and "smoke" not in ran
    stages = {stage["name"]: stage for stage in record["stages"]}
    assert stages["gate"]["result"] == runner.UNSTABLE
    assert stages["gate"]["exit_status"] == 2  # make's own status; the decision came from
    assert "champion kept" in stages["gate"]["reason"]  # reports/gate.json
    for name in ("deploy", "smoke test"):
        assert stages[name]["result"] == runner.SKIPPED
        assert "kept the champion" in stages[name]["reason"]
    assert outbox_message(tmp_path)["X-Pipeline-Status"] == "UNSTABLE"


def test_model_under_the_floor_fails_the_run(tmp_path: Path) -> None:
    result, record, _ = run_pipeline(tmp_path, GATE="failed")
    assert result.returncode == 1
    gate = next(stage for stage in record["stages"] if stage["name"] == "gate")
    assert gate["result"] == runner.FAILED
    assert gate["reason"] == "the model is under the quality floor"


def test_deploy_false_skips_deploy_and_smoke_test(tmp_path: Path) -> None:
    result, record, ran = run_pipeline(tmp_path, DEPLOY="false")
    assert result.returncode == 0
    assert ran[-1] == "gate"
    assert results(record)["deploy"] == runner.SKIPPED
    assert "DEPLOY=false" in json.dumps(record["stages"])


@pytest.mark.parametrize(("mode", "retrain", "gate"), [(NATIVE, "retrain", "gate"),
                                                       (DOCKER, "retrain-image", "gate-image")])
def test_retrain_runs_the_modes_retrain_target_in_the_gate_stage(
        tmp_path: Path, mode: str, retrain: str, gate: str) -> None:
    result, record, ran = run_pipeline(tmp_path, RETRAIN="true", PIPELINE_MODE=mode)
    assert result.returncode == 0, result.stdout + result.stderr
    assert retrain in ran and gate not in ran
    assert record["retrain"] is True


def test_other_branches_do_not_deploy(tmp_path: Path) -> None:
    _, record, ran = run_pipeline(tmp_path, BRANCH_NAME="feature/faster-model")
    assert "serve" not in ran
    deploy = next(stage for stage in record["stages"] if stage["name"] == "deploy")
    assert deploy["reason"].startswith("branch feature/faster-model is not main")


def test_previous_reports_are_cleared_but_the_outbox_is_kept(tmp_path: Path) -> None:
    old = tmp_path / "reports"
    (old / "outbox").mkdir(parents=True)
    (old / "outbox" / "old.eml").write_text("Subject: old\n\nold\n")
    (old / "junit-stale.xml").write_text("<testsuites/>")
    run_pipeline(tmp_path, DEPLOY="false")
    assert not (old / "junit-stale.xml").exists()
    assert len(list((old / "outbox").glob("*.eml"))) == 2


def test_bad_setting_is_named(tmp_path: Path) -> None:
    with pytest.raises(runner.SettingsError, match="DEPLOY='maybe'"):
        runner.Settings.from_env({"DEPLOY": "maybe", "PIPELINE_MODE": NATIVE})
    with pytest.raises(runner.SettingsError, match="PIPELINE_MODE='kubernetes'"):
        runner.detect_mode({"PIPELINE_MODE": "kubernetes"})


def test_git_branch_from_jenkins_loses_its_remote() -> None:
    settings = runner.Settings.from_env({"GIT_BRANCH": "origin/main", "PIPELINE_MODE": NATIVE})
    assert settings.branch == "main"


def test_mode_follows_whether_a_docker_engine_answers() -> None:
    docker = shutil.which("docker")
    answers = docker is not None and subprocess.run(
        [docker, "info"], capture_output=True, timeout=60, check=False).returncode == 0
    mode, reason = runner.detect_mode({})
    assert mode == (DOCKER if answers else NATIVE), reason


# Beyond the standard library: training/report_names.py (the plots' names; itself standard
# library only, checked here too), and Jinja2 in report.py, imported only where the summary
# renders: the system step installs python3-jinja2 (pipeline/preflight.py), and
# tests/pipeline/test_report.py checks that the CLI starts without it.
ALSO_ALLOWED = {"report": {"jinja2"}}
PROJECT_MODULES = {"pipeline", "training.report_names"}


@pytest.mark.parametrize("module", ["__init__", "__main__", "stages", "runner", "inputs",
                                    "report", "notify", "cli", "../training/report_names"])
def test_runner_report_and_notify_need_only_the_standard_library(module: str) -> None:
    # `make pipeline` runs them with the system Python, before .venv exists.
    tree = ast.parse((ROOT / "pipeline" / f"{module}.py").read_text())
    imported = {alias.name for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    roots = {name.split(".")[0] for name in imported
             if name not in PROJECT_MODULES and name.split(".")[0] != "pipeline"}
    foreign = sorted(roots - set(sys.stdlib_module_names) - {"__future__"}
                     - ALSO_ALLOWED.get(module, set()))
    assert foreign == []
