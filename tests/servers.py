"""Real servers for the tests: Gunicorn running the app, and Debian's NGINX in front of it.

Each server is a context manager that picks a free loopback port, waits until the server
answers, and always stops it (also when the test fails); on failure it writes the tail of
the server's logs to stderr, which pytest shows with the failure. Typical use::

    with running_gunicorn(registry_dir, tmp_path / "app") as app, \\
            running_nginx(app.url, run_dir=tmp_path / "nginx") as edge:
        requests.post(edge.url + "/api/v1/predict", json=applicant)

`running_stack` does both. The NGINX configuration is the project's own (nginx/), rendered
by `render_nginx_config` with only the upstream, listen address and static root replaced
(pipeline/nginx_site.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

from pipeline import bench, nginx_site
from tests.helpers import (free_port, require_component, require_executable, wait_for_http,
                           wait_until)

ROOT = Path(__file__).resolve().parent.parent
NGINX_DIR = ROOT / "nginx"
NGINX_TEMPLATE = nginx_site.TEMPLATE
NGINX_MAIN = NGINX_DIR / "standalone.conf"
STATIC_ROOT = ROOT / "app" / "static"
GUNICORN_CONF = ROOT / "app" / "gunicorn.conf.py"
# How the tests start the service under Gunicorn (from ROOT).
GUNICORN_COMMAND = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "app.wsgi:app"]
# The loopback address NGINX does not rate limit (nginx/credit-risk.conf.template): the
# benchmark and the background load of the reload and worker-kill tests come from it.
LOAD_GENERATOR_ADDRESS = bench.LOAD_GENERATOR_ADDRESS
LOG_TAIL_CHARS = 6000
# A feedback token for stacks that switch feedback on; clients send FEEDBACK_AUTH.
FEEDBACK_TOKEN = "integration-feedback-token-0123"
FEEDBACK_AUTH = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}

# Servers running right now, so that a failing test's report can show their logs
# (tests/integration/conftest.py adds them as report sections).
ACTIVE: list["Server"] = []


@dataclass
class Server:
    """A running server process: where it answers and where it logs."""

    name: str
    url: str
    process: subprocess.Popen
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """Process id of the server (Gunicorn's master, NGINX's master)."""
        return self.process.pid

    def log(self, which: str | None = None) -> str:
        """Text of one log (default: the first), empty when it does not exist yet."""
        path = self.logs[which] if which else next(iter(self.logs.values()))
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tails(self) -> str:
        """The end of every log of this server, for failure reports."""
        parts = []
        for which, path in self.logs.items():
            text = path.read_text(errors="replace") if path.exists() else "(no file)"
            parts.append(f"--- {self.name} {which} ({path}) ---\n{text[-LOG_TAIL_CHARS:]}")
        return "\n".join(parts)


# --- NGINX configuration ---------------------------------------------------------------
def render_nginx_config(run_dir: Path, upstream: str, listen: str,
                        static_root: Path = STATIC_ROOT) -> Path:
    """Write nginx.conf + credit-risk.conf into `run_dir` and return nginx.conf's path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    site = nginx_site.SiteValues(upstream, listen, str(Path(static_root).resolve()))
    (run_dir / "credit-risk.conf").write_text(nginx_site.render(site))
    conf = run_dir / "nginx.conf"
    shutil.copyfile(NGINX_MAIN, conf)
    return conf


def nginx_command(conf: Path, *extra: str) -> list[str]:
    """The NGINX command line for a config rendered by `render_nginx_config`."""
    nginx = require_executable("nginx")
    # -e: errors before the config is read go to stderr, not to a root-only default path.
    return [nginx, "-p", f"{conf.parent}/", "-c", str(conf), "-e", "stderr", *extra]


def check_nginx_config(conf: Path) -> subprocess.CompletedProcess:
    """Run `nginx -t` on a rendered config; the result carries NGINX's verdict in stderr."""
    return subprocess.run(nginx_command(conf, "-t"), capture_output=True, text=True,
                          timeout=30, check=False)


# --- process handling ------------------------------------------------------------------
def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
    """Ask a server to stop, then kill its whole process group if it does not."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Workers could outlive a master that was killed: end the group (started as its leader).
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(timeout=10)


def _wait_listening(server: Server, port: int, timeout: float) -> None:
    """Wait until the port accepts connections; fail at once if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"{server.name} exited with {server.process.returncode} before "
                        f"listening\n{server.log_tails()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{server.name} did not listen on port {port} within {timeout}s\n"
                f"{server.log_tails()}")


@contextmanager
def _supervised(server: Server, stop_signal: int) -> Iterator[Server]:
    """Track `server` while the block runs; stop it and show its logs if the block fails."""
    ACTIVE.append(server)
    try:
        yield server
    except BaseException:
        sys.stderr.write(server.log_tails() + "\n")
        raise
    finally:
        ACTIVE.remove(server)
        _stop(server.process, stop_signal)


