"""What the soak and chaos tests share: a small tmpfs, memory and disk readings, junk load."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.helpers import require_component
from tests.servers import BackgroundLoad, Outcome, load_generator_session


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` for the block (needs root, as in CI)."""
    path.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    require_component(os.geteuid() == 0 and mount is not None,
                      "mounting a small tmpfs needs root and mount(8)")
    subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size},mode=1777", "tmpfs", str(path)],
                   check=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)


def used_bytes(path: Path) -> int:
    """Bytes in use on the file system of `path` (a tmpfs: what its files occupy)."""
    stats = os.statvfs(path)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def children(pid: int) -> list[int]:
    """Pids whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def rss_kib(pids: list[int]) -> int:
    """Resident memory of the processes, in KiB (0 for one that ended)."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        # A recycled worker that exited but was not reaped yet (a zombie) has no VmRSS line.
        total += next((int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
    return total


def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> None:
    """Poll `condition` until true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g}s"
        time.sleep(0.1)


JUNK_METHODS = ("BREW", "PROPFIND", "XYZZY", "SEARCH", "TRACE", "FOOBARBAZ")


class JunkLoad:
    """A thread sending invented methods and oversized bodies through NGINX until stopped.

    Every answer must be a 4xx: counted by status, anything else is kept in `unexpected`.
    """

    def __init__(self, url: str, body_bytes: int = 2 * 1024 * 1024) -> None:
        self.url = url.rstrip("/")
        self.body = b"{" + b" " * body_bytes + b"}"
        self.statuses: Counter[int] = Counter()
        self.unexpected: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "JunkLoad":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        pick = random.Random(11)
        with load_generator_session() as session:
            while not self._stop.is_set():
                try:
                    if pick.random() < 0.5:
                        response = session.request(pick.choice(JUNK_METHODS),
                                                   self.url + "/api/v1/predict", timeout=30)
                    else:
                        response = session.post(
                            self.url + "/api/v1/predict", data=self.body, timeout=30,
                            headers={"Content-Type": "application/json"})
                except requests.RequestException as error:
                    # NGINX may close the connection on a body it refused before reading it.
                    self.statuses[0] += 1
                    if "Connection" not in str(error):
                        self.unexpected.append(str(error)[:200])
                    continue
                self.statuses[response.status_code] += 1
                if not 400 <= response.status_code < 500:
                    self.unexpected.append(f"{response.status_code}: {response.text[:200]}")
                self._stop.wait(0.02)


@dataclass(frozen=True)
class IdOutcome(Outcome):
    """An outcome with the request id the service answered (empty when it did not) and
    when the request started and ended (time.monotonic())."""

    request_id: str = ""
    started: float = 0.0
    ended: float = 0.0


class IdRecordingLoad(BackgroundLoad):
    """A background load that also records the request id and timing of every answer."""

    def stop(self) -> None:
        """Stop sending and wait for the requests in flight (leaving the block does too)."""
        self.__exit__(None, None, None)

    def _send(self, session: requests.Session) -> Outcome:
        started = time.monotonic()
        try:
            response = session.post(self.url, json=self.payload, timeout=30)
        except requests.RequestException as error:
            return IdOutcome(0, error=str(error)[:200], started=started,
                             ended=time.monotonic())
        body = response.json() if response.headers.get("Content-Type", "").startswith(
            "application/json") else {}
        return IdOutcome(response.status_code, body.get("model_version"),
                         "" if response.status_code == 200 else response.text[:200],
                         body.get("request_id", ""), started, time.monotonic())


def fill_disk(directory: Path, leave_bytes: int = 0) -> Path:
    """Write a file into `directory` until its file system has at most `leave_bytes` free
    (0: full); the file's path."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:  # unbuffered: close() has nothing to add
        try:
            while os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize > leave_bytes:
                handle.write(b"\0" * 4096)
        except OSError:  # full
            pass
    return filler
