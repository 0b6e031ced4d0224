"""The benchmark's floor: a bare Flask app whose /healthz returns constant JSON.

`make bench` runs it under the service's own Gunicorn settings (app/gunicorn.conf.py), so
the service's /healthz against this one is the cost of the service's middleware (request
ids, metrics, headers, logging). Only Gunicorn imports it, inside .venv: the rest of
`pipeline` stays standard library only.
"""

from __future__ import annotations

from flask import Flask, jsonify


def create_app() -> Flask:
    """A Flask app with one route, GET /healthz -> {"status": "ok"}."""
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> object:
        return jsonify(status="ok")

    return app


app = create_app()
