"""Jenkins as code, checked offline against what a live controller would do with it.

No Jenkins runs here, so these tests hold the files to the facts read in the plugins' own
sources (jenkins/plugins.txt says how): the plugin set is consistent, the Job DSL declares
what the Jenkinsfile declares (a restart re-runs it), builds run on the agent only, secrets
are files, and every setting the controller reads is documented in .env.example.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from pipeline import deployment

ROOT = Path(__file__).resolve().parents[2]
JENKINS = ROOT / "jenkins"
CASC = JENKINS / "casc.yaml"
ENTRYPOINT = JENKINS / "entrypoint.sh"
JENKINS_COMPOSE = JENKINS / "docker-compose.yml"
STACK_COMPOSE = ROOT / "docker-compose.yml"
AGENT = JENKINS / "agent"
YAML_FILES = [CASC, JENKINS / "yamllint.yaml", STACK_COMPOSE, JENKINS_COMPOSE]
# Pipeline steps (and declarative directives) the Jenkinsfile may use, and their plugin.
STEP_PLUGINS = {"githubPush": "github", "parameterizedCron": "parameterized-scheduler",
                "junit": "junit", "recordCoverage": "coverage", "recordIssues": "warnings-ng",
                "flake8": "warnings-ng", "emailext": "email-ext", "timestamps": "timestamper",
                "readJSON": "pipeline-utility-steps", "withCredentials": "credentials-binding",
                "pipeline": "workflow-aggregator"}
# Every job Job DSL creates, and the Jenkinsfile it runs.
JOBS = {"credit-risk": ROOT / "Jenkinsfile",
        "credit-risk-mutation": JENKINS / "mutation.Jenkinsfile",
        "credit-risk-canary": JENKINS / "canary.Jenkinsfile"}
# Set by entrypoint.sh from other settings, never by people.
DERIVED = {"SMTP_USE_TLS", "SMTP_USE_SSL", "SMTP_CREDENTIALS_ID"}
# The secrets directory; JCasC's own variable (DockerSecretSource), default /run/secrets.
JCASC_OWN = {"SECRETS"}


def read(path: Path) -> str:
    """A file of the repository as text."""
    return path.read_text()


def plugins() -> dict[str, str]:
    """plugin -> pinned version, from jenkins/plugins.txt."""
    pins = {}
    for line in read(JENKINS / "plugins.txt").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.strip().partition(":")
            pins[name] = version
    return pins


def requirements() -> dict[str, tuple[str, str, dict[str, str]]]:
    """plugin -> (tag read, core needed, {pinned dependency: minimum version})."""
    table = {}
    for line in read(JENKINS / "plugin-requirements.txt").splitlines():
        if line.strip() and not line.startswith("#"):
            name, tag, core, *needs = line.split()
            table[name] = (tag, core, dict(need.split(">=") for need in needs))
    return table


def version_key(version: str) -> tuple[int, ...]:
    """The numeric part of a Jenkins or plugin version, for ordering ("608.v67…" -> (608,))."""
    numbers = []
    for part in re.split(r"[.-]", version):
        if not part.isdigit():
            break
        numbers.append(int(part))
    assert numbers, f"no numeric version in {version!r}"
    return tuple(numbers)


def base_image_core() -> str:
    """The Jenkins core version of jenkins/Dockerfile's base image tag."""
    found = re.search(r"^ARG JENKINS_IMAGE=jenkins/jenkins:(\d+\.\d+\.\d+)-lts-jdk\d+$",
                      read(JENKINS / "Dockerfile"), re.M)
    assert found, "jenkins/Dockerfile: ARG JENKINS_IMAGE=jenkins/jenkins:<x.y.z>-lts-jdk<N>"
    return found.group(1)


def casc() -> dict:
    """jenkins/casc.yaml, parsed."""
    return yaml.safe_load(read(CASC))


def job_dsl() -> str:
    """The Job DSL script that casc.yaml runs at every start."""
    return casc()["jobs"][0]["script"]


def jenkinsfile(job: str = "credit-risk") -> str:
    """The Jenkinsfile of `job` (the main pipeline's by default)."""
    return read(JOBS[job])


def job_definition(job: str) -> str:
    """The body of Job DSL's `pipelineJob('<job>') { ... }`."""
    script = job_dsl()
    return block(script[script.index(f"pipelineJob('{job}')"):], "pipelineJob\\('[^']+'\\)")


