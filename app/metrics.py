"""Prometheus metrics of the service, single-process or across Gunicorn workers.

Under Gunicorn, PROMETHEUS_MULTIPROC_DIR is set by app/gunicorn.conf.py before any worker
imports prometheus_client; every worker then writes its samples to files there and
/metrics merges them (the documented multiprocess mode). Without it (tests, the dev
server) each app gets its own CollectorRegistry, so that several apps in one process do
not collide.

Label values never come from clients unchecked (`method_label`). Files of workers that
exited are folded away by `app/metrics_files.py`, so the directory stays bounded.
"""

from __future__ import annotations

import os
import time
from collections import Counter as Tally
from collections.abc import Hashable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np
from flask import Flask, Response, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest, multiprocess, values)

from app.metrics_files import MIN_FREE_BYTES, free_bytes, merge_lock
from training.fast_scorer import SCORING_PATHS

# Bands of probability_bad counted per model version and arm: the arms' prediction
# distributions side by side, ten counter increments per request whatever its size.
PROBABILITY_BANDS = [f"{low / 10:.1f}-{(low + 1) / 10:.1f}" for low in range(10)]
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# The label values of `method`: anything else a client sends is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# Labelled series the request path updates, remembered per label values: prometheus_client's
# labels() checks and locks on every call, six times per prediction. The label values are
# bounded (routes x methods x statuses, versions x arms x bands); past this many, the least
# recently used is looked up again.
SERIES_CACHE_SIZE = 1024

Counted = TypeVar("Counted", bound=Hashable)
# From this many rows a request's bands are counted with numpy rather than a Python loop.
VECTOR_BAND_ROWS = 8


def multiprocess_mode() -> bool:
    """Whether prometheus_client was imported with PROMETHEUS_MULTIPROC_DIR set."""
    return values.ValueClass is not values.MutexValue


def method_label(method: str) -> str:
    """The `method` label of a request: a known HTTP method, or "other"."""
    return method if method in KNOWN_METHODS else "other"


def _tally(values: Sequence[Counted]) -> Iterable[tuple[Counted, int]]:
    """Each distinct value and how often it occurs: one metric update per value, not row."""
    if len(values) == 1:  # a one-row request: building a Counter cost more than its update
        return ((values[0], 1),)
    return Tally(values).items()


def band_counts(probabilities: Sequence[float]) -> Iterable[tuple[int, int]]:
    """Each probability band (0-9, tenths; 1.0 in the last) that holds rows, and how many."""
    if len(probabilities) < VECTOR_BAND_ROWS:  # a Python loop: numpy's set-up cost more
        return _tally([min(int(p * 10), 9) for p in probabilities])
    # The same arithmetic on the array (astype truncates as int() does): one pass in C.
    counts = np.bincount(np.minimum((np.asarray(probabilities) * 10).astype(np.intp), 9))
    return ((band, int(counts[band])) for band in np.flatnonzero(counts).tolist())


