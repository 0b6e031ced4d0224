"""Settings precedence, the Gunicorn config file, and seeding a registry from the image."""

from __future__ import annotations

import gc
import os
import runpy
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.balanced_worker import DEFAULT_PAUSE_MS, PAUSE_VARIABLE, pause_seconds
from app.config import DEFAULTS, SettingsError, load_settings
from app.seed import SEED_REASON, seed_registry
from tests.conftest import ROOT
from training.registry import Registry

GUNICORN_CONF = ROOT / "app" / "gunicorn.conf.py"


def test_settings_come_from_defaults_then_environment_then_overrides() -> None:
    environ = {"MAX_BATCH_SIZE": "7", "MODEL_RELOAD_SECONDS": "2.5", "MODEL_REGISTRY": "/r"}
    settings = load_settings(environ, overrides={"MODEL_REGISTRY": "/override"})
    assert settings["MAX_BATCH_SIZE"] == 7
    assert settings["MODEL_RELOAD_SECONDS"] == 2.5
    assert settings["MODEL_REGISTRY"] == "/override"
    assert settings["FEEDBACK_LOG"] == DEFAULTS["FEEDBACK_LOG"]


def test_settings_refuse_a_malformed_environment_value() -> None:
    with pytest.raises(SettingsError, match="MAX_BATCH_SIZE"):
        load_settings({"MAX_BATCH_SIZE": "many"})


def test_app_reads_the_environment(monkeypatch: pytest.MonkeyPatch, promoted_registry: Path,
                                   tmp_path: Path) -> None:
    monkeypatch.setenv("MODEL_REGISTRY", str(promoted_registry))
    monkeypatch.setenv("MAX_BATCH_SIZE", "3")
    monkeypatch.setenv("PREDICTION_LOG", str(tmp_path / "p.jsonl"))
    app = create_app({"TESTING": True})
    assert app.config["MAX_BATCH_SIZE"] == 3
    assert app.test_client().get("/readyz").status_code == 200


def load_gunicorn_conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                       **environ: str) -> dict[str, Any]:
    """The settings module as Gunicorn evaluates it, under the given environment."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    for name in ("GUNICORN_BIND", "GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_TIMEOUT",
                 "FORWARDED_ALLOW_IPS", "MODEL_SEED_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_conf_defaults_are_safe(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    assert conf["bind"] == "127.0.0.1:8000"
    assert conf["forwarded_allow_ips"] == "127.0.0.1"
    assert conf["accesslog"] == "-" and conf["errorlog"] == "-"
    assert conf["max_requests"] > 0 and 0 < conf["max_requests_jitter"] < conf["max_requests"]
    assert conf["graceful_timeout"] > 0 and conf["timeout"] > 0
    assert conf["worker_class"] == "app.balanced_worker.BalancedThreadWorker"


def test_gunicorn_conf_reads_the_environment(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    conf = load_gunicorn_conf(monkeypatch, tmp_path, GUNICORN_BIND="0.0.0.0:9000",
                              GUNICORN_WORKERS="5", GUNICORN_THREADS="3",
                              GUNICORN_TIMEOUT="12", FORWARDED_ALLOW_IPS="10.0.0.2")
    assert (conf["bind"], conf["workers"], conf["threads"], conf["timeout"]) == \
        ("0.0.0.0:9000", 5, 3, 12)
    assert conf["forwarded_allow_ips"] == "10.0.0.2"


def test_gunicorn_conf_settings_are_known_to_gunicorn(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    from gunicorn.config import Config
    known = set(Config().settings)
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    settings = {name for name, value in conf.items()
                if not name.startswith("_") and not callable(value)
                and not hasattr(value, "__file__")}
    assert settings <= known, settings - known
    hooks = {name for name, value in conf.items() if callable(value) and name in known}
    assert {"on_starting", "post_worker_init", "worker_exit", "child_exit", "on_exit"} <= hooks


def test_a_new_worker_starts_its_watcher_and_freezes_its_heap(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import app as app_package
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    worker_app = object()
    watched: list[object] = []
    frozen: list[bool] = []
    monkeypatch.setitem(sys.modules, "app.wsgi", types.SimpleNamespace(app=worker_app))
    monkeypatch.setattr(app_package, "start_watcher", watched.append)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    conf["post_worker_init"](None)
    assert watched == [worker_app] and frozen == [True]


def test_a_worker_of_another_app_builds_no_service_and_still_freezes_its_heap(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import app as app_package
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    watched: list[object] = []
    frozen: list[bool] = []
    monkeypatch.delitem(sys.modules, "app.wsgi", raising=False)
    monkeypatch.setattr(app_package, "start_watcher", watched.append)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    conf["post_worker_init"](None)
    assert watched == [] and frozen == [True]
    assert "app.wsgi" not in sys.modules  # the service was not imported, so not built


class _Server:
    """The part of Gunicorn's arbiter that the hooks use."""

    class log:  # noqa: N801 - mimics the attribute
        messages: list[str] = []

        @classmethod
        def info(cls, message: str, *args: Any) -> None:
            cls.messages.append(message % args)

        exception = info


def test_gunicorn_start_hook_clears_metrics_and_seeds_an_empty_registry(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, trained_model_dir: Path) -> None:
    registry = tmp_path / "registry"
    conf = load_gunicorn_conf(monkeypatch, tmp_path, MODEL_SEED_DIR=str(trained_model_dir),
                              MODEL_REGISTRY=str(registry))
    stale = tmp_path / "prometheus" / "counter_123.db"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    conf["on_starting"](_Server())
    assert not stale.exists() and stale.parent.is_dir()
    production = Registry(registry).production_version()
    assert production is not None
    assert Registry(registry).history()[-1]["reason"] == SEED_REASON


def test_seed_never_replaces_an_existing_production_model(promoted_registry: Path,
                                                          trained_model_dir: Path) -> None:
    registry = Registry(promoted_registry)
    before = registry.production_version()
    assert seed_registry(promoted_registry, trained_model_dir) is None
    assert registry.production_version() == before
    assert len(registry.history()) == 1


def test_seed_does_nothing_without_a_seed_dir(tmp_path: Path) -> None:
    assert seed_registry(tmp_path / "registry", None) is None
    assert not (tmp_path / "registry").exists()


def test_worker_exit_ends_the_worker_at_once_with_gunicorns_status(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import logging
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    statuses: list[int] = []
    monkeypatch.setattr(os, "_exit", statuses.append)
    monkeypatch.setattr(logging, "shutdown", lambda: None)  # keep pytest's handlers
    for status in (None, 0, 3):  # sys.exit(), a normal end, a boot error (stops the master)
        try:
            raise SystemExit(status)
        except SystemExit:
            conf["worker_exit"](_Server, None)
    conf["worker_exit"](_Server, None)  # not on Gunicorn's exit path: Python ends normally
    assert statuses == [0, 0, 3]


@pytest.mark.parametrize("raw, seconds", [(None, DEFAULT_PAUSE_MS / 1000), ("", 0.02),
                                          ("1", 0.001), ("500", 0.5)])
def test_the_pause_comes_from_the_environment(raw: str | None, seconds: float) -> None:
    environ = {} if raw is None else {PAUSE_VARIABLE: raw}
    assert pause_seconds(environ) == seconds


@pytest.mark.parametrize("raw", ["0", "-20", "1.5", "20ms"])
def test_a_bad_pause_is_refused_with_its_name_and_value(raw: str) -> None:
    with pytest.raises(ValueError, match=f"{PAUSE_VARIABLE} .* got '{raw}'"):
        pause_seconds({PAUSE_VARIABLE: raw})