def block(text: str, name: str) -> str:
    """The body of the first `name { ... }` block, braces balanced."""
    start = re.search(rf"\b{name}\s*\{{", text)
    assert start, f"no {name} {{ }} block"
    depth, index = 1, start.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        index += 1
    return text[start.end():index - 1]


def casc_variables() -> set[str]:
    """Every ${NAME} casc.yaml reads (comments left out)."""
    code = "\n".join(line for line in read(CASC).splitlines()
                     if not line.lstrip().startswith(("#", "//")))
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", code))


def entrypoint_variables() -> set[str]:
    """Every variable entrypoint.sh reads from its environment (not the ones it sets)."""
    text = read(ENTRYPOINT)
    read_names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    read_names |= set(re.findall(r"for name in ([A-Z_ ]+); do\n\s*\[ -n \"\$\{!name", text)
                      [0].split()) if "${!name" in text else set()
    return read_names - DERIVED


def jenkins_services() -> dict:
    """The services of jenkins/docker-compose.yml."""
    return yaml.safe_load(read(JENKINS_COMPOSE))["services"]


def compose_secrets() -> set[str]:
    """The Docker secrets jenkins/docker-compose.yml defines."""
    return set(yaml.safe_load(read(JENKINS_COMPOSE))["secrets"])


def env_example_names() -> set[str]:
    """Every NAME=... in .env.example (commented-out defaults included)."""
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", read(ROOT / ".env.example"), re.M))


# --- YAML and lint -----------------------------------------------------------------------

@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: path.name)
def test_yaml_parses_and_passes_yamllint(path: Path) -> None:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    yaml.safe_load(read(path))
    config = YamlLintConfig(file=str(JENKINS / "yamllint.yaml"))
    problems = [f"{problem.line}:{problem.column} {problem.level} {problem.message}"
                for problem in linter.run(read(path), config)]
    assert problems == [], f"{path.name}: {problems}"


