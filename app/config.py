"""Service settings: defaults in code, then environment variables, then the caller's dict.

Importing this module reads nothing; `load_settings()` is called by `create_app`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# Every setting the service reads, with its default. The type of the default is the type
# an environment value is converted to.
DEFAULTS: dict[str, Any] = {
    # Registry directory whose `production` pointer names the serving model.
    "MODEL_REGISTRY": "registry",
    # JSON-lines logs: one line per scored row, one line per reported outcome.
    "PREDICTION_LOG": "run/predictions.jsonl",
    "FEEDBACK_LOG": "run/feedback.jsonl",
    # The prediction log is renamed aside (never deleted) once it reaches this size;
    # 0 disables rotation.
    "PREDICTION_LOG_MAX_BYTES": 64 * 1024 * 1024,
    # How often (seconds) each worker's watcher thread reads the production pointer, with or
    # without traffic; 0 = on every request instead, no thread (tests and debugging only).
    "MODEL_RELOAD_SECONDS": 5.0,
    # Rows per request, and bytes per request body (Flask answers 413 above it).
    "MAX_BATCH_SIZE": 100,
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    # Drift in /metrics: PSI over the last DRIFT_WINDOW rows this worker scored,
    # recomputed every DRIFT_EVERY rows once DRIFT_MIN_ROWS rows were seen.
    "DRIFT_WINDOW": 1000,
    "DRIFT_EVERY": 50,
    "DRIFT_MIN_ROWS": 100,
    # Optional artifact directory promoted by Gunicorn's start hook into an empty registry.
    "MODEL_SEED_DIR": "",
    "LOG_LEVEL": "INFO",
}


class SettingsError(ValueError):
    """An environment value that cannot be converted to its setting's type."""


def _convert(name: str, raw: str, default: Any) -> Any:
    """Convert one environment string to the type of the setting's default."""
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as error:
        raise SettingsError(f"{name}={raw!r}: {error}") from None
    return raw


def load_settings(environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then environment variables of the same name, then `overrides`."""
    environ = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        raw = environ.get(name)
        if raw is not None and raw != "":
            settings[name] = _convert(name, raw, default)
    settings.update(overrides or {})
    return settings
