"""The Jenkinsfile runs the stages of pipeline/stages.py, in order, with targets that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]
JENKINSFILE = ROOT / "Jenkinsfile"
# `make <target>`, maybe with VARIABLE=value arguments after it.
MAKE_CALL = re.compile(
    r"""sh\s*(?:\(\s*script:\s*)?['"]make\s+([\w.-]+)(?:\s+[A-Z_]+=[\w.-]*)*['"]""")
STAGE = re.compile(r"""^\s*stage\(\s*'([^']+)'\s*\)\s*\{""", re.M)
# Jenkins only: a workspace outlives builds, so its setup stage first removes the reports a
# build that never reached `post { cleanup }` left behind (`make pipeline` starts afresh).
JENKINS_ONLY = {"setup": ["clean-reports"]}


def jenkins_stages() -> list[tuple[str, list[str]]]:
    """(stage name, make targets it calls) in Jenkinsfile order, from the `stages` block."""
    text = JENKINSFILE.read_text()
    body = text[text.index("stages {"):text.index("\n    post {")]
    found = list(STAGE.finditer(body))
    stages = []
    for here, after in zip(found, found[1:] + [None]):
        block = body[here.end():after.start() if after else len(body)]
        stages.append((here.group(1), MAKE_CALL.findall(block)))
    return stages


def jenkins_targets() -> set[str]:
    """Every make target a Jenkinsfile calls anywhere (stages and post; the weekly
    mutation job's and the canary job's too)."""
    return {target for path in (JENKINSFILE, *(ROOT / "jenkins").glob("*.Jenkinsfile"))
            for target in MAKE_CALL.findall(path.read_text())}


def makefile_targets() -> set[str]:
    """Every target make knows after reading the Makefile (explicit rules, expanded)."""
    database = subprocess.run(["make", "-pRrq", "-C", str(ROOT), "help"], capture_output=True,
                              text=True, timeout=60).stdout
    targets, previous = set(), ""
    for line in database.splitlines():
        match = re.match(r"^([a-zA-Z0-9][\w.-]*):(?!=)", line)
        # make lists files it merely looked at right after a "# Not a target:" line.
        if match and not previous.startswith("# Not a target"):
            targets.add(match.group(1))
        previous = line
    return targets


def test_stage_names_and_order_match_the_stage_list() -> None:
    assert [name for name, _ in jenkins_stages()] == [stage.name for stage in STAGES]


@pytest.mark.parametrize("stage", STAGES, ids=[stage.name for stage in STAGES])
def test_each_jenkins_stage_runs_the_docker_mode_target(stage) -> None:
    targets = dict(jenkins_stages())[stage.name]
    expected = [*JENKINS_ONLY.get(stage.name, []), stage.docker_target]
    if stage.docker_retrain_target:
        # The gate stage runs `make retrain-image` instead when RETRAIN is set.
        expected = sorted([stage.docker_target, stage.docker_retrain_target])
        targets = sorted(targets)
    assert targets == expected


def test_gate_stage_turns_champion_kept_into_unstable() -> None:
    text = JENKINSFILE.read_text()
    assert "unstable(" in text and "champion_kept" in text
    assert re.search(r"branch 'main'", text), "deploy must be limited to the main branch"


def test_every_target_the_jenkinsfile_calls_exists() -> None:
    missing = sorted(jenkins_targets() - makefile_targets())
    assert "mutation" in jenkins_targets()
    assert not missing, f"a Jenkinsfile calls make targets the Makefile lacks: {missing}"


def test_every_native_target_exists() -> None:
    native = {stage.native_target for stage in STAGES if stage.native_target}
    missing = sorted(native - makefile_targets())
    assert not missing, f"make pipeline (native mode) needs targets the Makefile lacks: {missing}"


def test_every_documented_target_is_listed_by_make_help() -> None:
    documented = set(re.findall(r"^([a-zA-Z0-9][\w.-]*):[^=].*##", (ROOT / "Makefile").read_text(),
                                re.M))
    listed = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "help"],
                            capture_output=True, text=True, timeout=60).stdout
    shown = set(re.findall(r"^\s+(?:\x1b\[[0-9;]*m)?([\w.-]+)", listed, re.M))
    assert documented, "no `## help` targets found"
    assert not sorted(documented - shown), f"missing from make help: {documented - shown}"
    assert {"pipeline", "report", "notify", "lint-jenkinsfile"} <= shown
