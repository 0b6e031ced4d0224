"""The service follows the registry's production pointer, and refuses a bad model."""

from __future__ import annotations

import errno
import json
import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.model_holder import ModelHolder
from tests.api.conftest import metric_value
from tests.helpers import wait_until
from training.artifact import CARD_FILE, MODEL_FILE, atomic_write, write_card
from training.model_check import CardError
from training.registry import POINTER_FILE, Registry


def serving_version(client: FlaskClient, applicant: dict[str, Any]) -> str:
    """The model version that answers a prediction right now."""
    response = client.post("/api/v1/predict", json=applicant)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["model_version"]


def register_tampered(registry: Registry, artifact_dir: Path, version: str) -> None:
    """Register a good copy, then corrupt its model bytes inside the (read-only) registry."""
    registry.register(artifact_dir, version=version)
    model_file = registry.root / version / MODEL_FILE
    model_file.chmod(0o644)
    with open(model_file, "ab") as handle:
        handle.write(b"tampered")
    model_file.chmod(0o444)


def point_production_at(registry: Registry, version: str) -> None:
    """Switch the pointer directly, as a careless operator would (promote() refuses it)."""
    atomic_write(registry.root / POINTER_FILE, version + "\n")


def test_newly_promoted_model_is_served_without_a_restart(
        client: FlaskClient, promoted_registry: Path, trained_model_dir: Path,
        applicant: dict[str, Any]) -> None:
    registry = Registry(promoted_registry)
    first = serving_version(client, applicant)
    registry.promote(registry.register(trained_model_dir, version="challenger-2"), reason="test")
    assert serving_version(client, applicant) == "challenger-2"
    assert client.get("/readyz").get_json()["model_version"] == "challenger-2"
    assert metric_value(client, 'credit_model_info{version="challenger-2"}') == 1.0
    assert metric_value(client, f'credit_model_info{{version="{first}"}}') == 0.0


def test_rollback_is_followed_as_well(client: FlaskClient, promoted_registry: Path,
                                      trained_model_dir: Path, applicant: dict[str, Any]) -> None:
    registry = Registry(promoted_registry)
    first = serving_version(client, applicant)
    registry.promote(registry.register(trained_model_dir, version="challenger-2"), reason="test")
    assert serving_version(client, applicant) == "challenger-2"
    registry.rollback(reason="test")
    assert serving_version(client, applicant) == first


def test_tampered_model_is_refused_and_the_previous_one_keeps_serving(
        client: FlaskClient, promoted_registry: Path, artifact_copy: Path,
        applicant: dict[str, Any]) -> None:
    registry = Registry(promoted_registry)
    first = serving_version(client, applicant)
    register_tampered(registry, artifact_copy, "tampered-1")
    point_production_at(registry, "tampered-1")
    assert serving_version(client, applicant) == first
    assert client.get("/readyz").get_json()["model_version"] == first
    assert metric_value(client, "credit_model_reload_failures_total") == 1.0
    # A refused version is not retried on every check: still one failure.
    serving_version(client, applicant)
    assert metric_value(client, "credit_model_reload_failures_total") == 1.0


def test_model_that_fails_to_load_is_refused(client: FlaskClient, promoted_registry: Path,
                                             applicant: dict[str, Any]) -> None:
    first = serving_version(client, applicant)
    point_production_at(Registry(promoted_registry), "does-not-exist")
    assert serving_version(client, applicant) == first
    assert metric_value(client, "credit_model_reload_failures_total") == 1.0


def test_good_model_promoted_after_a_refused_one_is_served(
        client: FlaskClient, promoted_registry: Path, artifact_copy: Path,
        trained_model_dir: Path, applicant: dict[str, Any]) -> None:
    registry = Registry(promoted_registry)
    register_tampered(registry, artifact_copy, "tampered-1")
    point_production_at(registry, "tampered-1")
    serving_version(client, applicant)
    registry.promote(registry.register(trained_model_dir, version="fixed-2"), reason="test")
    assert serving_version(client, applicant) == "fixed-2"


