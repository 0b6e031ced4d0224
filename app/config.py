"""Service settings: defaults in code, then environment variables, then the caller's dict.

Importing this module reads nothing; `load_settings()` is called by `create_app` (and reads
the feedback token's file, when one is named).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
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
    # The feedback log is rotated the same way (0 disables rotation).
    "FEEDBACK_LOG_MAX_BYTES": 64 * 1024 * 1024,
    # The bearer token POST /api/v1/feedback requires: read from FEEDBACK_TOKEN_FILE (a
    # Docker secret, e.g. /run/secrets/feedback_token) or given as FEEDBACK_TOKEN, not both.
    # With neither (or an empty file), feedback is disabled: the endpoint answers 503.
    "FEEDBACK_TOKEN": "",
    "FEEDBACK_TOKEN_FILE": "",
    # How often (seconds) each worker's watcher thread reads the production pointer, with or
    # without traffic; 0 = on every request instead, no thread (tests and debugging only).
    "MODEL_RELOAD_SECONDS": 5.0,
    # Rows per scoring request, and bytes per request body, per route (413 above it).
    # DESIGN promises batches of 1,000 applicants: ~0.5 MB compact for typical rows, 732 KB
    # compact and 990 KB pretty-printed at the largest valid values, so 1,000 KiB holds the
    # largest batch and no more. A deployment that only scores small batches lowers both
    # (and NGINX's limit with them): the body limit bounds what one request may hold in
    # NGINX's and a worker's memory. Feedback is one small object; every other body (the
    # HTML form) has MAX_CONTENT_LENGTH. NGINX's client_max_body_size per location
    # (nginx/credit-risk.conf.template) holds the same numbers.
    "MAX_BATCH_SIZE": 1000,
    "MAX_PREDICT_BYTES": 1000 * 1024,
    "MAX_FEEDBACK_BYTES": 4 * 1024,
    "MAX_CONTENT_LENGTH": 16 * 1024,
    # Drift in /metrics: PSI over the last DRIFT_WINDOW rows this worker scored,
    # recomputed every DRIFT_EVERY rows once DRIFT_MIN_ROWS rows were seen, on the worker's
    # drift thread. A recompute over 1,000 rows costs ~4 ms of the worker's CPU (and GIL;
    # training.drift.window_psi), so it runs at most once per DRIFT_MIN_SECONDS: under a
    # stream of 1,000-row batches, once per batch was a fifth of the worker's busy time,
    # for a gauge scraped every few seconds. The newest window is always computed in the end.
    "DRIFT_WINDOW": 1000,
    "DRIFT_EVERY": 250,
    "DRIFT_MIN_ROWS": 100,
    "DRIFT_MIN_SECONDS": 1.0,
    # Answer plain POST /api/v1/predict requests before Flask (app/predict_fast_path.py);
    # off: Flask answers every request (the same answers, at ~3 x the one-row cost).
    "PREDICT_FAST_PATH": True,
    # Scoring requests with a body of at least this many bytes (~120 applicants) are
    # answered one at a time in each worker, the others waiting their turn instead of
    # interleaving on the GIL (app/scoring_gate.py); 0: never. Smaller ones never wait.
    "LARGE_REQUEST_BYTES": 64 * 1024,
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
    settings["FEEDBACK_TOKEN"] = feedback_token(settings)
    return settings


# RFC 6750 token characters; at least 16 of them (`secrets.token_urlsafe(32)` makes 43).
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")


def feedback_token(settings: Mapping[str, Any]) -> str:
    """The feedback token from FEEDBACK_TOKEN_FILE or FEEDBACK_TOKEN; "" when neither is set
    (feedback disabled); SettingsError when both are set, or the file or token is unusable."""
    file_name = str(settings.get("FEEDBACK_TOKEN_FILE") or "")
    token = str(settings.get("FEEDBACK_TOKEN") or "")
    if file_name and token:
        raise SettingsError("set FEEDBACK_TOKEN_FILE or FEEDBACK_TOKEN, not both")
    if file_name:
        try:
            token = Path(file_name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise SettingsError(f"FEEDBACK_TOKEN_FILE={file_name!r}: {error}") from None
    if token and TOKEN_PATTERN.fullmatch(token) is None:
        raise SettingsError("the feedback token must be at least 16 characters of A-Z a-z "
                            "0-9 . _ ~ + / = - (e.g. python -c 'import secrets; "
                            "print(secrets.token_urlsafe(32))')")
    return token
