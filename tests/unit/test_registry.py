"""The registry: immutable versions, verified loads, atomic promotion and rollback."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.helpers import failure_with_file_size_limit
from training.artifact import (CARD_FILE, MODEL_FILE, ModelIntegrityError, load_artifact,
                               sha256_of, write_card)
from training import registry as registry_module
from training.canary_release import CanaryRelease, new_release
from training.model_check import CardError
from training.registry import (HISTORY_FILE, POINTER_FILE, Registry, RegistryError,
                               new_version_name)


@pytest.fixture
def local_time_zone_kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time zone set to UTC+05:30 for the test, then restored."""
    monkeypatch.setenv("TZ", "IST-05:30")  # POSIX form: needs no zoneinfo files
    time.tzset()
    assert time.localtime(0).tm_gmtoff == 5 * 3600 + 30 * 60
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_version_name_is_the_utc_creation_time_and_eight_hex_digits_of_the_hash(
        local_time_zone_kolkata: None) -> None:
    # Created 09:34:05 in Kolkata: the name says 04:04:05Z whatever the machine's zone.
    card = {"created_at": "2026-01-02T09:34:05+05:30", "artifact_sha256": "0123456789" * 6}
    assert new_version_name(card) == "20260102T040405Z-01234567"


def test_register_copies_a_read_only_version_with_its_name_in_the_card(
        tmp_path: Path, trained_model_dir: Path) -> None:
    registry = Registry(tmp_path / "registry")
    version = registry.register(trained_model_dir)
    assert registry.versions() == [version]
    assert registry.card(version)["version"] == version
    assert oct((registry.root / version / MODEL_FILE).stat().st_mode)[-3:] == "444"
    assert registry.production_version() is None