def test_service_without_a_model_is_not_ready_until_one_is_promoted(
        make_app: Any, tmp_path: Path, trained_model_dir: Path,
        applicant: dict[str, Any]) -> None:
    registry = Registry(tmp_path / "fresh-registry")
    client = make_app(MODEL_REGISTRY=str(registry.root)).test_client()
    assert client.get("/readyz").status_code == 503
    assert client.get("/readyz").get_json()["error"] == "unavailable"
    assert client.get("/healthz").status_code == 200, "alive even without a model"
    assert client.post("/api/v1/predict", json=applicant).status_code == 503
    assert client.get("/api/v1/model").status_code == 503
    registry.promote(registry.register(trained_model_dir, version="first-1"), reason="test")
    ready = {"status": "ready", "model_version": "first-1", "canary": None}
    assert client.get("/readyz").get_json() == ready
    assert serving_version(client, applicant) == "first-1"


def test_service_starting_on_a_tampered_production_model_is_not_ready(
        make_app: Any, tmp_path: Path, artifact_copy: Path) -> None:
    registry = Registry(tmp_path / "bad-registry")
    register_tampered(registry, artifact_copy, "tampered-1")
    point_production_at(registry, "tampered-1")
    client = make_app(MODEL_REGISTRY=str(registry.root)).test_client()
    assert client.get("/readyz").status_code == 503
    assert metric_value(client, "credit_model_reload_failures_total") == 1.0


def test_watcher_follows_the_pointer_without_any_request(
        promoted_registry: Path, trained_model_dir: Path) -> None:
    registry = Registry(promoted_registry)
    holder = ModelHolder(registry, reload_seconds=0.05)
    holder.refresh()
    assert holder.start_watcher()
    try:
        registry.promote(registry.register(trained_model_dir, version="next-2"), reason="test")
        # No get(), no request: the watcher alone must swap.
        wait_until(lambda: holder.model is not None and holder.model.version == "next-2",
                   timeout=30, what="the watcher's swap to next-2", interval=0.02)
    finally:
        holder.stop_watcher()


def watcher_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """The live model-watcher threads of this process that were not in `before` (the app
    fixtures of other tests in the same process may have left theirs)."""
    return [thread for thread in threading.enumerate()
            if thread.name == "model-watcher" and thread not in before]


