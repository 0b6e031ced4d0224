"""A request id for every request: the caller's X-Request-ID when sane, else a new one.

NGINX sets X-Request-ID in production, so a line of its access log, of Gunicorn's, of the
prediction log and the API answer share one id. Anything that could break a log line or
a header (spaces, quotes, control characters, kilobytes) is replaced, not trusted.
"""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
# Matched with fullmatch: `$` would also accept a trailing newline ("abc\n").
SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def is_sane(value: str | None) -> bool:
    """Whether a caller's id can be used as is (letters, digits, . _ : -; at most 128)."""
    return bool(value) and SANE.fullmatch(value or "") is not None


def new_request_id() -> str:
    """A fresh random id (32 hex digits, like NGINX's $request_id)."""
    return uuid.uuid4().hex


def init_request_id(app: Flask) -> None:
    """Give every request of `app` an id in `g.request_id`, echoed as X-Request-ID."""

    @app.before_request
    def _assign() -> None:
        incoming = request.headers.get(HEADER)
        g.request_id = incoming if is_sane(incoming) else new_request_id()

    @app.after_request
    def _echo(response: Response) -> Response:
        if "request_id" in g:
            response.headers[HEADER] = g.request_id
        return response