# --- Gunicorn --------------------------------------------------------------------------
@contextmanager
def running_gunicorn(registry_dir: Path, log_dir: Path, workers: int = 2, threads: int = 4,
                     env: dict[str, str] | None = None, ready_path: str | None = "/readyz",
                     timeout: float = 90.0) -> Iterator[Server]:
    """Gunicorn serving app.wsgi:app on a free loopback port, with logs in `log_dir`.

    The prediction and feedback logs and Prometheus' multiprocess files go to `log_dir`;
    `env` overrides any variable (MODEL_RELOAD_SECONDS is 1 unless given). Readiness is
    `ready_path` answering 200 (None: only wait for the port).
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # The seed hook would promote a model into the test's registry behind its back.
    inherited = {k: v for k, v in os.environ.items() if k != "MODEL_SEED_DIR"}
    environment = {
        **inherited,
        "MODEL_REGISTRY": str(registry_dir),
        "PREDICTION_LOG": str(log_dir / "predictions.jsonl"),
        "FEEDBACK_LOG": str(log_dir / "feedback.jsonl"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "PROMETHEUS_MULTIPROC_DIR": str(log_dir / "prometheus"),
        "MODEL_RELOAD_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    log_path = log_dir / "gunicorn.log"
    with open(log_path, "ab") as log:
        # A new session: the master and its workers form one group that _stop can end.
        process = subprocess.Popen(
            GUNICORN_COMMAND, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server("gunicorn", f"http://127.0.0.1:{port}", process, {"log": log_path})
    # SIGTERM is Gunicorn's graceful stop: workers finish their requests first.
    with _supervised(server, signal.SIGTERM):
        _wait_listening(server, port, timeout)
        if ready_path:
            wait_for_http(server.url + ready_path, timeout=timeout)
        yield server


def worker_pids(master_pid: int) -> list[int]:
    """Pids of the processes whose parent is `master_pid` (Gunicorn's workers), from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # Fields after the command name, which is in parentheses and may contain spaces.
        fields = stat[stat.rindex(")") + 2:].split()
        state, parent = fields[0], int(fields[1])
        if parent == master_pid and state != "Z":
            children.append(int(entry.name))
    return sorted(children)


# --- NGINX -----------------------------------------------------------------------------
@contextmanager
def running_nginx(upstream_url: str, static_root: Path = STATIC_ROOT,
                  run_dir: Path | None = None, ready_path: str | None = "/healthz",
                  timeout: float = 30.0) -> Iterator[Server]:
    """Debian's NGINX with the project config on a free loopback port, proxying to
    `upstream_url` (http://host:port). Logs: `access` (JSON lines) and `error`."""
    upstream = upstream_url.split("://", 1)[-1].rstrip("/")
    own_dir = run_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="nginx-")) if own_dir else Path(run_dir)
    port = free_port()
    conf = render_nginx_config(run_dir, upstream, f"127.0.0.1:{port}", static_root)
    checked = check_nginx_config(conf)
    if checked.returncode != 0:
        pytest.fail(f"nginx -t refused {conf}:\n{checked.stderr}")
    access, error = run_dir / "access.log", run_dir / "error.log"
    with open(access, "ab") as out, open(error, "ab") as err:
        process = subprocess.Popen(nginx_command(conf, "-g", "daemon off;"),
                                   stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    server = Server("nginx", f"http://127.0.0.1:{port}", process,
                    {"access": access, "error": error})
    try:
        # SIGQUIT is NGINX's graceful shutdown (requests in progress are finished).
        with _supervised(server, signal.SIGQUIT):
            _wait_listening(server, port, timeout)
            if ready_path:
                wait_for_http(server.url + ready_path, timeout=timeout)
            yield server
    finally:
        if own_dir:
            shutil.rmtree(run_dir, ignore_errors=True)


@dataclass
class Stack:
    """Gunicorn and the NGINX in front of it."""

    app: Server
    edge: Server

    @property
    def url(self) -> str:
        """The public URL (NGINX)."""
        return self.edge.url


@contextmanager
def running_stack(registry_dir: Path, work_dir: Path, **gunicorn_options) -> Iterator[Stack]:
    """Gunicorn (logs in work_dir/app) behind NGINX (run dir work_dir/nginx)."""
    work_dir = Path(work_dir)
    with running_gunicorn(registry_dir, work_dir / "app", **gunicorn_options) as app, \
            running_nginx(app.url, run_dir=work_dir / "nginx") as edge:
        yield Stack(app, edge)


# --- clients ---------------------------------------------------------------------------
class _SourceAddressAdapter(HTTPAdapter):
    """An adapter whose connections leave from a given local address."""

    def __init__(self, source_address: str, **kwargs) -> None:
        self._source_address = source_address
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["source_address"] = (self._source_address, 0)
        super().init_poolmanager(*args, **kwargs)


def load_generator_session() -> requests.Session:
    """A session whose requests come from LOAD_GENERATOR_ADDRESS (not rate limited)."""
    session = requests.Session()
    session.mount("http://", _SourceAddressAdapter(LOAD_GENERATOR_ADDRESS))
    return session


@dataclass(frozen=True)
class Outcome:
    """One request of a background load: its HTTP status (0: no answer) and model version."""

    status: int
    version: str | None = None
    error: str = ""


class BackgroundLoad:
    """Client threads that keep scoring `payload` through `url` until stopped.

    Bounded in count and time (`max_requests`, `max_seconds`) so a hung server cannot hang
    the test. Requests come from LOAD_GENERATOR_ADDRESS, so NGINX's rate limit is not what
    is being tested. Use as a context manager; `outcomes` lists every finished request.
    """

    def __init__(self, url: str, payload: dict, threads: int = 2, max_requests: int = 20000,
                 max_seconds: float = 180.0, pause: float = 0.0) -> None:
        self.url = url.rstrip("/") + "/api/v1/predict"
        self.payload = payload
        # Seconds each thread waits between requests: a client NGINX rate-limits (one that
        # cannot come from LOAD_GENERATOR_ADDRESS, as through Docker's port publishing)
        # stays under the limit.
        self.pause = pause
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self._outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(threads)]

    def __enter__(self) -> "BackgroundLoad":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    @property
    def outcomes(self) -> list[Outcome]:
        """A snapshot of every finished request, in completion order."""
        with self._lock:
            return list(self._outcomes)

    def failures(self) -> list[Outcome]:
        """The requests that did not get a 200."""
        return [outcome for outcome in self.outcomes if outcome.status != 200]

    def wait_until(self, condition: Callable[[list[Outcome]], bool],
                   timeout: float = 60.0) -> bool:
        """Wait until `condition(outcomes)` holds (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self.outcomes):
                return True
            if not any(thread.is_alive() for thread in self._threads):
                break
            time.sleep(0.05)
        return condition(self.outcomes)

    def _run(self) -> None:
        with load_generator_session() as session:
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                with self._lock:
                    if len(self._outcomes) >= self.max_requests:
                        return
                self._record(self._send(session))
                self._stop.wait(self.pause)

    def _send(self, session: requests.Session) -> Outcome:
        try:
            response = session.post(self.url, json=self.payload, timeout=30)
        except requests.RequestException as error:
            return Outcome(0, error=str(error))
        if response.status_code != 200:
            return Outcome(response.status_code, error=response.text[:200])
        return Outcome(200, response.json().get("model_version"))

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self._outcomes.append(outcome)


# --- MLflow tracking server ------------------------------------------------------------
def mlflow_executable() -> str:
    """The `mlflow` command of this venv (requirements-training.txt installs it)."""
    path = Path(sys.executable).with_name("mlflow")
    require_component(path.is_file(), f"needs MLflow: {path} is missing; `make setup` "
                                      "installs requirements-training.txt")
    return str(path)


@contextmanager
def running_mlflow_server(store_dir: Path, timeout: float = 120.0) -> Iterator[Server]:
    """`mlflow server` on a free loopback port: SQLite backend store and served artifacts
    in `store_dir`. Ready when /health answers OK (the database is migrated by then)."""
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = store_dir / "mlflow-server.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [mlflow_executable(), "server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{store_dir}/mlflow.db",
             "--artifacts-destination", str(store_dir / "artifacts")],
            # No job runner: seven huey consumers (GenAI jobs) the registry does not use.
            cwd=store_dir, env={**{k: v for k, v in os.environ.items()
                                   if not k.startswith("MLFLOW_")},
                                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    server = Server("mlflow", f"http://127.0.0.1:{port}", process, {"log": log_path})
    with _supervised(server, signal.SIGTERM):
        _wait_listening(server, port, timeout)
        wait_until(lambda: _answers_ok(server, "/health"), timeout,
                   f"MLflow server on port {port} answering OK on /health")
        yield server


def stop_server(server: Server) -> None:
    """Stop a server now, inside its block (the block's own stop is then a no-op)."""
    _stop(server.process)


def _answers_ok(server: Server, path: str) -> bool:
    """Whether `path` answers 200; fails the test at once if the server exited."""
    if server.process.poll() is not None:
        pytest.fail(f"{server.name} exited with {server.process.returncode}\n"
                    f"{server.log_tails()}")
    try:
        return requests.get(server.url + path, timeout=2).status_code == 200
    except requests.RequestException:
        return False