def test_groovy_lint_is_pinned_exactly() -> None:
    package = json.loads(read(ROOT / "package.json"))
    version = package["devDependencies"]["npm-groovy-lint"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    lock = json.loads(read(ROOT / "package-lock.json"))
    assert lock["packages"]["node_modules/npm-groovy-lint"]["version"] == version


@pytest.mark.parametrize("script", [ENTRYPOINT, AGENT / "entrypoint.sh",
                                    AGENT / "install-tools.sh"], ids=lambda p: p.name)
def test_shell_scripts_parse(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


# --- 1. a plugin set that fits together, dependencies included ----------------------------

def test_every_plugin_is_pinned_and_every_step_has_its_plugin() -> None:
    pins = plugins()
    assert all(re.fullmatch(r"[\w.-]+", version) and version != "latest"
               for version in pins.values()), pins
    for job, step in ((job, step) for job in JOBS for step in STEP_PLUGINS):
        if re.search(rf"\b{step}\s*[({{]", jenkinsfile(job)):
            assert STEP_PLUGINS[step] in pins, f"{JOBS[job].name} uses {step}: pin its plugin"
    assert {"configuration-as-code", "job-dsl", "git", "credentials-binding"} <= set(pins)


def test_dependencies_are_resolved_from_the_pins_not_from_latest() -> None:
    # jenkins-plugin-cli's --latest defaults to true: unpinned dependencies would be the
    # newest on the day of the build (how analysis-model 13+ met Warnings NG 11).
    assert re.search(r"jenkins-plugin-cli --latest false --plugin-file",
                     read(JENKINS / "Dockerfile"))


def test_every_pinned_plugin_has_its_requirements_recorded_from_its_tag() -> None:
    pins, table = plugins(), requirements()
    assert set(table) == set(pins), set(table) ^ set(pins)
    for name, (tag, _, _) in table.items():
        assert tag in (pins[name], f"v{pins[name]}", f"{name}-{pins[name]}"), (name, tag)


def test_no_plugin_needs_a_newer_core_than_the_base_image() -> None:
    core = version_key(base_image_core())
    too_new = {name: needed for name, (_, needed, _) in requirements().items()
               if version_key(needed) > core}
    assert not too_new, f"these plugins need a newer Jenkins than {base_image_core()}: {too_new}"


def test_every_recorded_dependency_is_pinned_at_least_at_the_version_required() -> None:
    pins = plugins()
    for name, (_, _, needs) in requirements().items():
        for dependency, minimum in needs.items():
            assert dependency in pins, f"{name} needs {dependency}, which is not pinned"
            assert version_key(pins[dependency]) >= version_key(minimum), (
                f"{name} needs {dependency}>={minimum}; plugins.txt pins {pins[dependency]}")


def test_version_order_reads_the_numeric_part() -> None:
    assert version_key("14.12.0-992.v1093094f193e") > version_key("14.9.0-1.vabc")
    assert version_key("608.v67378e9d3db_1") == (608,)
    assert version_key("2.555.3") > version_key("2.541.3")


# --- 2. and 3. the agent's view: smoke URL, Jenkins apart from the stack -------------------

def make_dry_run(target: str, **variables: str) -> str:
    """What `make -n <target>` would run, in Docker mode."""
    environ = {**os.environ, "PIPELINE_MODE": "docker"}
    command = ["make", "-n", "--no-print-directory", "-C", str(ROOT), target]
    command += [f"{name}={value}" for name, value in variables.items()]
    return subprocess.run(command, capture_output=True, text=True, env=environ,
                          timeout=60, check=True).stdout


def test_docker_smoke_runs_on_the_engine_hosts_network_not_the_callers_loopback() -> None:
    # In an agent container, 127.0.0.1 is the container itself; NGINX publishes on the host.
    dry = make_dry_run("smoke", IMAGE_TAG="t")
    assert re.search(r"docker run --rm -i --network host .*credit-risk-app:t", dry), dry
    assert "< pipeline/smoke.py" in dry


def test_jenkins_is_a_compose_project_of_its_own() -> None:
    stack_services = set(yaml.safe_load(read(STACK_COMPOSE))["services"])
    assert stack_services == {"app", "nginx", "mlflow", "follower"}, \
        "Jenkins must not be in the stack's file"
    assert not stack_services & set(jenkins_services())
    start = "docker compose -p credit-risk-jenkins --env-file .env -f jenkins/docker-compose.yml"
    assert start in read(ROOT / "README.md")
    assert start.replace("credit-risk-jenkins", "credit-risk") not in read(ROOT / "README.md")


def test_make_up_and_down_touch_only_the_stacks_services() -> None:
    up = make_dry_run("up", IMAGE_TAG="t")
    assert "--remove-orphans" not in up
    assert re.search(r"up -d --no-build app nginx", up), up
    assert re.search(r"ps -q app nginx", up), up
    assert "--remove-orphans" not in make_dry_run("down")


@pytest.mark.parametrize(("target", "runs"), [
    ("compose", r"up -d --no-build app nginx"),
    ("swarm", r"-m pipeline\.swarm --stack credit-risk --timeout \d+ up\n"),
    ("kubernetes", r"build/tools/helm upgrade --install credit-risk deploy/helm/credit-risk "),
])
def test_deploy_goes_where_deploy_target_says(target: str, runs: str) -> None:
    # (`make test-pipeline` has unpacked Helm, which helm-up needs, before this runs.)
    dry = make_dry_run("deploy", DEPLOY_TARGET=target, IMAGE_TAG="t")
    assert re.search(runs, dry), dry


def test_an_unknown_deploy_target_is_refused_by_name() -> None:
    refused = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "deploy",
                              "DEPLOY_TARGET=nomad"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert refused.returncode != 0
    assert "DEPLOY_TARGET=nomad is not one of: compose swarm kubernetes" in refused.stderr


def test_the_deploy_targets_are_one_list() -> None:
    choices = ast.literal_eval(dict((name, default) for _, name, default in
                                    jenkinsfile_parameters("credit-risk"))["DEPLOY_TARGET"])
    makefile = re.search(r"^DEPLOY_TARGETS := (.*)$", read(ROOT / "Makefile"), re.M)
    assert tuple(choices) == deployment.TARGETS == tuple(makefile.group(1).split())


def test_the_smoke_test_of_kubernetes_needs_the_ingress_url() -> None:
    refused = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "smoke",
                              "DEPLOY_TARGET=kubernetes", "PIPELINE_MODE=docker"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0
    assert "set SMOKE_URL to the Ingress's URL" in refused.stderr


# --- 4. a restart keeps the parameters, triggers and options --------------------------------

def jenkinsfile_parameters(job: str) -> list[tuple[str, str, str]]:
    """(type, name, default) of the job's Jenkinsfile's parameters; a choice's "default" is
    its list of choices (the first is the default)."""
    found = re.findall(r"(booleanParam|string|choice)\(name: '(\w+)', "
                       r"(?:defaultValue|choices): ('[^']*'|\w+|\[[^\]]*\])",
                       block(jenkinsfile(job), "parameters"))
    return [(kind, name, default.strip("'")) for kind, name, default in found]


def job_dsl_parameters(job: str) -> list[tuple[str, str, str]]:
    """(type, name, default) of the job's parameters in Job DSL, named as in Declarative."""
    declarative = {"stringParam": "string", "choiceParam": "choice"}
    found = re.findall(r"(booleanParam|stringParam|choiceParam)\('(\w+)', "
                       r"('[^']*'|\w+|\[[^\]]*\])",
                       block(job_definition(job), "parameters"))
    return [(declarative.get(kind, kind), name, default.strip("'"))
            for kind, name, default in found]


@pytest.mark.parametrize("job, count", [("credit-risk", 5), ("credit-risk-mutation", 1),
                                        ("credit-risk-canary", 1)])
def test_job_dsl_declares_the_jenkinsfiles_parameters(job: str, count: int) -> None:
    assert len(jenkinsfile_parameters(job)) == count
    assert job_dsl_parameters(job) == jenkinsfile_parameters(job)


@pytest.mark.parametrize("job, on_push", [("credit-risk", True), ("credit-risk-mutation", False),
                                          ("credit-risk-canary", False)])
def test_job_dsl_declares_the_jenkinsfiles_triggers(job: str, on_push: bool) -> None:
    declared, dsl = block(jenkinsfile(job), "triggers"), block(job_definition(job), "triggers")
    # Declarative's parameterizedCron('spec') / cron('spec') are Job DSL's
    # parameterizedCron { parameterizedSpecification('spec') } / cron { spec('spec') }.
    crons = re.findall(r"\b(parameterizedCron|cron)\('([^']+)'\)", declared)
    dsl_crons = re.findall(r"\b(parameterizedCron|cron)\s*\{\s*(?:parameterizedSpecification|spec)"
                           r"\('([^']+)'\)", dsl)
    assert crons and dsl_crons == crons
    assert ("githubPush()" in declared) == ("githubPush()" in dsl) == on_push


def test_mutation_testing_runs_weekly_and_never_on_a_push() -> None:
    (spec,) = re.findall(r"\bcron\('([^']+)'\)", jenkinsfile("credit-risk-mutation"))
    assert spec.split()[2:] == ["*", "*", "6"]  # once a week, on Saturdays
    stages = re.findall(r"sh(?:\(script: |\s)'(make [\w-]+)'", block(
        jenkinsfile("credit-risk-mutation"), "stages"))
    assert stages == ["make clean-reports", "make setup", "make mutation"]
    assert "mutation" not in block(jenkinsfile(), "stages")


@pytest.mark.parametrize("job", JOBS)
def test_job_dsl_declares_the_jenkinsfiles_job_options(job: str) -> None:
    options, dsl = block(jenkinsfile(job), "options"), job_definition(job)
    rotator = re.search(r"logRotator\(numToKeepStr: '(\d+)', artifactNumToKeepStr: '(\d+)'\)",
                        options)
    assert rotator, options
    assert f"numToKeepStr('{rotator.group(1)}')" in dsl
    assert f"artifactNumToKeepStr('{rotator.group(2)}')" in dsl
    assert ("disableConcurrentBuilds()" in options) == ("disableConcurrentBuilds()" in dsl)


# --- 5. builds on the agent; secrets as files -------------------------------------------

@pytest.mark.parametrize("job", JOBS)
def test_controller_has_no_executors_and_the_agent_has_the_jenkinsfiles_label(job: str) -> None:
    config = casc()["jenkins"]
    assert config["numExecutors"] == 0
    nodes = [node["permanent"] for node in config["nodes"]]
    labels = {node["labelString"] for node in nodes}
    agent = re.search(r"agent\s*\{\s*label '([^']+)'\s*\}", jenkinsfile(job))
    assert agent and agent.group(1) in labels, "every stage must run on the agent by label"
    assert "agent any" not in jenkinsfile(job)
    assert all("inbound" in node["launcher"] for node in nodes)


def test_only_the_agent_drives_docker_and_nobody_has_a_secret_in_its_environment() -> None:
    services = jenkins_services()
    assert set(services) == {"controller", "agent"}
    socket = "/var/run/docker.sock"
    assert not any(socket in str(volume) for volume in services["controller"]["volumes"])
    assert any(socket in str(volume) for volume in services["agent"]["volumes"])
    for name, service in services.items():
        leaked = set(service.get("environment", {})) & compose_secrets()
        assert not leaked, f"{name} gets secrets in its environment: {leaked}"
    assert set(services["controller"]["secrets"]) == compose_secrets()
    assert "secrets" not in services["agent"]


def test_every_secret_casc_reads_is_a_docker_secret_file() -> None:
    text = read(CASC)
    for key in ("password", "secret", "token"):
        for value in re.findall(rf"^\s*{key}:\s*(.+)$", text, re.M | re.I):
            name = re.fullmatch(r'"\$\{([A-Z_]+)\}"', value.strip())
            assert name and name.group(1) in compose_secrets(), f"{key}: {value}"
    token = re.search(r"authenticationToken\('\$\{(\w+)\}'\)", job_dsl())
    assert token and token.group(1) in compose_secrets()


def test_agent_image_base_is_a_build_argument_defaulting_to_the_real_agent() -> None:
    dockerfile = read(AGENT / "Dockerfile")
    assert re.search(r"^ARG AGENT_IMAGE=jenkins/inbound-agent:\d+\.v\w+-\d+-jdk\d+$",
                     dockerfile, re.M)
    assert re.search(r"^FROM \$\{AGENT_IMAGE\}$", dockerfile, re.M)
    tools = read(AGENT / "install-tools.sh")
    for tool in ("make", "python3-venv", "git", "docker-ce-cli", "docker-compose-plugin"):
        assert re.search(rf"\b{tool}\b", tools), tool


@pytest.mark.parametrize("service", ["controller", "agent"])
def test_compose_build_arguments_fall_back_to_the_dockerfiles_defaults(service: str) -> None:
    build = jenkins_services()[service]["build"]
    dockerfile = read(JENKINS / build["context"] / "Dockerfile")
    for name, value in build["args"].items():
        fallback = re.fullmatch(rf"\$\{{{name}:-(.+)\}}", value)
        default = re.search(rf"^ARG {name}=(.+)$", dockerfile, re.M)
        assert fallback and default and fallback.group(1) == default.group(1), name


# --- 6. and 7. no defaults JCasC would ignore; e-mail as `make notify` sends it -----------

def test_casc_has_no_defaults_that_an_empty_variable_would_skip() -> None:
    assert ":-" not in read(CASC), "compose passes unset variables as '': use entrypoint.sh"


def run_entrypoint(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment entrypoint.sh hands to Jenkins, given settings and secret files."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in compose_secrets():
        (secrets / name).write_text("" if name in ("SMTP_PASSWORD", "GITHUB_TOKEN") else "x")
    environ = {"PATH": os.environ["PATH"], "SECRETS": str(secrets),
               "PIPELINE_REPO_URL": "https://example.com/repo.git",
               "JENKINS_AGENT_NAME": "agent", **settings}
    done = subprocess.run(["bash", str(ENTRYPOINT), "env"], capture_output=True, text=True,
                          env=environ, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


@pytest.mark.parametrize(("tls", "port"), [("starttls", "587"), ("ssl", "465"), ("none", "25")])
def test_smtp_port_follows_smtp_tls_when_empty(tmp_path: Path, tls: str, port: str) -> None:
    assert run_entrypoint(tmp_path, SMTP_TLS=tls, SMTP_PORT="")["SMTP_PORT"] == port


def test_smtp_login_only_with_a_user(tmp_path: Path) -> None:
    assert casc()["unclassified"]["email-ext"]["mailAccount"]["credentialsId"] == \
        "${SMTP_CREDENTIALS_ID}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert run_entrypoint(tmp_path / "a", SMTP_USER="")["SMTP_CREDENTIALS_ID"] == ""
    assert run_entrypoint(tmp_path / "b", SMTP_USER="mailer")["SMTP_CREDENTIALS_ID"] == "smtp"


def test_empty_settings_get_their_defaults(tmp_path: Path) -> None:
    environ = run_entrypoint(tmp_path, NOTIFY_FROM="", JENKINS_ADMIN_ID="", PIPELINE_BRANCH="")
    assert environ["NOTIFY_FROM"] == "jenkins@localhost"
    assert environ["JENKINS_ADMIN_ID"] == "admin" and environ["PIPELINE_BRANCH"] == "main"


def test_entrypoint_refuses_a_missing_secret(tmp_path: Path) -> None:
    environ = {"PATH": os.environ["PATH"], "SECRETS": str(tmp_path),
               "PIPELINE_REPO_URL": "u", "JENKINS_AGENT_NAME": "a"}
    done = subprocess.run(["bash", str(ENTRYPOINT), "true"], capture_output=True, text=True,
                          env=environ, timeout=30, check=False)
    assert done.returncode == 1 and "JENKINS_ADMIN_PASSWORD" in done.stderr


# --- 8., 9., 14., 15. the Jenkinsfile ----------------------------------------------------

@pytest.mark.parametrize("job", JOBS)
def test_an_aborted_build_sends_its_mail(job: str) -> None:
    post = block(jenkinsfile(job), "post")
    assert re.search(r"\b(aborted|unsuccessful)\s*\{[^}]*emailext\(", post), post


@pytest.mark.parametrize("step", ["recordIssues", "recordCoverage"])
def test_reports_are_recorded_for_failed_builds_too(step: str) -> None:
    call = re.search(rf"{step}\((.*?)\)\n", jenkinsfile(), re.S)
    assert call and "enabledForFailure: true" in call.group(1), f"{step}: enabledForFailure"


@pytest.mark.parametrize("job", JOBS)
def test_setup_stage_first_removes_stale_reports(job: str) -> None:
    setup = block(jenkinsfile(job).split("stage('setup')", 1)[1], "steps")
    assert re.findall(r"sh '(make [\w-]+)'", setup) == ["make clean-reports", "make setup"]


def test_timestamps_come_from_one_place_and_buildx_is_installed() -> None:
    assert "timestamps()" not in jenkinsfile()
    assert casc()["unclassified"]["timestamper"]["allPipelines"] is True
    assert "docker-buildx-plugin" in read(AGENT / "install-tools.sh")


# --- 10., 11., 13. stage view, webhook secret, remote trigger -----------------------------

def test_a_stage_view_plugin_is_installed() -> None:
    assert {"pipeline-graph-view", "pipeline-stage-view"} & set(plugins())


def test_github_webhook_is_checked_against_a_secret() -> None:
    hooks = casc()["unclassified"]["githubpluginconfig"]["hookSecretConfigs"]
    credentials = casc()["credentials"]["system"]["domainCredentials"][0]["credentials"]
    strings = {entry["string"]["id"]: entry["string"]["secret"]
               for entry in credentials if "string" in entry}
    assert hooks and all(hook["credentialsId"] in strings for hook in hooks)
    assert "plain-credentials" in plugins()  # the `string` credential type
    readme = read(ROOT / "README.md")
    assert "GITHUB_WEBHOOK_SECRET" in readme and "Secret" in readme


def test_job_has_the_remote_trigger_token_make_monitor_sends() -> None:
    assert "authenticationToken('${JENKINS_TRIGGER_TOKEN}')" in job_dsl()
    assert "JENKINS_TRIGGER_TOKEN" in read(ROOT / "training" / "monitor.py")


# --- 12. every setting is documented and passed ------------------------------------------

def test_env_example_documents_every_setting_casc_and_the_entrypoint_read() -> None:
    settings = (casc_variables() | entrypoint_variables()) - DERIVED - JCASC_OWN
    secrets = settings & compose_secrets()
    example = read(ROOT / ".env.example")
    missing = sorted(settings - secrets - env_example_names())
    assert not missing, f".env.example lacks {missing}"
    assert all(name in example for name in secrets), "name each secret file in .env.example"


def test_controller_is_passed_every_setting_it_reads() -> None:
    settings = (casc_variables() | entrypoint_variables()) - DERIVED - JCASC_OWN
    passed = set(jenkins_services()["controller"]["environment"]) | compose_secrets()
    assert not sorted(settings - passed), sorted(settings - passed)


@pytest.mark.parametrize("job", JOBS)
def test_casc_creates_each_pipeline_job_from_the_repository(job: str) -> None:
    definition = job_definition(job)
    assert "url('${PIPELINE_REPO_URL}')" in definition
    assert f"scriptPath('{JOBS[job].relative_to(ROOT)}')" in definition
    assert set(re.findall(r"pipelineJob\('([^']+)'\)", job_dsl())) == set(JOBS)
    assert casc()["unclassified"]["location"]["url"] == "${JENKINS_URL}"
