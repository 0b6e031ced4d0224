"""The credit-risk web service: a Flask application factory.

`create_app()` builds an app from defaults, then environment variables, then the given
config; it loads the production model once (per Gunicorn worker) and keeps it in
`app.extensions`. Nothing happens at import time.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from flask import Flask

from training.registry import Registry

logger = logging.getLogger(__name__)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the service: settings, model holder, metrics, logs, blueprints, error handlers."""
    # Imported here so that importing the package stays cheap and side-effect free.
    from app import api, predict_fast_path, web
    from app.canary import CanaryArm
    from app.config import load_settings
    from app.drift_window import DriftWindow
    from app.errors import register_error_handlers
    from app.feedback import FeedbackLedger
    from app.metrics import Metrics
    from app.model_holder import ModelHolder
    from app.prediction_log import JsonLinesLog
    from app.request_id import init_request_id
    from app.scoring_gate import ScoringGate
    from app.service import EXTENSION_KEY, Service

    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined] - keep schema order in answers
    settings = load_settings(overrides=config)
    app.config.update(settings)
    _configure_logging(str(settings["LOG_LEVEL"]))

    metrics = Metrics()
    registry = Registry(Path(settings["MODEL_REGISTRY"]))
    holder = ModelHolder(
        registry, float(settings["MODEL_RELOAD_SECONDS"]),
        on_load=lambda model, previous: metrics.model_loaded(
            model.version, previous.version if previous is not None else None,
            model.scoring_path),
        on_failure=lambda version, error: metrics.model_reload_failures.inc())
    canary = CanaryArm(registry, float(settings["MODEL_RELOAD_SECONDS"]),
                       on_trip=lambda release, reason: metrics.canary_tripped.labels(
                           version=release.version).set(1))
    drift = DriftWindow(int(settings["DRIFT_WINDOW"]), int(settings["DRIFT_EVERY"]),
                        int(settings["DRIFT_MIN_ROWS"]), on_report=metrics.drift_computed,
                        min_seconds=float(settings["DRIFT_MIN_SECONDS"]))
    prediction_log = JsonLinesLog(Path(settings["PREDICTION_LOG"]),
                                  int(settings["PREDICTION_LOG_MAX_BYTES"]))
    feedback_log = JsonLinesLog(Path(settings["FEEDBACK_LOG"]),
                                int(settings["FEEDBACK_LOG_MAX_BYTES"]))
    app.extensions[EXTENSION_KEY] = Service(
        settings=settings, holder=holder, canary=canary, metrics=metrics,
        prediction_log=prediction_log, feedback_log=feedback_log, drift=drift,
        feedback=FeedbackLedger(prediction_log, feedback_log),
        scoring_gate=ScoringGate(int(settings["LARGE_REQUEST_BYTES"])))
    if not settings["FEEDBACK_TOKEN"]:
        logger.warning("no FEEDBACK_TOKEN_FILE or FEEDBACK_TOKEN: POST /api/v1/feedback is "
                       "disabled (503)")

    init_request_id(app)
    metrics.instrument(app)
    register_error_handlers(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(web.bp)
    predict_fast_path.install(app)  # last: it checks the hooks registered above

    # The one load at start, in the worker before it serves; later swaps are the watcher's
    # (start_watcher, after the fork). A bad pointer or model leaves the worker unready.
    holder.refresh()
    canary.holder.refresh()
    if holder.model is None:
        logger.warning("no servable production model in %s yet; /readyz answers 503 until "
                       "one is promoted", registry.root)
    return app


def start_watcher(app: Flask) -> None:
    """Start the model watcher threads of this process (Gunicorn: after the fork)."""
    from app.service import EXTENSION_KEY
    state = app.extensions[EXTENSION_KEY]
    state.holder.start_watcher()
    state.canary.holder.start_watcher()


def _configure_logging(level: str) -> None:
    """Send the app's and the training package's logs to stdout unless already set up."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, stream=sys.stdout,
                            format="%(asctime)s %(levelname)s [%(process)d] %(name)s: "
                                   "%(message)s")
    for name in ("app", "training"):
        logging.getLogger(name).setLevel(level)
