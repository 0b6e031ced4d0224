"""What each job needs from the machine, and what is missing from it.

One table: every system component, the Debian packages that provide it, and how to tell it
is there. A job (`make test`, `make pipeline` in Docker or native mode, `make
lint-jenkinsfile`) names the components it needs. The checks take milliseconds, so a run
stops in its first seconds with one message naming everything missing and the command that
installs it. `pipeline/system.py` installs; this module only looks.
Standard library only (see pipeline/__init__.py).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.commands import ROOT
from pipeline.stages import DOCKER, NATIVE

# Where Debian puts daemons; a non-root PATH often lacks them.
SYSTEM_DIRS = ("/usr/sbin", "/sbin", "/usr/bin")
PROBE_TIMEOUT = 20.0
APT_INSTALL = "apt-get install -y --no-install-recommends"

SETUP_JOB = "setup"
TEST_JOB = "test"
PIPELINE_JOB = "pipeline"
LINT_JENKINSFILE_JOB = "lint-jenkinsfile"
NPM_JOB = "npm"


def find_executable(name: str) -> str | None:
    """Path of an executable on PATH or in the system directories, else None."""
    found = shutil.which(name)
    if found:
        return found
    return next((str(Path(d) / name) for d in SYSTEM_DIRS
                 if os.access(Path(d) / name, os.X_OK)), None)


def _compose_present() -> bool:
    """`docker compose` (v2 plugin) or Debian's `docker-compose` (v1), as the Makefile."""
    if find_executable("docker-compose"):
        return True
    docker = find_executable("docker")
    return bool(docker) and _succeeds([docker, "compose", "version"])


def _venv_present() -> bool:
    # Debian's python3 has the venv module but not ensurepip until python3-venv is installed,
    # and `python3 -m venv` then fails half-way.
    return importlib.util.find_spec("ensurepip") is not None


def _jinja2_present() -> bool:
    # The summary (`make report`, `make notify`) renders its template on this Python.
    return importlib.util.find_spec("jinja2") is not None


