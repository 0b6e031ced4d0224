"""POST /api/v1/predict answered before Flask: the scoring route's hot path, as plain WSGI.

Measured on the 2-core machine (one-row predict, the WSGI app called in-process): through
Flask's request machinery - request and app contexts, routing, the hooks, the Response
object and its headers - 171 us; here 51 us, nearly all of it scoring, the prediction log
and the metrics. Under Gunicorn (wrk, 8 connections) the bare Flask no-op answered 1.6 x as
many one-row predictions a second before, 1.2 x here.

Answered here: a POST with a JSON content type and a Content-Length within
MAX_PREDICT_BYTES, whatever its body - a prediction, or the same error answer Flask gives
(malformed JSON 400, a field that breaks the schema 422, no model 503, the prediction log
refusing the rows 503, a bug 500 logged with its traceback), from the same functions
(`answer_request_body`, `error_body`) and written by Flask's JSON provider.
Handed to Flask untouched: any other method, content type or length (a chunked, empty,
oversized or cut-short body: 415, 413, 400 are Flask's own), so that HTTP's edge cases
have one source.

What Flask does around the view is done here too, from the same functions: the request id
(`request_id_for`, echoed as X-Request-ID) and the request's count and time
(`Metrics.request_answered`). Any other hook on the route would be skipped, so the fast path
refuses to start when the app has one (`bypassed_hooks`) and Flask answers everything.
PREDICT_FAST_PATH=0 turns it off.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, signals

from app import json_body
from app.errors import (UNEXPECTED_MESSAGE, ApiError, error_body,
                        log_unexpected)
from app.request_id import HEADER, assign_request_id, echo_request_id, request_id_for
from app.scoring import answer_request_body
from app.service import EXTENSION_KEY, Service

logger = logging.getLogger(__name__)

ENDPOINT = "api.predict"
METHOD = "POST"
# Flask's signals around a request: a receiver of any of them is skipped by the fast path.
REQUEST_SIGNALS = (signals.request_started, signals.request_finished,
                   signals.request_tearing_down, signals.got_request_exception,
                   signals.appcontext_pushed, signals.appcontext_popped,
                   signals.appcontext_tearing_down)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def bypassed_hooks(app: Flask, state: Service) -> list[str]:
    """What the app would run around the scoring view that the fast path does not mirror
    (hooks of the app or of the route's blueprint, request signals); [] when none."""
    blueprint = ENDPOINT.split(".")[0]
    mirrored = {assign_request_id, echo_request_id, state.metrics.start_timer,
                state.metrics.record_request}
    hooks = [(kind, hook)
             for kind, registry in (("before_request", app.before_request_funcs),
                                    ("after_request", app.after_request_funcs),
                                    ("teardown_request", app.teardown_request_funcs),
                                    ("url_value_preprocessor", app.url_value_preprocessors))
             for scope in (None, blueprint) for hook in registry.get(scope, ())
             if hook not in mirrored]
    hooks += [("teardown_appcontext", hook) for hook in app.teardown_appcontext_funcs]
    return [f"{kind} {getattr(hook, '__qualname__', hook)!s}" for kind, hook in hooks] + \
        [f"signal {signal.name}" for signal in REQUEST_SIGNALS if signal.receivers]


def install(app: Flask) -> bool:
    """Put the fast path in front of `app`'s WSGI callable, unless the setting is off or the
    app has hooks it would skip (then logged); whether it was put."""
    state: Service = app.extensions[EXTENSION_KEY]
    on = bool(app.config["PREDICT_FAST_PATH"])
    skipped = bypassed_hooks(app, state) if on else []
    if skipped:
        logger.warning("POST /api/v1/predict goes through Flask: the fast path would skip %s",
                       ", ".join(skipped))
    on = on and not skipped
    state.metrics.predict_fast_path.set(1 if on else 0)
    if on:
        app.wsgi_app = PredictFastPath(app, state, app.wsgi_app)  # type: ignore[method-assign]
    return on


class PredictFastPath:
    """WSGI middleware answering plain scoring requests; hands every other request on."""

    def __init__(self, app: Flask, state: Service, wsgi_app: WsgiApp) -> None:
        self.app = app
        self.state = state
        self.wsgi_app = wsgi_app
        # A static rule: the path it matches is its template, the metrics' route label.
        self.path = next(app.url_map.iter_rules(ENDPOINT)).rule
        self.max_bytes = int(app.config["MAX_PREDICT_BYTES"])
        self.max_batch_size = int(app.config["MAX_BATCH_SIZE"])

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        """Answer a plain scoring request; pass anything else to the wrapped app."""
        if environ.get("PATH_INFO") != self.path or environ.get("REQUEST_METHOD") != METHOD:
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        data = self._body(environ)
        if data is None:
            return self.wsgi_app(environ, start_response)
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID"))
        try:
            body, headers = answer_request_body(self.state, data, self.max_batch_size,
                                                request_id)
        except ApiError as error:
            return self._error(environ, start_response, started, request_id, error.status,
                               error_body(error.status, error.message, error.fields,
                                          error.error, request_id))
        except Exception:  # noqa: BLE001 - answered as Flask's handler would: 500, logged
            log_unexpected(METHOD, self.path)
            return self._error(environ, start_response, started, request_id, 500,
                               error_body(500, UNEXPECTED_MESSAGE, request_id=request_id))
        answer = json_body.encode(body)
        start_response("200 OK", [("Content-Type", json_body.MIMETYPE),
                                  ("Content-Length", str(len(answer))), *headers.items(),
                                  (HEADER, request_id)])
        self.state.metrics.request_answered(self.path, METHOD, 200,
                                            time.perf_counter() - started)
        return [answer]

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """The body of a JSON request of a plain length; None for anything else, which Flask
        must look at: the body read is put back as the request's input for it."""
        content_type = environ.get("CONTENT_TYPE") or ""
        if content_type.partition(";")[0].strip().lower() != json_body.MIMETYPE:
            return None
        length = environ.get("CONTENT_LENGTH") or ""
        # Digits only, and few of them: int() refuses a string of over 4,300 digits.
        size = int(length) if length.isascii() and length.isdigit() and len(length) <= 18 \
            else 0
        if "HTTP_TRANSFER_ENCODING" in environ or not 0 < size <= self.max_bytes:
            return None
        data = environ["wsgi.input"].read(size)
        if len(data) != size:  # the client stopped short: Flask sees what came
            environ["wsgi.input"] = io.BytesIO(data)
            return None
        return data

    def _error(self, environ: dict[str, Any], start_response: StartResponse, started: float,
               request_id: str, status: int, body: dict[str, Any]) -> Iterable[bytes]:
        """An error answer, written by Flask's JSON provider as `jsonify` writes it; counted
        like any other answer."""
        response = self.app.json.response(body)
        response.status_code = status
        response.headers[HEADER] = request_id
        self.state.metrics.request_answered(self.path, METHOD, status,
                                            time.perf_counter() - started)
        return response(environ, start_response)
