"""Jenkins as code: the YAML parses and lints, plugins are pinned, compose starts Jenkins."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

ROOT = Path(__file__).resolve().parents[2]
JENKINS = ROOT / "jenkins"
COMPOSE = ROOT / "docker-compose.yml"
YAML_FILES = [JENKINS / "casc.yaml", JENKINS / "yamllint.yaml", COMPOSE]
# Pipeline steps the Jenkinsfile uses, and the plugin that provides each.
STEP_PLUGINS = {"githubPush": "github", "parameterizedCron": "parameterized-scheduler",
                "junit": "junit", "recordCoverage": "coverage", "recordIssues": "warnings-ng",
                "emailext": "email-ext", "timestamps": "timestamper",
                "readJSON": "pipeline-utility-steps", "pipeline": "workflow-aggregator"}


def plugins() -> dict[str, str]:
    """plugin -> pinned version, from jenkins/plugins.txt."""
    pins = {}
    for line in (JENKINS / "plugins.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.strip().partition(":")
            pins[name] = version
    return pins


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: path.name)
def test_yaml_parses_and_passes_yamllint(path: Path) -> None:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    yaml.safe_load(path.read_text())
    config = YamlLintConfig(file=str(JENKINS / "yamllint.yaml"))
    problems = [f"{problem.line}:{problem.column} {problem.level} {problem.message}"
                for problem in linter.run(path.read_text(), config)]
    assert problems == [], f"{path.name}: {problems}"


def test_every_plugin_is_pinned_and_every_step_has_its_plugin() -> None:
    pins = plugins()
    assert all(re.fullmatch(r"[\w.-]+", version) and version != "latest"
               for version in pins.values()), pins
    jenkinsfile = (ROOT / "Jenkinsfile").read_text()
    for step, plugin in STEP_PLUGINS.items():
        if re.search(rf"\b{step}\s*[({{]", jenkinsfile):
            assert plugin in pins, f"the Jenkinsfile uses {step} but {plugin} is not installed"
    assert {"configuration-as-code", "job-dsl", "git", "credentials-binding"} <= set(pins)


def test_casc_creates_the_pipeline_job_from_the_repository() -> None:
    casc = yaml.safe_load((JENKINS / "casc.yaml").read_text())
    script = casc["jobs"][0]["script"]
    assert "pipelineJob('credit-risk')" in script
    assert "githubPush()" in script
    assert "url('${PIPELINE_REPO_URL}')" in script
    assert "scriptPath('Jenkinsfile')" in script
    assert casc["unclassified"]["location"]["url"].startswith("${JENKINS_URL")
    mail = casc["unclassified"]["email-ext"]["mailAccount"]
    assert mail["smtpHost"].startswith("${SMTP_HOST") and mail["credentialsId"] == "smtp"


def test_casc_holds_no_secret_values() -> None:
    text = (JENKINS / "casc.yaml").read_text()
    for key in ("password", "username", "token"):
        for value in re.findall(rf"^\s*{key}:\s*(.+)$", text, re.M | re.I):
            assert value.strip().strip('"').startswith("${"), f"{key}: {value} is not ${{VAR}}"


def test_jenkins_image_is_pinned_and_installs_the_plugins() -> None:
    dockerfile = (JENKINS / "Dockerfile").read_text()
    assert re.search(r"^ARG JENKINS_IMAGE=jenkins/jenkins:\d+\.\d+\.\d+-lts-jdk\d+$",
                     dockerfile, re.M)
    assert "jenkins-plugin-cli --plugin-file" in dockerfile
    assert "docker-ce-cli docker-compose-plugin" in dockerfile
    assert subprocess.run(["bash", "-n", str(JENKINS / "entrypoint.sh")]).returncode == 0


def test_compose_starts_jenkins_only_with_its_profile() -> None:
    assert COMPOSE.is_file(), "docker-compose.yml is missing"
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert "jenkins" in services, "docker-compose.yml has no jenkins service"
    jenkins = services["jenkins"]
    assert jenkins["profiles"] == ["jenkins"]
    build = jenkins["build"]
    assert (build if isinstance(build, str) else build["context"]).rstrip("/") in (
        "jenkins", "./jenkins")
    assert any("/var/run/docker.sock" in str(volume) for volume in jenkins["volumes"])


def test_groovy_lint_is_pinned_exactly() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    version = package["devDependencies"]["npm-groovy-lint"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/npm-groovy-lint"]["version"] == version