def _succeeds(command: Sequence[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass(frozen=True)
class Component:
    """A system component: its name in messages, its Debian packages, how to tell it is there
    (every executable found, and `probe` when the executables are not the whole story)."""

    name: str
    packages: tuple[str, ...]
    executables: tuple[str, ...] = ()
    probe: Callable[[], bool] | None = None

    def present(self) -> bool:
        """Whether the component is installed."""
        return (all(find_executable(name) for name in self.executables)
                and (self.probe is None or self.probe()))


PYTHON_VENV = Component("Python venv", ("python3-venv",), probe=_venv_present)
JINJA2 = Component("Jinja2 for the summary", ("python3-jinja2",), probe=_jinja2_present)
NGINX = Component("NGINX", ("nginx",), ("nginx",))
DOCKER_ENGINE = Component("Docker engine", ("docker.io",), ("docker", "dockerd"))
COMPOSE = Component("Docker Compose", ("docker-compose",), probe=_compose_present)
DEBOOTSTRAP = Component("debootstrap", ("debootstrap",), ("debootstrap",))
CHROMIUM = Component("Chromium", ("chromium",), ("chromium",))
CHROMEDRIVER = Component("ChromeDriver", ("chromium-driver",), ("chromedriver",))
WRK = Component("wrk", ("wrk",), ("wrk",))
STRESS_NG = Component("stress-ng", ("stress-ng",), ("stress-ng",))
NODE = Component("Node.js", ("nodejs", "npm"), ("node", "npm"))
JAVA = Component("Java", ("default-jre-headless",), ("java",))
COMPONENTS = (PYTHON_VENV, NGINX, DOCKER_ENGINE, COMPOSE, DEBOOTSTRAP, CHROMIUM, CHROMEDRIVER,
              WRK, STRESS_NG, NODE, JAVA, JINJA2)


def providing(executable: str) -> Component | None:
    """The component that installs `executable`, if the table knows one."""
    return next((c for c in COMPONENTS if executable in c.executables), None)


@dataclass(frozen=True)
class Job:
    """What one command needs: components, and whether it drives a Docker engine."""

    title: str
    components: tuple[Component, ...]
    needs_engine: bool = False


JOBS: dict[str, Job] = {
    # .venv: `python3 -m venv` needs ensurepip, which Debian ships in python3-venv.
    SETUP_JOB: Job("make setup", (PYTHON_VENV,)),
    # The real-component tests: NGINX, Chromium, the engine with compose and base images
    # (debootstrap builds stand-ins when no registry answers); wrk and stress-ng drive load.
    # Node: npm installs the pinned Helm that the pipeline kind's chart tests run.
    TEST_JOB: Job("make test", (PYTHON_VENV, NGINX, DOCKER_ENGINE, COMPOSE, DEBOOTSTRAP,
                                CHROMIUM, CHROMEDRIVER, WRK, STRESS_NG, NODE),
                  needs_engine=True),
    f"{PIPELINE_JOB}-{DOCKER}": Job("make pipeline (Docker mode)",
                                    (PYTHON_VENV, DOCKER_ENGINE, COMPOSE, JINJA2),
                                    needs_engine=True),
    f"{PIPELINE_JOB}-{NATIVE}": Job("make pipeline (native mode)", (PYTHON_VENV, NGINX, JINJA2)),
    LINT_JENKINSFILE_JOB: Job("make lint-jenkinsfile", (NODE, JAVA)),
    NPM_JOB: Job("npm ci (npm-groovy-lint, Helm)", (NODE,)),
}


def pipeline_job(mode: str) -> str:
    """The job name of `make pipeline` in `mode`."""
    return f"{PIPELINE_JOB}-{mode}"


def missing(components: Sequence[Component]) -> list[Component]:
    """The components that are not there, in the order given."""
    return [component for component in components if not component.present()]


def packages(components: Sequence[Component]) -> list[str]:
    """The Debian packages that provide `components`, each once."""
    return list(dict.fromkeys(p for component in components for p in component.packages))


def is_root() -> bool:
    """Whether this process may install packages and start daemons."""
    return os.geteuid() == 0


def has_apt() -> bool:
    """Whether this is a Debian-like system apt can install on."""
    return find_executable("apt-get") is not None and find_executable("dpkg-query") is not None


def install_hint(components: Sequence[Component]) -> str:
    """The exact command that installs `components` here (or the packages to look for)."""
    names = " ".join(packages(components))
    if not has_apt():
        return f"install them with your system's package manager (Debian packages: {names})"
    return f"{'' if is_root() else 'sudo '}{APT_INSTALL} {names}"


def missing_message(job: Job, absent: Sequence[Component]) -> str:
    """One short message: what `job` lacks and the command that installs it."""
    return (f"{job.title} needs {', '.join(c.name for c in absent)}, not installed; "
            f"install: {install_hint(absent)}")


def engine_answers() -> bool:
    """Whether a Docker engine answers `docker info`."""
    return not engine_problem()


def engine_problem() -> str:
    """Why `docker info` gets no answer (its last error line), or "" when it does."""
    docker = find_executable("docker")
    if not docker:
        return "no docker command"
    try:
        answer = subprocess.run([docker, "info"], capture_output=True, text=True,
                                timeout=PROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return f"`docker info` did not answer within {PROBE_TIMEOUT:.0f}s"
    if answer.returncode == 0:
        return ""
    return (answer.stderr.strip().splitlines() or ["`docker info` failed"])[-1]


def base_images() -> list[str]:
    """The base images the Dockerfiles build from (their ARG defaults: the one place)."""
    images = []
    for dockerfile, argument in (("Dockerfile", "PYTHON_IMAGE"),
                                 ("nginx/Dockerfile", "NGINX_IMAGE")):
        prefix = f"ARG {argument}="
        lines = (ROOT / dockerfile).read_text().splitlines()
        images += [line[len(prefix):].strip() for line in lines if line.startswith(prefix)][:1]
    return images


def image_present(image: str) -> bool:
    """Whether the engine has `image` locally."""
    docker = find_executable("docker")
    return bool(docker) and _succeeds([docker, "image", "inspect", image])


def check(job_name: str) -> str | None:
    """What stops `job_name` from running here, as one message; None when nothing does."""
    job = JOBS[job_name]
    absent = missing(job.components)
    if absent:
        return missing_message(job, absent)
    if not job.needs_engine:
        return None
    problem = engine_problem()
    if problem:
        return f"{job.title} needs Docker: the engine does not answer ({problem})"
    images = [image for image in base_images() if not image_present(image)]
    if images:
        return (f"{job.title} needs Docker base images {', '.join(images)}; "
                "`make system` pulls them or builds stand-ins")
    return None
