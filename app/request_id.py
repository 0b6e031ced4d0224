"""A request id for every request: the caller's X-Request-ID when sane, else a new one.

NGINX sets X-Request-ID in production, so a line of its access log, of Gunicorn's, of the
prediction log and the API answer share one id. Anything that could break a log line or
a header (spaces, quotes, control characters, kilobytes) is replaced, not trusted.
"""

from __future__ import annotations

import os
import re
import threading
from typing import TypeGuard

from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
# Matched with fullmatch: `$` would also accept a trailing newline ("abc\n").
SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def is_sane(value: str | None) -> TypeGuard[str]:
    """Whether a caller's id can be used as is (letters, digits, . _ : -; at most 128)."""
    return bool(value) and SANE.fullmatch(value or "") is not None


class RandomIds:
    """Random ids of 32 hex digits from the OS's CSPRNG, drawn `batch` at a time.

    One getrandom() per id was a system call on every request, and each one hands the GIL
    to another thread and waits to get it back. Ids are never shared across a fork: a
    process that finds ids drawn by its parent draws its own.
    """

    def __init__(self, batch: int = 256) -> None:
        self.batch = batch
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._ids: list[str] = []

    def next(self) -> str:
        """A fresh id."""
        with self._lock:
            if self._owner != os.getpid() or not self._ids:
                digits = os.urandom(16 * self.batch).hex()
                self._ids = [digits[start:start + 32] for start in range(0, len(digits), 32)]
                self._owner = os.getpid()
            return self._ids.pop()


_RANDOM_IDS = RandomIds()


def new_request_id() -> str:
    """A fresh random id (32 hex digits, like NGINX's $request_id)."""
    return _RANDOM_IDS.next()


def request_id_for(incoming: str | None) -> str:
    """The id of a request whose X-Request-ID header is `incoming` (None: none sent)."""
    return incoming if is_sane(incoming) else new_request_id()


def assign_request_id() -> None:
    """Before each request: its id in `g.request_id`."""
    g.request_id = request_id_for(request.headers.get(HEADER))


def echo_request_id(response: Response) -> Response:
    """After each request: its id in the answer's X-Request-ID."""
    request_id = g.get("request_id")
    if request_id is not None:
        response.headers[HEADER] = request_id
    return response


def init_request_id(app: Flask) -> None:
    """Give every request of `app` an id in `g.request_id`, echoed as X-Request-ID."""
    app.before_request(assign_request_id)
    app.after_request(echo_request_id)
