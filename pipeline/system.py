"""`make system`: give a job what it needs from the machine, then check it (idempotent).

On Debian or Ubuntu as root: installs the missing packages of the job's components
(pipeline/preflight.py; `apt-get update` only when something is missing), starts the Docker
engine when it is installed but not running, and, for jobs that build images, gets the base
images: pulled when a registry answers within PULL_TIMEOUT, else stand-ins built offline with
debootstrap (.ci/base-images.sh). Without root or apt nothing is changed: the answer is one
message naming every missing component and the command that installs it. A second run finds
everything in place and changes nothing.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline import preflight
from pipeline.preflight import DEBOOTSTRAP, DOCKER_ENGINE, NGINX, Component, Job
from pipeline.stages import DOCKER, MODES, NATIVE

logger = logging.getLogger("pipeline.system")

PULL_TIMEOUT = 30.0
ENGINE_START_TIMEOUT = 60.0
APT_LOG = Path(os.environ.get("SYSTEM_APT_LOG", "/tmp/credit-risk-apt.log"))
DOCKERD_LOG = Path(os.environ.get("DOCKERD_LOG", "/tmp/dockerd.log"))
BASE_IMAGES_SCRIPT = preflight.ROOT / ".ci" / "base-images.sh"
# No questions, and no debconf notes about a missing apt-utils: the step is quiet.
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NOWARNINGS": "yes"}


class SetupError(RuntimeError):
    """Something the job needs could not be provided; the message says what and how."""


def apt_install(components: Sequence[Component]) -> None:
    """`apt-get update` and install the components' packages; apt's own error on failure."""
    names = preflight.packages(components)
    logger.info("installing %s (apt-get; log %s)", " ".join(names), APT_LOG)
    environ = {**os.environ, **APT_ENV}
    with APT_LOG.open("a") as log:
        for command in (["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *names]):
            # apt's errors go to stderr, which stays ours: the user sees apt's own words.
            status = subprocess.run(command, stdout=log, env=environ, check=False).returncode
            if status != 0:
                raise SetupError(f"`{' '.join(command[:2])}` failed (status {status}) "
                                 f"installing {' '.join(names)}; apt's error is above")
    if NGINX in components:
        stop_packaged_nginx()


def stop_packaged_nginx() -> None:
    """Stop the system NGINX that Debian's package starts on port 80 when installed.

    Only that instance (its unit, or the pid in its own pid file): NGINX servers that other
    people started with their own configs are left alone."""
    if Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "disable", "--now", "nginx"], capture_output=True,
                       check=False)
        return
    pid_file = Path("/run/nginx.pid")
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 15)
        logger.info("stopped the NGINX that the package started (pid %d)", pid)
    except (OSError, ValueError, IndexError):
        pass


def start_engine() -> None:
    """Start dockerd (systemd when it runs the machine) and wait, bounded, until it answers."""
    daemon = None
    if Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "start", "docker"], capture_output=True, check=False)
    else:
        dockerd = preflight.find_executable("dockerd")
        logger.info("starting dockerd (log %s)", DOCKERD_LOG)
        with DOCKERD_LOG.open("a") as log:
            # A session of its own: the daemon outlives this make run and its process group.
            daemon = subprocess.Popen([str(dockerd)], stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + ENGINE_START_TIMEOUT
    while time.monotonic() < deadline:
        if preflight.engine_answers():
            return
        if daemon is not None and daemon.poll() is not None:
            break  # it exited: its log says why
        time.sleep(1)
    tail = DOCKERD_LOG.read_text(errors="replace").splitlines()[-3:] \
        if DOCKERD_LOG.exists() else []
    raise SetupError(f"the Docker engine did not start within {ENGINE_START_TIMEOUT:.0f}s; "
                     f"last lines of {DOCKERD_LOG}:\n" + "\n".join(tail))


def pull(image: str) -> bool:
    """Pull `image` when a registry answers within PULL_TIMEOUT."""
    try:
        return subprocess.run(["docker", "pull", "--quiet", image], capture_output=True,
                              timeout=PULL_TIMEOUT, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def provide_base_images(may_install: bool) -> None:
    """Every base image present: kept, else pulled, else a stand-in built with debootstrap."""
    absent = [image for image in preflight.base_images() if not preflight.image_present(image)]
    for image in list(absent):
        if pull(image):
            logger.info("pulled base image %s", image)
            absent.remove(image)
    if not absent:
        return
    logger.info("no registry answered for %s within %.0fs: building stand-ins offline",
                ", ".join(absent), PULL_TIMEOUT)
    if not DEBOOTSTRAP.present():
        if not may_install:
            raise SetupError(f"building stand-ins for {', '.join(absent)} needs debootstrap; "
                             f"install: {preflight.install_hint([DEBOOTSTRAP])}")
        apt_install([DEBOOTSTRAP])
    status = subprocess.run(["bash", str(BASE_IMAGES_SCRIPT)], check=False).returncode
    if status != 0:
        raise SetupError(f"{BASE_IMAGES_SCRIPT.relative_to(preflight.ROOT)} failed "
                         f"(status {status})")


def pipeline_mode(environ: Mapping[str, str]) -> str:
    """The mode `make pipeline` will run in: PIPELINE_MODE, else Docker when it is installed
    and its engine answers or can be started here, else native (as runner.detect_mode)."""
    forced = environ.get("PIPELINE_MODE", "").strip().lower()
    if forced in MODES:
        return forced
    if not DOCKER_ENGINE.present():
        return NATIVE
    if preflight.engine_answers():
        return DOCKER
    if preflight.is_root():
        start_engine()
        return DOCKER
    return NATIVE


def ensure(job_name: str) -> None:
    """Provide what `job_name` needs (as root, with apt), then check it; raise if anything
    is still missing, with one message naming it and how to install it."""
    job: Job = preflight.JOBS[job_name]
    may_install = preflight.is_root() and preflight.has_apt()
    absent = preflight.missing(job.components)
    if absent:
        if not may_install:
            raise SetupError(preflight.missing_message(job, absent))
        apt_install(absent)
        still = preflight.missing(job.components)
        if still:
            raise SetupError(preflight.missing_message(job, still))
    if job.needs_engine:
        problem = preflight.engine_problem()
        if problem:
            if not preflight.is_root():
                hint = ("join the docker group: sudo usermod -aG docker $USER"
                        if "permission denied" in problem else
                        "start it as root: systemctl start docker (or: dockerd &)")
                raise SetupError(f"{job.title} needs Docker: the engine does not answer "
                                 f"({problem}); {hint}")
            start_engine()
        provide_base_images(may_install)
    problem = preflight.check(job_name)
    if problem:
        raise SetupError(problem)
    logger.info("%s: %s installed%s", job.title, ", ".join(c.name for c in job.components),
                "; the Docker engine answers; base images present" if job.needs_engine else "")


def ensure_for_pipeline(environ: Mapping[str, str]) -> str:
    """Provide what `make pipeline` needs in the mode it will run in; return that mode."""
    mode = pipeline_mode(environ)
    ensure(preflight.pipeline_job(mode))
    return mode