def test_one_daemon_watcher_per_process_and_none_when_following_on_requests(
        promoted_registry: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.model_holder")
    before = set(watcher_threads(set()))
    assert not ModelHolder(Registry(promoted_registry), reload_seconds=0).start_watcher()
    assert watcher_threads(before) == []
    holder = ModelHolder(Registry(promoted_registry), reload_seconds=3600)
    try:
        assert holder.start_watcher() and not holder.start_watcher()
        [watcher] = watcher_threads(before)
        assert watcher.daemon  # never holds a worker's exit back
        # This test's threads only: a watcher an earlier test stopped may still be logging
        # the swap it was finishing when the stop came.
        ours = {threading.get_ident(), watcher.ident}
        assert [record.getMessage() for record in caplog.records
                if record.name == "app.model_holder" and record.thread in ours] == [
            "watching the production pointer every 3600s"]
    finally:
        holder.stop_watcher()
    watcher.join(timeout=60)  # the stop wakes it at once; 60 s only guards against a hang
    assert not watcher.is_alive()
    # Stopped, it may start again (a test, or a process that stopped it on purpose).
    try:
        assert holder.start_watcher() and len(watcher_threads(before)) == 1
    finally:
        holder.stop_watcher()


def test_a_request_never_waits_for_a_load(promoted_registry: Path,
                                          trained_model_dir: Path) -> None:
    registry = Registry(promoted_registry)
    holder = ModelHolder(registry, reload_seconds=3600)
    holder.refresh()
    first = holder.get()
    assert first is not None
    loads: list[str] = []
    real_load = registry.load_verified
    registry.load_verified = lambda name: loads.append(name) or real_load(name)  # type: ignore
    registry.promote(registry.register(trained_model_dir, version="next-2"), reason="test")
    loads.clear()
    try:
        assert holder.get() is first and loads == [], "get() loaded on the request path"
        assert holder.refresh() and holder.get().version == "next-2"  # the watcher's job
    finally:
        holder.stop_watcher()


class FlakySource:
    """A registry whose loads fail with EMFILE a given number of times."""

    def __init__(self, registry: Registry, failures: int) -> None:
        self.registry, self.failures, self.attempts = registry, failures, 0

    def production_version(self) -> str | None:
        return self.registry.production_version()

    def fingerprint(self, version: str) -> Any:
        return self.registry.fingerprint(version)

    def load_verified(self, version: str) -> Any:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise OSError(errno.EMFILE, "Too many open files")
        return self.registry.load_verified(version)


def test_transient_failure_is_retried_with_backoff(
        promoted_registry: Path, caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    source = FlakySource(Registry(promoted_registry), failures=2)
    failures: list[tuple[str, Exception]] = []
    holder = ModelHolder(source, reload_seconds=1, clock=lambda: now[0],
                         on_failure=lambda name, error: failures.append((name, error)))
    version = source.registry.production_version()
    assert not holder.refresh() and source.attempts == 1
    assert not holder.refresh() and source.attempts == 1, "retried before the backoff"
    now[0] += 1
    assert not holder.refresh() and source.attempts == 2
    now[0] += 1
    assert not holder.refresh() and source.attempts == 2, "the backoff doubles"
    now[0] += 1
    assert holder.refresh() and holder.model is not None and source.attempts == 3
    # Each failed attempt is reported with the version, the error and when the next comes.
    assert [(name, error.errno) for name, error in failures] == [(version, errno.EMFILE)] * 2
    said = [record.getMessage() for record in caplog.records
            if record.name == "app.model_holder" and record.levelname == "ERROR"]
    assert said == [f"could not load (attempt {n}, next in {delay}s) model version {version} "
                    f"(still serving nothing): [Errno 24] Too many open files"
                    for n, delay in ((1, 1), (2, 2))]


class SurprisingSource(FlakySource):
    """A registry whose first fingerprint raises what no one expects (say, a store's own
    error type)."""

    def fingerprint(self, version: str) -> Any:
        self.attempts += 1
        if self.attempts == 1:
            raise RuntimeError("surprise")
        return self.registry.fingerprint(version)


def test_a_version_that_cannot_be_fingerprinted_is_tried_again_later(
        promoted_registry: Path, caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    source = SurprisingSource(Registry(promoted_registry), failures=0)
    holder = ModelHolder(source, reload_seconds=0, clock=lambda: now[0])
    assert not holder.refresh() and holder.model is None
    version = source.registry.production_version()
    assert [record.getMessage() for record in caplog.records if record.levelname == "ERROR"] \
        == [f"could not load (attempt 1, next in 1s) model version {version} "
            "(still serving nothing): surprise"]
    now[0] += 1
    assert holder.refresh() and holder.model is not None


def test_the_watcher_outlives_a_failed_check_and_says_so(
        promoted_registry: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def on_load(model: Any, previous: Any) -> None:
        calls.append(model.version)
        if len(calls) == 1:
            raise RuntimeError("surprise")

    registry = Registry(promoted_registry)
    holder = ModelHolder(registry, reload_seconds=0.05, on_load=on_load)
    assert holder.start_watcher()
    try:
        wait_until(lambda: holder.model is not None, timeout=30,
                   what="the watcher's first load", interval=0.02)
        registry.promote(registry.register(promoted_registry / registry.production_version(),
                                           version="next-2"), reason="test")
        wait_until(lambda: calls[-1:] == ["next-2"], timeout=30,
                   what="the watcher's next swap", interval=0.02)
    finally:
        holder.stop_watcher()
    [failed] = [record for record in caplog.records if record.levelname == "ERROR"]
    assert failed.getMessage() == "the model watcher failed a check; still watching"
    assert failed.exc_info is not None and str(failed.exc_info[1]) == "surprise"


def test_refused_version_is_tried_again_only_once_its_files_change(
        client: FlaskClient, promoted_registry: Path, trained_model_dir: Path,
        artifact_copy: Path, applicant: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(promoted_registry)
    first = serving_version(client, applicant)
    register_tampered(registry, artifact_copy, "half-copied")
    point_production_at(registry, "half-copied")
    for _ in range(3):
        assert serving_version(client, applicant) == first
    assert metric_value(client, "credit_model_reload_failures_total") == 1.0
    [said] = [record.getMessage() for record in caplog.records
              if record.name == "app.model_holder" and record.levelname == "ERROR"]
    assert said.startswith(f"refused model version half-copied (still serving {first}): "
                           f"{registry.root / 'half-copied' / MODEL_FILE}: sha256 "), said
    # The copy completes: the right bytes replace the partial ones.
    model_file = registry.root / "half-copied" / MODEL_FILE
    model_file.chmod(0o644)
    shutil.copyfile(trained_model_dir / MODEL_FILE, model_file)
    assert serving_version(client, applicant) == "half-copied"


def test_copy_under_another_name_is_loaded_once_and_served_under_that_name(
        promoted_registry: Path) -> None:
    registry = Registry(promoted_registry)
    shutil.copytree(registry.root / registry.production_version(), registry.root / "copy-2")
    point_production_at(registry, "copy-2")
    loads: list[str] = []
    holder = ModelHolder(registry, reload_seconds=0,
                         on_load=lambda model, previous: loads.append(model.version))
    for _ in range(3):
        holder.get()
    assert loads == ["copy-2"]


def test_prediction_names_its_model_version_in_header_and_body(
        client: FlaskClient, applicant: dict[str, Any]) -> None:
    response = client.post("/api/v1/predict", json=applicant)
    assert response.status_code == 200
    assert response.headers["X-Model-Version"] == response.get_json()["model_version"]
    form = client.post("/", data={k: str(v) for k, v in applicant.items()})
    assert form.status_code == 200
    assert form.headers["X-Model-Version"] == response.get_json()["model_version"]


@pytest.mark.parametrize("pointer", [b"\xff\xfe\x00garbage\n", b"../../etc/passwd\n"])
def test_unreadable_pointer_keeps_the_old_model(
        client: FlaskClient, promoted_registry: Path, applicant: dict[str, Any],
        pointer: bytes) -> None:
    first = serving_version(client, applicant)
    (promoted_registry / POINTER_FILE).write_bytes(pointer)
    assert serving_version(client, applicant) == first
    assert client.get("/readyz").get_json()["model_version"] == first


def test_worker_starting_on_an_unreadable_pointer_is_unready_not_dead(
        make_app: Any, promoted_registry: Path) -> None:
    (promoted_registry / POINTER_FILE).write_bytes(b"\xff\n")
    client = make_app().test_client()
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_version_whose_card_lacks_a_reference_is_refused(
        client: FlaskClient, promoted_registry: Path, artifact_copy: Path,
        applicant: dict[str, Any]) -> None:
    registry = Registry(promoted_registry)
    first = serving_version(client, applicant)
    card = json.loads((artifact_copy / CARD_FILE).read_text())
    del card["reference"]
    write_card(artifact_copy, card)
    registry.register(artifact_copy, version="no-reference")
    with pytest.raises(CardError, match="reference"):
        registry.promote("no-reference")
    point_production_at(registry, "no-reference")  # what promote() refused, done by hand
    assert serving_version(client, applicant) == first
    assert metric_value(client, "credit_model_reload_failures_total") == 1.0


def test_model_is_loaded_once_and_shared_by_requests(promoted_registry: Path) -> None:
    holder = ModelHolder(Registry(promoted_registry), reload_seconds=0)
    first = holder.get()
    assert all(holder.get() is first for _ in range(5))


def test_no_request_fails_while_models_are_swapped(
        make_app: Any, promoted_registry: Path, trained_model_dir: Path,
        applicant: dict[str, Any]) -> None:
    app = make_app()
    registry = Registry(promoted_registry)
    versions = [registry.production_version()]
    versions.append(registry.register(trained_model_dir, version="swap-2"))
    stop = threading.Event()
    statuses: list[int] = []
    seen: set[str] = set()

    def client_loop() -> None:
        client = app.test_client()
        while not stop.is_set():
            response = client.post("/api/v1/predict", json={"instances": [applicant] * 3})
            statuses.append(response.status_code)
            if response.status_code == 200:
                seen.add(response.get_json()["model_version"])

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for swap in range(6):
            target = versions[(swap + 1) % 2]
            seen.clear()
            registry.promote(target, reason="swap test")
            # Let the clients run until one of them was answered by the new version (the
            # bound only keeps a broken build from hanging; it is not a timing check).
            for _ in range(12_000):
                if target in seen:
                    break
                stop.wait(0.01)
            assert target in seen, f"{target} was never served"
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert statuses and set(statuses) == {200}


def test_an_unreadable_pointer_is_logged_once_per_distinct_error(
        promoted_registry: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(promoted_registry)
    holder = ModelHolder(registry, reload_seconds=0, pointer="test pointer")
    serving = registry.production_version()
    holder.refresh()
    pointer = promoted_registry / POINTER_FILE
    pointer.write_bytes(b"../escape\n")
    for _ in range(3):  # one message however often the watcher looks
        holder.refresh()
    pointer.write_bytes(b"\xff\n")  # another error: said again
    holder.refresh()
    holder.refresh()
    said = [record.getMessage() for record in caplog.records
            if record.name == "app.model_holder" and record.levelname == "ERROR"]
    assert len(said) == 2, said
    assert all(message.startswith(f"cannot read the test pointer (still serving {serving}): ")
               for message in said), said
    errors = [message.rsplit("): ", 1)[1] for message in said]
    assert errors[0] != errors[1] and all(": " in error for error in errors)
    assert errors[0].split(": ", 1)[0].endswith("Error"), errors  # the exception's type


def test_an_unreadable_pointer_before_any_model_says_nothing_serves(
        promoted_registry: Path, caplog: pytest.LogCaptureFixture) -> None:
    (promoted_registry / POINTER_FILE).write_bytes(b"../escape\n")
    ModelHolder(Registry(promoted_registry), reload_seconds=0).refresh()
    [said] = [record.getMessage() for record in caplog.records
              if record.name == "app.model_holder" and record.levelname == "ERROR"]
    assert said.startswith("cannot read the production pointer (still serving nothing): ")


def test_get_starts_the_watcher_of_a_process_that_has_none(promoted_registry: Path) -> None:
    """A server without Gunicorn's hook: the first get() starts the watcher, whatever the
    period (half a second too: only 0 means following on requests)."""
    before = set(watcher_threads(set()))
    holder = ModelHolder(Registry(promoted_registry), reload_seconds=0.5)
    holder.refresh()
    try:
        assert holder.get() is holder.model and len(watcher_threads(before)) == 1
    finally:
        holder.stop_watcher()


def test_following_on_requests_never_waits_for_a_check_in_progress(
        promoted_registry: Path) -> None:
    holder = ModelHolder(Registry(promoted_registry), reload_seconds=0)
    holder.refresh()
    serving = holder.model
    # The lock is released before the pool waits for its thread: a waiting get() ends too.
    with ThreadPoolExecutor(max_workers=1) as pool, holder._check_lock:  # a check under way
        request = pool.submit(holder.get)
        try:
            answered = request.result(timeout=30)  # generous: it should not wait at all
        except FutureTimeout:
            answered = None
    assert serving is not None and answered is serving