def metrics_directory() -> str | None:
    """The multiprocess directory, when prometheus_client runs in multiprocess mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") if multiprocess_mode() else None


class Metrics:
    """The service's metric objects and their exposition."""

    def __init__(self, min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self.multiprocess = multiprocess_mode()
        self.min_free_bytes = min_free_bytes
        # In multiprocess mode samples live in files, not in a registry: registering them
        # as well would export them twice.
        self.registry: CollectorRegistry | None = None if self.multiprocess \
            else CollectorRegistry()
        registry = self.registry
        self.requests = Counter("credit_http_requests_total", "HTTP requests answered.",
                                ["route", "method", "status"], registry=registry)
        self.latency = Histogram("credit_http_request_duration_seconds",
                                 "Time to answer an HTTP request.",
                                 ["route", "method", "status"], buckets=LATENCY_BUCKETS,
                                 registry=registry)
        self.predictions = Counter("credit_predictions_total",
                                   "Scored rows by decision.", ["decision"], registry=registry)
        self.rows_scored = Counter("credit_rows_scored_total", "Rows scored by the model.",
                                   registry=registry)
        self.model_info = Gauge("credit_model_info", "1 for the model version a live worker "
                                "serves, 0 for one it served before.", ["version"],
                                multiprocess_mode="livemax", registry=registry)
        self.scoring_path = Gauge("credit_model_scoring_path", "1 for the path that scores "
                                  "requests in a live worker: 'fast' (a scorer derived from "
                                  "the Pipeline and verified against it) or 'pipeline'.",
                                  ["path"], multiprocess_mode="livemax", registry=registry)
        self.predict_fast_path = Gauge("credit_predict_fast_path", "1 when a live worker "
                                       "answers plain POST /api/v1/predict requests before "
                                       "Flask (app/predict_fast_path.py), 0 when Flask does.",
                                       multiprocess_mode="livemax", registry=registry)
        self.model_reloads = Counter("credit_model_loads_total",
                                     "Model versions loaded and swapped in.", registry=registry)
        self.model_reload_failures = Counter(
            "credit_model_reload_failures_total",
            "Model versions refused because they failed to load or to verify.",
            registry=registry)
        self.prediction_log_failures = Counter(
            "credit_prediction_log_write_failures_total",
            "Prediction-log writes that failed (those predictions were answered 503).",
            registry=registry)
        self.feedback_log_failures = Counter(
            "credit_feedback_log_write_failures_total", "Feedback-log writes that failed.",
            registry=registry)
        self.arm_rows = Counter("credit_arm_rows_total", "Rows scored per model version and "
                                "arm (production, canary, or shadow: scored, not answered).",
                                ["version", "arm"], registry=registry)
        self.arm_scoring = Histogram("credit_arm_scoring_seconds", "Time a model version took "
                                     "to score one request's rows, per arm.", ["version", "arm"],
                                     buckets=LATENCY_BUCKETS, registry=registry)
        self.arm_probabilities = Counter(
            "credit_arm_probability_rows_total", "Rows per band of probability_bad, per model "
            "version and arm (the arms' prediction distributions).",
            ["version", "arm", "band"], registry=registry)
        self.canary_failures = Counter("credit_canary_failures_total", "Canary scorings that "
                                       "failed (answered by production instead).", ["version"],
                                       registry=registry)
        self.canary_tripped = Gauge("credit_canary_tripped", "1 when a live worker stopped "
                                    "using a canary version that broke its limits.",
                                    ["version"], multiprocess_mode="livemax", registry=registry)
        self.feature_drift = Gauge("credit_feature_drift_psi", "PSI of each input over the "
                                   "recent rows of a worker against the production model's "
                                   "training reference (max over live workers).",
                                   ["feature"], multiprocess_mode="livemax", registry=registry)
        self.drift_window_rows = Gauge("credit_drift_window_rows",
                                       "Rows in the drift window (max over live workers).",
                                       multiprocess_mode="livemax", registry=registry)
        self._request_series = lru_cache(SERIES_CACHE_SIZE)(self._new_request_series)
        self._arm_series = lru_cache(SERIES_CACHE_SIZE)(self._new_arm_series)
        self._band_series = lru_cache(SERIES_CACHE_SIZE)(self.arm_probabilities.labels)
        self._decision_series = lru_cache(SERIES_CACHE_SIZE)(self.predictions.labels)

    def _new_request_series(self, route: str, method: str, status: str) -> tuple[Any, Any]:
        return (self.requests.labels(route, method, status),
                self.latency.labels(route, method, status))

    def _new_arm_series(self, version: str, arm: str) -> tuple[Any, Any]:
        return self.arm_rows.labels(version, arm), self.arm_scoring.labels(version, arm)

    def model_loaded(self, version: str, previous: str | None, scoring_path: str) -> None:
        """Record that `version` replaced `previous` in this worker, scored by `scoring_path`."""
        for path in SCORING_PATHS:
            self.scoring_path.labels(path=path).set(1 if path == scoring_path else 0)
        if previous and previous != version:
            self.model_info.labels(version=previous).set(0)
        self.model_info.labels(version=version).set(1)
        self.model_reloads.inc()

    def rows_decided(self, decisions: Sequence[str]) -> None:
        """Count one request's scored rows, in all and per decision."""
        for decision, count in _tally(decisions):
            self._decision_series(decision).inc(count)
        self.rows_scored.inc(len(decisions))

    def arm_scored(self, version: str, arm: str, seconds: float,
                   probabilities: Sequence[float]) -> None:
        """Count one request's rows scored by `version` on `arm`, its time and bands."""
        rows, scoring = self._arm_series(version, arm)
        rows.inc(len(probabilities))
        scoring.observe(seconds)
        for band, count in band_counts(probabilities):
            self._band_series(version, arm, PROBABILITY_BANDS[band]).inc(count)

    def drift_computed(self, psi_by_feature: Mapping[str, float], rows: int) -> None:
        """Publish the PSI of every input, then the rows it was computed over."""
        for feature, value in psi_by_feature.items():
            self.feature_drift.labels(feature=feature).set(value)
        self.drift_window_rows.set(rows)

    def writable(self) -> bool:
        """Whether this worker can keep writing samples (always, outside multiprocess mode)."""
        directory = metrics_directory()
        if directory is None:
            return True
        try:
            return os.access(directory, os.W_OK) and free_bytes(directory) >= self.min_free_bytes
        except OSError:
            return False

    def exposition(self) -> Response:
        """The Prometheus text of every metric (of every worker in multiprocess mode)."""
        directory = metrics_directory()
        if directory is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)
            with merge_lock(directory, exclusive=False):
                text = generate_latest(registry)
        else:
            assert self.registry is not None
            text = generate_latest(self.registry)
        return Response(text, mimetype=None, content_type=CONTENT_TYPE_LATEST)

    def instrument(self, app: Flask) -> None:
        """Count and time every request of `app` by route template, method and status."""
        app.before_request(self.start_timer)
        app.after_request(self.record_request)

    def start_timer(self) -> None:
        """Before each request: when it started."""
        g.metrics_started = time.perf_counter()

    def record_request(self, response: Response) -> Response:
        """After each request: count it and its time under its route template."""
        started = g.pop("metrics_started", None)
        current = request._get_current_object()  # type: ignore[attr-defined] - one lookup
        url_rule = current.url_rule
        self.request_answered(url_rule.rule if url_rule is not None else "<unmatched>",
                              current.method, response.status_code,
                              None if started is None else time.perf_counter() - started)
        return response

    def request_answered(self, rule: str, method: str, status: int,
                         seconds: float | None) -> None:
        """Count one answered request of route template `rule`, and its time if known."""
        requests, latency = self._request_series(rule, method_label(method), str(status))
        requests.inc()
        if seconds is not None:
            latency.observe(seconds)