def test_registering_the_same_bytes_again_is_a_no_op(
        tmp_path: Path, trained_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(tmp_path / "registry")
    first = registry.register(trained_model_dir)
    with caplog.at_level(logging.INFO, logger=registry_module.__name__):
        assert registry.register(trained_model_dir) == first
    assert registry.versions() == [first]
    assert f"version {first} is already registered" in caplog.messages


def test_a_malformed_version_name_is_refused_before_anything_is_copied(
        tmp_path: Path, trained_model_dir: Path) -> None:
    registry = Registry(tmp_path / "registry")
    with pytest.raises(RegistryError, match="invalid version name '../outside'"):
        registry.register(trained_model_dir, version="../outside")
    assert not (tmp_path / "outside").exists() and registry.versions() == []


def test_a_version_is_staged_hidden_in_the_registry_then_renamed_whole(
        tmp_path: Path, trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(tmp_path / "registry")
    staged: list[tuple[Path, list[str]]] = []

    def write_card_and_look(directory: Path, card: dict[str, object]) -> None:
        write_card(directory, card)
        staged.append((directory, registry.versions()))

    monkeypatch.setattr(registry_module, "write_card", write_card_and_look)
    with caplog.at_level(logging.INFO, logger=registry_module.__name__):
        version = registry.register(trained_model_dir)
    assert caplog.messages == [f"registered model version {version} in {registry.root}"]
    [(staging, listed_meanwhile)] = staged
    # On the registry's own file system, so the rename is atomic; hidden from versions()
    # while it holds a whole card but is not yet the version.
    assert staging.parent == registry.root
    assert listed_meanwhile == []
    assert not staging.exists() and registry.versions() == [version]
    assert oct(registry.root.joinpath(version).stat().st_mode)[-3:] == "755"


def test_a_registration_that_fails_midway_leaves_nothing_behind(
        tmp_path: Path, trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(tmp_path / "registry")

    def full_disk(_directory: Path, _card: dict[str, object]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry_module, "write_card", full_disk)
    with pytest.raises(OSError, match="No space left"):
        registry.register(trained_model_dir)
    assert registry.versions() == []
    assert [path.name for path in registry.root.iterdir() if path.is_dir()] == []


def test_a_version_name_is_never_reused_for_other_bytes(tmp_path: Path, trained_model_dir: Path,
                                                        artifact_copy: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register(trained_model_dir, version="v1")
    card = json.loads((artifact_copy / CARD_FILE).read_text())
    with open(artifact_copy / MODEL_FILE, "ab") as model:
        model.write(b"\0")  # other bytes, card updated to match: a different model
    write_card(artifact_copy, {**card, "artifact_sha256": sha256_of(artifact_copy / MODEL_FILE)})
    with pytest.raises(RegistryError, match="already exists"):
        registry.register(artifact_copy, version="v1")


def test_versions_are_the_visible_directories_holding_a_card(tmp_path: Path,
                                                             trained_model_dir: Path) -> None:
    registry = Registry(tmp_path / "registry")
    assert registry.versions() == []  # no registry directory yet
    registry.register(trained_model_dir, version="v1")
    staging = registry.root / ".staging-v2"  # a registration in progress, card and all
    staging.mkdir()
    (staging / CARD_FILE).write_text("{}")
    (registry.root / "no-card").mkdir()
    (registry.root / "notes").write_text("not a version")
    assert registry.versions() == ["v1"]


def test_promote_then_rollback_walks_the_production_history(tmp_path: Path,
                                                            trained_model_dir: Path) -> None:
    registry = Registry(tmp_path / "registry")
    for name in ("v1", "v2", "v3"):  # three versions (same bytes, distinct names)
        registry.register(trained_model_dir, version=name)
    for name in ("v1", "v2", "v3"):
        registry.promote(name, reason=f"test {name}")
    assert registry.production_version() == "v3"
    assert registry.rollback() == "v2"
    assert registry.rollback() == "v1"
    assert registry.production_version() == "v1"
    with pytest.raises(RegistryError, match="no earlier production version"):
        registry.rollback()
    actions = [(event["action"], event["version"]) for event in registry.history()]
    assert actions == [("promote", "v1"), ("promote", "v2"), ("promote", "v3"),
                       ("rollback", "v2"), ("rollback", "v1")]


def test_a_promotion_records_when_in_utc_what_it_replaced_and_no_reason_unless_given(
        tmp_path: Path, trained_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(tmp_path / "registry")
    for name in ("v1", "v2"):
        registry.register(trained_model_dir, version=name)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    with caplog.at_level(logging.INFO, logger="training.registry"):
        registry.promote("v1")
        registry.promote("v2", reason="better")
    first, second = registry.history()
    assert [(event["previous"], event["reason"]) for event in (first, second)] == [
        (None, ""), ("v1", "better")]
    assert caplog.messages[-2:] == ["promoted v1 to production (previous: none)",
                                    "promoted v2 to production (previous: v1)"]
    when = datetime.fromisoformat(second["time"])
    assert when.utcoffset() == timedelta(0) and before <= when <= datetime.now(timezone.utc)


def test_promoting_the_serving_version_again_leaves_rollback_its_predecessor(
        tmp_path: Path, trained_model_dir: Path) -> None:
    registry = Registry(tmp_path / "registry")
    for name in ("v1", "v2"):
        registry.register(trained_model_dir, version=name)
        registry.promote(name)
    registry.promote("v2", reason="promoted twice")
    assert registry.rollback() == "v1"


def test_rollback_with_no_production_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError,
                       match=r"^nothing to roll back: no production model yet$"):
        Registry(tmp_path / "registry").rollback()


def test_a_rollback_records_what_it_replaced_and_why_and_logs_it(
        tmp_path: Path, trained_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(tmp_path / "registry")
    for name in ("v1", "v2"):
        registry.register(trained_model_dir, version=name)
        registry.promote(name)
    with caplog.at_level(logging.INFO, logger="training.registry"):
        assert registry.rollback(reason="the canary failed") == "v1"
    last = registry.history()[-1]
    assert {field: last[field] for field in ("action", "version", "previous", "reason")} == {
        "action": "rollback", "version": "v1", "previous": "v2", "reason": "the canary failed"}
    assert "rolled production back from v2 to v1" in caplog.messages
    registry.promote("v2")
    registry.rollback()
    assert registry.history()[-1]["reason"] == ""  # no reason given: none recorded


def test_canary_events_leave_the_production_history_for_rollback_alone(
        tmp_path: Path, trained_model_dir: Path) -> None:
    registry = Registry(tmp_path / "registry")
    for name in ("v1", "v2", "v3"):
        registry.register(trained_model_dir, version=name)
    registry.promote("v1")
    registry.promote("v2")
    registry.set_canary(new_release("v3", "canary", 0.2, 0.01, 250.0, "try v3"))
    registry.clear_canary("canary-abort", reason="too slow")
    assert registry.rollback() == "v1"


def test_a_canary_release_and_its_end_are_recorded_and_logged(
        tmp_path: Path, trained_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(tmp_path / "registry")
    for name in ("v1", "v2"):
        registry.register(trained_model_dir, version=name)
    registry.promote("v1")
    with pytest.raises(RegistryError) as nothing_to_end:
        registry.clear_canary("canary-abort")
    assert str(nothing_to_end.value) == f"{registry.root}: no canary release is running"
    fields = ("action", "version", "previous", "reason")
    started = new_release("v2", "canary", 0.2, 0.01, 250.0, "try v2")
    caplog.clear()  # the versions' registration and promotion were logged too
    with caplog.at_level(logging.INFO, logger="training.registry"):
        registry.set_canary(started)
        registry.clear_canary("canary-abort", reason="too slow")
    assert registry.canary_release() is None
    assert [[event[field] for field in fields] for event in registry.history()[-2:]] == [
        ["canary", "v2", "v1", "try v2"], ["canary-abort", "v2", "v1", "too slow"]]
    assert caplog.messages == ["v2 runs as canary (canary, share 0.2)",
                               "canary-abort: canary v2 ended"]
    registry.set_canary(started)
    registry.clear_canary("canary-promote")
    assert registry.history()[-1]["reason"] == ""  # no reason given: none recorded


def test_history_skips_lines_that_are_not_events(tmp_path: Path,
                                                 trained_model_dir: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register(trained_model_dir, version="v1")
    registry.promote("v1")
    with open(registry.root / HISTORY_FILE, "a") as history:
        history.write('{"action": "promote"}\n{"version": "v1"}\n'
                      '{"action": "promote", "version": 3}\n')
    assert [(event["action"], event["version"]) for event in registry.history()] == [
        ("promote", "v1")]


def test_load_production_before_any_promotion_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no production model has been promoted"):
        Registry(tmp_path / "registry").load_production()


def test_load_production_loads_the_version_the_pointer_names(promoted_registry: Path) -> None:
    registry = Registry(promoted_registry)
    loaded = registry.load_production()
    assert loaded.version == registry.production_version() is not None
    assert loaded.card == registry.load(loaded.version).card


def test_promoting_an_unknown_or_malformed_version_is_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    with pytest.raises(RegistryError, match="no version v9"):
        registry.promote("v9")
    with pytest.raises(RegistryError, match="invalid version name"):
        registry.promote("../etc")


def test_tampered_artifact_is_never_loaded_or_registered(tmp_path: Path,
                                                         artifact_copy: Path) -> None:
    with open(artifact_copy / MODEL_FILE, "ab") as model:
        model.write(b"tampered")
    with pytest.raises(ModelIntegrityError, match="does not match"):
        load_artifact(artifact_copy)
    with pytest.raises(ModelIntegrityError):
        Registry(tmp_path / "registry").register(artifact_copy)


def test_model_built_with_another_scikit_learn_is_refused(artifact_copy: Path) -> None:
    card = json.loads((artifact_copy / CARD_FILE).read_text())
    card["environment"]["scikit_learn"] = "0.24.2"
    (artifact_copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelIntegrityError, match="scikit-learn 0.24.2"):
        load_artifact(artifact_copy)


def test_missing_or_corrupt_card_is_an_integrity_error(artifact_copy: Path) -> None:
    (artifact_copy / CARD_FILE).write_text("{not json")
    with pytest.raises(ModelIntegrityError, match="not valid JSON"):
        load_artifact(artifact_copy)
    (artifact_copy / CARD_FILE).unlink()
    with pytest.raises(ModelIntegrityError, match="card is missing"):
        load_artifact(artifact_copy)


def test_pointer_is_replaced_atomically_and_leaves_no_temp_files(promoted_registry: Path
                                                                 ) -> None:
    registry = Registry(promoted_registry)
    version = registry.production_version()
    registry.promote(version, reason="again")
    leftovers = [p.name for p in promoted_registry.iterdir() if p.name.startswith(".")
                 and p.name != ".lock"]
    assert leftovers == []
    assert (promoted_registry / "production").read_text() == f"{version}\n"


@pytest.mark.parametrize("change, problem", [
    ({"threshold": None}, "threshold"),
    ({"threshold": 1.5}, "threshold"),
    ({"positive_label": "maybe"}, "positive_label"),
    ({"reference": {}}, "reference"),
])
def test_promote_refuses_a_card_that_cannot_serve(
        tmp_path: Path, artifact_copy: Path, change: dict, problem: str) -> None:
    card = json.loads((artifact_copy / CARD_FILE).read_text())
    write_card(artifact_copy, {**card, **change})
    registry = Registry(tmp_path / "registry")
    version = registry.register(artifact_copy, version="bad-card")
    with pytest.raises(CardError, match=problem):
        registry.promote(version)
    assert registry.production_version() is None


def test_pointer_that_is_not_a_version_name_is_a_registry_error(
        promoted_registry: Path, trained_model_dir: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(promoted_registry)
    (registry.root / POINTER_FILE).write_bytes(b"\xffv1\n")
    with pytest.raises(RegistryError, match="not a version name") as unreadable:
        registry.production_version()
    registry.register(trained_model_dir, version="repaired")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="training.registry"):
        registry.promote("repaired")
    assert registry.production_version() == "repaired"
    assert registry.history()[-1]["previous"] is None  # what it replaced had no name
    assert caplog.messages == [
        f"replacing an unreadable production pointer: {unreadable.value}",
        "promoted repaired to production (previous: none)"]


def test_a_copy_under_another_name_serves_as_that_name_and_says_so(
        tmp_path: Path, trained_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register(trained_model_dir, version="v1")
    shutil.copytree(registry.root / "v1", registry.root / "v2")
    with caplog.at_level(logging.WARNING, logger=registry_module.__name__):
        loaded = registry.load_verified("v2")
    assert loaded.version == loaded.card["version"] == "v2"
    # Warnings only: whether the registration's INFO line is captured depends on the level
    # an earlier test in the same process left on the logger.
    assert [record.getMessage() for record in caplog.records
            if record.levelno >= logging.WARNING] == [
        f"{registry.root / 'v2'}: the card names version v1; serving it as v2"]


def test_a_pointer_error_names_the_pointer_file_and_what_it_holds(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.root.mkdir(parents=True)
    pointer = registry.root / POINTER_FILE
    pointer.write_text("../etc\n")
    with pytest.raises(RegistryError) as invalid:
        registry.production_version()
    assert str(invalid.value) == f"{pointer}: invalid version name '../etc'"
    garbage = b"\xff" * 100  # shown cut to its first 80 bytes
    pointer.write_bytes(garbage)
    with pytest.raises(RegistryError) as unreadable:
        registry.production_version()
    assert str(unreadable.value) == f"{pointer}: not a version name ({garbage[:80]!r})"


def test_a_torn_history_line_does_not_prevent_rollback(tmp_path: Path,
                                                       trained_model_dir: Path) -> None:
    registry = Registry(tmp_path / "registry")
    for name in ("v1", "v2"):
        registry.promote(registry.register(trained_model_dir, version=name))
    with open(registry.root / HISTORY_FILE, "ab") as history:
        history.write(b'{"time": "2026-01-01", "act')  # a write cut short by a full disk
    registry.promote(registry.register(trained_model_dir, version="v3"))
    assert registry.rollback() == "v2"
    assert [event["version"] for event in registry.history()] == ["v1", "v2", "v3", "v2"]


def test_promotion_that_cannot_write_its_history_changes_nothing(
        tmp_path: Path, trained_model_dir: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.promote(registry.register(trained_model_dir, version="v1"))
    registry.register(trained_model_dir, version="v2")
    before = (registry.root / HISTORY_FILE).read_bytes()
    failure = failure_with_file_size_limit(len(before) + 5, lambda: registry.promote("v2"))
    assert failure.startswith(f"OSError: {registry.root / HISTORY_FILE}: wrote 5 of ")
    assert (registry.root / HISTORY_FILE).read_bytes() == before
    assert registry.production_version() == "v1"


def test_following_a_canary_release_mirrors_it_and_its_end(promoted_registry: Path) -> None:
    registry = Registry(promoted_registry)
    release = CanaryRelease(registry.production_version(), "canary", 0.1, max_error_rate=0.05,
                            max_latency_ms=250.0, started_at="2026-12-04T00:00:00Z")
    registry.follow_canary(None)  # nothing ran, nothing to end: no error
    registry.follow_canary(release)
    assert registry.canary_release() == release
    registry.follow_canary(None)
    registry.follow_canary(None)  # ended twice (a second follower's pass): still no error
    assert registry.canary_release() is None
