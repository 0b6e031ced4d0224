"""Small helpers shared by the test kinds that drive real components."""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import socket
import time
from collections.abc import Callable

import pytest
import requests

from pipeline import preflight

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_component(available: bool, reason: str) -> None:
    """Skip when a real component is missing locally; fail in CI, where it is mandatory.

    `reason` starts with "needs <component>", so a skipped test says what it lacks."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a required component is missing: {reason}")
    pytest.skip(reason)


def require_executable(name: str) -> str:
    """Path of an executable the test needs (see `require_component` for missing ones)."""
    path = preflight.find_executable(name)
    component = preflight.providing(name)
    if component is None:
        reason = f"needs {name}: not installed"
    else:
        reason = (f"needs {component.name}: `{name}` is not installed; "
                  f"`make system` installs it ({preflight.install_hint([component])})")
    require_component(path is not None, reason)
    return str(path)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 30.0, status: int = 200) -> requests.Response:
    """Poll `url` until it answers with `status`; fail the test with the last error otherwise."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == status:
                return response
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except requests.RequestException as error:
            last = error
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer {status} within {timeout}s (last: {last})")


def wait_until(condition: Callable[[], object], timeout: float,
               what: str | Callable[[], str], interval: float = 0.1) -> object:
    """Poll `condition` until it returns something truthy (returned), or fail the test
    naming the event `what` that did not happen within `timeout` seconds (a callable
    `what` is asked then, so the message can show the last state seen)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            event = what() if callable(what) else what
            pytest.fail(f"{event} did not happen within {timeout:.0f}s")
        time.sleep(interval)


def failure_with_file_size_limit(limit: int, action: Callable[[], object]) -> str:
    """Run `action` in a forked child that may not grow a file past `limit` bytes: the
    kernel cuts a write short at the limit and refuses the next, as on a full disk
    (RLIMIT_FSIZE). What it raised ("Type: message"), or "" when it returned."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not the default kill
        unlimited = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, unlimited[1]))
        try:
            action()
            sender.send("")
        except Exception as error:  # noqa: BLE001 - reported to the parent as it was
            sender.send(f"{type(error).__name__}: {error}")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, unlimited)  # coverage writes its data

    process = context.Process(target=child)
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0, f"the child ended with {process.exitcode}"
    return receiver.recv()
