"""Every error the service answers goes through `error_response`: JSON for the API.

Browsers asking for a page outside /api get the same status with an HTML page instead.
Unexpected exceptions are logged with their traceback and answered with a bare 500.
An error body is small whatever the request: at most MAX_REPORTED_FIELDS problems (and the
total count), field names and texts truncated, because names come from the client.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

logger = logging.getLogger(__name__)

# Machine-readable error codes of the HTTP statuses the service answers with.
ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    500: "internal_error",
    503: "unavailable",
}

# The 500 answer's message; the traceback goes to the log, never to the client.
UNEXPECTED_MESSAGE = "The server failed to answer this request; the error was logged."

# Bounds of an error body: a request with 100,000 bad fields gets the first few and a count.
MAX_REPORTED_FIELDS = 20
MAX_FIELD_NAME_CHARS = 64
MAX_TEXT_CHARS = 400


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with '...' when cut."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def bounded_fields(fields: dict[str, str]) -> dict[str, str]:
    """The first MAX_REPORTED_FIELDS problems, names and texts truncated."""
    shown: dict[str, str] = {}
    for name, problem in fields.items():
        if len(shown) == MAX_REPORTED_FIELDS:
            break
        shown[truncate(name, MAX_FIELD_NAME_CHARS)] = truncate(problem, MAX_TEXT_CHARS)
    return shown


class ApiError(Exception):
    """An error answer decided by a view: status, message and the bad fields, if any."""

    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None,
                 error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}
        self.error = error or ERROR_CODES.get(status, "error")


def invalid_fields(fields: dict[str, str]) -> ApiError:
    """The 422 answer to a document whose `fields` (path -> problem) broke the schema."""
    count = len(fields)
    return ApiError(422, f"{count} field{'s' if count != 1 else ''} did not match the "
                         f"schema; see 'fields' (at most {MAX_REPORTED_FIELDS} listed).",
                    fields)


def error_body(status: int, message: str, fields: dict[str, str] | None = None,
               error: str | None = None, request_id: str | None = None) -> dict[str, Any]:
    """The one JSON error body: {"error", "message", "fields"?, "field_count"?, "request_id"}."""
    body: dict[str, Any] = {"error": error or ERROR_CODES.get(status, "error"),
                            "message": truncate(message, MAX_TEXT_CHARS)}
    if fields:
        body["fields"] = bounded_fields(fields)
        body["field_count"] = len(fields)
    if request_id:
        body["request_id"] = request_id
    return body


def error_response(status: int, message: str, fields: dict[str, str] | None = None,
                   error: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[Response, int]:
    """The JSON error answer of the current request (`error_body`), with `headers`."""
    response = jsonify(error_body(status, message, fields, error, g.get("request_id")))
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response, status


def _wants_html() -> bool:
    """A browser asking for a page (not an API client, not a JSON endpoint)."""
    if request.path.startswith("/api/") or request.blueprint == "api":
        return False
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _http_error(error: HTTPException) -> Any:
    status = error.code or 500
    if status < 400:  # a routing redirect (308) is an answer, not an error
        return error.get_response()
    headers: dict[str, str] = {}
    valid_methods = getattr(error, "valid_methods", None)
    if valid_methods:  # a 405 says what is allowed
        # Flask answers OPTIONS by itself, but NGINX refuses it (the API does not use it).
        headers["Allow"] = ", ".join(sorted(set(valid_methods) - {"OPTIONS"}))
    message = error.description or error.name
    if _wants_html():
        return render_template("error.html", status=status, title=error.name,
                               message=message), status, headers
    return error_response(status, message, headers=headers)


def _api_error(error: ApiError) -> Any:
    return error_response(error.status, error.message, error.fields, error.error)


def _unexpected(error: Exception) -> Any:
    if isinstance(error, HTTPException):
        return _http_error(error)
    log_unexpected(request.method, request.path)
    return _http_error(InternalServerError(UNEXPECTED_MESSAGE))


def log_unexpected(method: str, path: str) -> None:
    """Log the exception being handled, with its traceback, as one request's failure."""
    logger.exception("unhandled error on %s %s", method, path)


def register_error_handlers(app: Flask) -> None:
    """Route every error of `app` through the helpers above."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
