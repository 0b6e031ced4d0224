"""Intake safeguards: a batch never overwrites another, never breaks the snapshot, and its
report says what was measured."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pandas as pd
import pytest

from training.artifact import LoadedModel
from training import intake
from training.config import TrainingConfig
from training.data import load_dataset, load_split, read_csv
from training.drift import DriftReport, FeatureDrift
from training.intake import (BatchOutcome, RefusedEntry, _kind, _link_target, build_snapshot,
                             intake_all, intake_lock, newest_processed, pending_batches,
                             read_batch_bytes, snapshot_failures)
from training.simulate import simulate_batch


# A generous bound for an intake of two entries, on a busy machine too.
FIFO_DEADLINE_SECONDS = 30


@pytest.fixture
def ct_config(tmp_path: Path, data_file: Path) -> TrainingConfig:
    """Every continuous-training directory in a temp dir."""
    return TrainingConfig(
        data_path=data_file, registry_dir=tmp_path / "registry", reports_dir=tmp_path / "r",
        incoming_dir=tmp_path / "incoming", processed_dir=tmp_path / "processed",
        quarantine_dir=tmp_path / "quarantine", snapshot_dir=tmp_path / "snapshots")


def arrive(config: TrainingConfig, name: str, frame: pd.DataFrame) -> Path:
    """Drop a batch into the incoming directory."""
    config.incoming_dir.mkdir(parents=True, exist_ok=True)
    path = config.incoming_dir / name
    frame.to_csv(path, index=False)
    return path


def simulated(config: TrainingConfig, kind: str = "none", amount: float = 0.0,
              seed: int = 1, rows: int = 200) -> pd.DataFrame:
    """A simulated batch drawn from the base data."""
    return simulate_batch(load_dataset(config.data_path), kind, amount, rows, seed)


def test_a_second_batch_with_the_same_name_never_overwrites_the_first(
        ct_config: TrainingConfig) -> None:
    arrive(ct_config, "daily.csv", simulated(ct_config, seed=1))
    intake_all(None, ct_config)
    arrive(ct_config, "daily.csv", simulated(ct_config, seed=2))
    [outcome] = intake_all(None, ct_config)
    assert outcome.accepted and outcome.destination.endswith("daily-2.csv")
    assert sorted(p.name for p in ct_config.processed_dir.glob("*.csv")) == [
        "daily-2.csv", "daily.csv"]
    assert len(read_csv(build_snapshot(ct_config))) == 1400


def test_the_same_batch_sent_twice_is_quarantined_and_the_snapshot_stays_trainable(
        ct_config: TrainingConfig) -> None:
    batch = simulated(ct_config, seed=3)
    arrive(ct_config, "first.csv", batch)
    arrive(ct_config, "resent.csv", batch)
    first, resent = intake_all(None, ct_config)
    assert first.accepted and not resent.accepted
    reason = (ct_config.quarantine_dir / "resent.reason.txt").read_text()
    assert "snapshot:duplicate_rows" in reason
    _, train, holdout = load_split(build_snapshot(ct_config), ct_config)  # validates
    assert len(train) + len(holdout) == 1200


def test_rows_already_in_the_training_data_are_quarantined(ct_config: TrainingConfig) -> None:
    # Real rows resent unchanged would make every later snapshot fail its duplicate check.
    arrive(ct_config, "copy.csv", read_csv(ct_config.data_path).sample(150, random_state=0))
    [outcome] = intake_all(None, ct_config)
    assert not outcome.accepted
    assert any("snapshot:duplicate_rows" in reason for reason in outcome.reasons)
    assert not ct_config.processed_dir.exists() or not any(ct_config.processed_dir.iterdir())


def test_batch_report_is_json_and_text_with_drift_per_input(
        ct_config: TrainingConfig, trained_model: LoadedModel) -> None:
    arrive(ct_config, "shifted.csv", simulated(ct_config, "covariate", 1.0, seed=4))
    [outcome] = intake_all(trained_model.card["reference"], ct_config)
    assert outcome.accepted and len(outcome.sha256) == 64
    report = json.loads((ct_config.reports_dir / "intake" / "shifted.json").read_text())
    assert report["accepted"] is True and report["validation"]["passed"] is True
    assert "amount" in report["drift"]["drifted"]
    text = (ct_config.reports_dir / "intake" / "shifted.txt").read_text()
    assert "ACCEPTED" in text and "[DRIFT] amount: PSI" in text and "[ok] " in text


def test_files_being_written_are_not_pending(ct_config: TrainingConfig) -> None:
    arrive(ct_config, ".half-written.csv", simulated(ct_config))
    (ct_config.incoming_dir / "notes.txt").write_text("not a batch")
    assert pending_batches(ct_config) == []
    arrive(ct_config, "b.csv", simulated(ct_config))
    arrive(ct_config, "a.csv", simulated(ct_config, seed=2))
    assert [p.name for p in pending_batches(ct_config)] == ["a.csv", "b.csv"]


def test_newest_processed_is_the_batch_taken_in_last(ct_config: TrainingConfig) -> None:
    assert newest_processed(ct_config) is None
    arrive(ct_config, "z-early.csv", simulated(ct_config, seed=5))
    intake_all(None, ct_config)
    arrive(ct_config, "a-late.csv", simulated(ct_config, seed=6))
    intake_all(None, ct_config)
    newest = newest_processed(ct_config)
    assert newest is not None and newest.name == "a-late.csv"  # by intake, not by name


def test_snapshot_manifest_records_every_source_with_its_hash(
        ct_config: TrainingConfig) -> None:
    arrive(ct_config, "a.csv", simulated(ct_config, seed=7))
    intake_all(None, ct_config)
    snapshot = build_snapshot(ct_config)
    manifest = json.loads(snapshot.with_suffix(".segments.json").read_text())
    assert [(s["name"], s["rows"]) for s in manifest["sources"]] == [
        ("credit.csv", 1000), ("a.csv", 200)]
    assert all(len(s["sha256"]) == 64 for s in manifest["sources"])


def test_a_second_retraining_run_is_refused_while_one_holds_the_intake(
        ct_config: TrainingConfig) -> None:
    with intake_lock(ct_config):
        with pytest.raises(ValueError, match="another retraining run"):
            with intake_lock(ct_config):
                pass
    with intake_lock(ct_config):  # released afterwards
        pass


def written_files(*directories: Path) -> list[Path]:
    """Every regular file (not link) under the directories."""
    return [path for directory in directories if directory.exists()
            for path in directory.rglob("*") if path.is_file() and not path.is_symlink()]


def test_a_symlink_is_quarantined_as_a_link_without_reading_its_target(
        ct_config: TrainingConfig, tmp_path: Path) -> None:
    # A target the test controls: /proc/self/environ is the real danger, but its bytes are
    # not stable in a test run (setproctitle, imported with Gunicorn, writes over them).
    secret = f"API_TOKEN={uuid.uuid4().hex}"
    target = tmp_path / "secrets.env"
    target.write_text(f"{secret}\n")
    ct_config.incoming_dir.mkdir(parents=True)
    (ct_config.incoming_dir / "leak.csv").symlink_to(target)
    arrive(ct_config, "real.csv", simulated(ct_config))
    leak, real = intake_all(None, ct_config)
    assert not leak.accepted and real.accepted
    moved = Path(leak.destination)
    assert moved.parent == ct_config.quarantine_dir and moved.is_symlink()
    assert os.readlink(moved) == str(target)
    assert f"a symbolic link (to '{target}')" in leak.reasons[0]
    assert target.read_text() == f"{secret}\n", "the target is left as it was"
    written = written_files(ct_config.quarantine_dir, ct_config.reports_dir,
                            ct_config.processed_dir)
    assert written  # the check below has files to look in
    for path in written:
        assert secret.encode() not in path.read_bytes(), path


def test_a_fifo_and_a_directory_are_quarantined_unread(
        ct_config: TrainingConfig, caplog: pytest.LogCaptureFixture) -> None:
    ct_config.incoming_dir.mkdir(parents=True)
    fifo = ct_config.incoming_dir / "pipe.csv"
    os.mkfifo(fifo)  # opening it to read would block until a writer comes: nobody writes
    (ct_config.incoming_dir / "folder.csv").mkdir()
    (ct_config.incoming_dir / "folder.csv" / "inner.csv").write_text("not taken")
    with ThreadPoolExecutor(max_workers=1) as pool:
        intake = pool.submit(intake_all, None, ct_config)
        try:
            folder, pipe = intake.result(timeout=FIFO_DEADLINE_SECONDS)
        except FutureTimeout:
            # Blocked in open(): a writer lets it go on, and the test fails saying why.
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail(f"the intake still waited on the fifo after {FIFO_DEADLINE_SECONDS} s")
    assert "a directory, not a regular file" in folder.reasons[0]
    assert "a fifo, not a regular file" in pipe.reasons[0]
    assert stat.S_ISFIFO(os.lstat(ct_config.quarantine_dir / "pipe.csv").st_mode)
    assert (ct_config.quarantine_dir / "folder.csv" / "inner.csv").read_text() == "not taken"
    said = (f"batch pipe.csv (unread): QUARANTINED -> {ct_config.quarantine_dir / 'pipe.csv'}"
            "\n  refused: a fifo, not a regular file: not read")
    assert (ct_config.quarantine_dir / "pipe.reason.txt").read_text() == said + "\n"
    assert said in [record.getMessage() for record in caplog.records
                    if record.levelname == "WARNING"]
    report = json.loads((ct_config.reports_dir / "intake" / "pipe.json").read_text())
    assert report["accepted"] is False and report["name"] == "pipe.csv"
    assert report["validation"] == {"passed": False}  # nothing was read to validate
    assert pending_batches(ct_config) == []


def test_a_batch_over_the_size_limit_is_quarantined_unread_and_one_at_it_is_taken(
        ct_config: TrainingConfig) -> None:
    size = arrive(ct_config, "big.csv", simulated(ct_config, seed=8)).stat().st_size
    [over] = intake_all(None, dataclasses.replace(ct_config, batch_max_bytes=size - 1))
    assert not over.accepted and over.rows == 0 and over.sha256 == ""
    assert f"{size} bytes, over the limit of {size - 1}" in over.reasons[0]
    arrive(ct_config, "exact.csv", simulated(ct_config, seed=8))
    [exact] = intake_all(None, dataclasses.replace(ct_config, batch_max_bytes=size))
    assert exact.accepted and exact.rows == 200


def test_batch_size_limit_is_configurable_from_the_environment() -> None:
    assert TrainingConfig.from_env({"TRAINING_BATCH_MAX_BYTES": "1234"}).batch_max_bytes == 1234


@pytest.mark.parametrize(("file_type", "words"), [
    (stat.S_IFLNK, "a symbolic link"), (stat.S_IFDIR, "a directory"), (stat.S_IFIFO, "a fifo"),
    (stat.S_IFSOCK, "a socket"), (stat.S_IFCHR, "a character device"),
    (stat.S_IFBLK, "a block device"), (0, "not a regular file")])
def test_each_kind_of_file_that_is_not_regular_is_named(file_type: int, words: str) -> None:
    # Built from st_mode bits: a block device cannot be made without privileges here.
    assert _kind(file_type | 0o644) == words


def test_an_entry_that_is_not_read_says_why_in_full(tmp_path: Path) -> None:
    (tmp_path / "link.csv").symlink_to("/etc/passwd")
    (tmp_path / "big.csv").write_bytes(b"x" * 11)
    refusals = {"link.csv": "a symbolic link (to '/etc/passwd'), not a regular file: "
                            "not followed",
                "gone.csv": "cannot be opened: No such file or directory",
                "big.csv": "11 bytes, over the limit of 10 (TRAINING_BATCH_MAX_BYTES): not read"}
    for name, message in refusals.items():
        with pytest.raises(RefusedEntry) as refused:
            read_batch_bytes(tmp_path / name, max_bytes=10)
        assert str(refused.value) == message
    assert read_batch_bytes(tmp_path / "big.csv", max_bytes=11) == b"x" * 11


def test_a_link_target_is_shown_only_for_a_link(tmp_path: Path) -> None:
    (tmp_path / "link.csv").symlink_to("/etc/passwd")
    assert _link_target(tmp_path / "link.csv") == " (to '/etc/passwd')"
    assert _link_target(tmp_path) == ""  # not a link (or gone): nothing to show


def test_a_batchs_readable_report_gives_verdict_reasons_and_drift() -> None:
    drift = DriftReport(rows=200, threshold=0.25, features=[
        FeatureDrift("amount", 0.4, None, True, "numeric")]).to_dict()
    accepted = BatchOutcome("a.csv", True, 200, ["drift: amount"], {}, drift,
                            "/data/processed/a.csv", "0123456789abcdef")
    assert accepted.to_text() == (
        "batch a.csv (200 rows, sha256 0123456789ab): ACCEPTED -> /data/processed/a.csv\n"
        "  drift: amount\n"
        "  drift of 200 rows against the training reference (PSI threshold 0.25): "
        "DRIFT in amount\n"
        "    [DRIFT] amount: PSI 0.400; numeric")
    unread = BatchOutcome("b", False, 0, ["not a CSV file"], {}, None, "/q/b")
    assert unread.to_text() == "batch b (unread): QUARANTINED -> /q/b\n  not a CSV file"


def test_the_snapshot_with_a_batch_is_checked_against_the_runs_own_bounds(
        ct_config: TrainingConfig) -> None:
    batch = read_csv(arrive(ct_config, "a.csv", simulated(ct_config)))
    assert snapshot_failures(batch, ct_config) == []
    strict = dataclasses.replace(ct_config, max_bad_fraction=0.25)  # the data: 30 % bad
    [failure] = snapshot_failures(batch, strict)
    assert failure.startswith("snapshot:label_balance: ")
    assert failure.endswith("(allowed 15%-25%) in the snapshot with this batch")


def intake_logged(caplog: pytest.LogCaptureFixture, config: TrainingConfig,
                  reference: dict[str, object] | None = None
                  ) -> tuple[list[BatchOutcome], list[tuple[str, str]]]:
    """Every pending batch taken in, and what the intake logged meanwhile (level, message)."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="training.intake"):
        outcomes = intake_all(reference, config)  # type: ignore[arg-type]
    return outcomes, [(record.levelname, record.getMessage()) for record in caplog.records
                      if record.name == "training.intake"]


def reports_of(config: TrainingConfig, outcome: BatchOutcome) -> tuple[str, object]:
    """The batch's readable and JSON reports as written."""
    stem = Path(outcome.destination).stem
    directory = config.reports_dir / "intake"
    return ((directory / f"{stem}.txt").read_text(),
            json.loads((directory / f"{stem}.json").read_text()))


def test_a_valid_batch_is_valid_in_its_outcome_report_and_log(
        ct_config: TrainingConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A processed directory whose parents do not exist yet is made with them.
    config = dataclasses.replace(ct_config, processed_dir=tmp_path / "a" / "b" / "processed")
    arrive(config, "good.csv", simulated(config, seed=5))
    [outcome], logged = intake_logged(caplog, config)
    assert outcome.accepted and outcome.reasons == ["valid"] and outcome.drift is None
    assert Path(outcome.destination) == config.processed_dir / "good.csv"
    assert (outcome.validation["source"], outcome.validation["passed"]) == ("good.csv", True)
    assert logged == [("INFO", outcome.to_text())]
    assert reports_of(config, outcome) == (outcome.to_text() + "\n", dataclasses.asdict(outcome))


def test_a_measured_batch_names_its_drifted_inputs_or_none(
        ct_config: TrainingConfig, trained_model: LoadedModel) -> None:
    reference = trained_model.card["reference"]
    arrive(ct_config, "a-steady.csv", simulated(ct_config, seed=6))
    arrive(ct_config, "b-shifted.csv", simulated(ct_config, "covariate", 1.0, seed=4))
    steady, shifted = intake_all(reference, ct_config)
    assert steady.reasons == ["drift: none over the threshold"]
    drifted = shifted.drift["drifted"] if shifted.drift else []
    assert len(drifted) >= 2 and shifted.reasons == ["drift: " + ", ".join(drifted)]


def test_a_batch_that_fails_validation_is_quarantined_saying_which_check(
        ct_config: TrainingConfig, caplog: pytest.LogCaptureFixture) -> None:
    arrive(ct_config, "negative.csv", simulated(ct_config, seed=7).assign(age=-5))
    (ct_config.incoming_dir / "unreadable.csv").write_bytes(b"\xff\xfe")
    (negative, unreadable), logged = intake_logged(caplog, ct_config)
    assert not negative.accepted and negative.validation["passed"] is False
    [failed] = [check for check in negative.validation["checks"] if not check["passed"]]
    assert negative.reasons == [f"failed validation: {failed['name']}: {failed['detail']}"]
    assert not unreadable.accepted and unreadable.rows == 0
    assert unreadable.validation == {"passed": False}
    assert unreadable.reasons == [f"failed validation: {ct_config.incoming_dir}/unreadable.csv: "
                                  "not a readable CSV file ('utf-8' codec can't decode byte "
                                  "0xff in position 0: invalid start byte)"]
    assert logged == [("WARNING", negative.to_text()), ("WARNING", unreadable.to_text())]
    for outcome in (negative, unreadable):
        reason = Path(outcome.destination).with_suffix(".reason.txt").read_text()
        assert reason == outcome.to_text() + "\n"
        assert reports_of(ct_config, outcome)[0] == outcome.to_text() + "\n"


def test_the_batch_judged_is_the_bytes_read_and_hashed_even_if_the_file_changes_after(
        ct_config: TrainingConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    path = arrive(ct_config, "swapped.csv", simulated(ct_config, seed=9))
    original = path.read_bytes()
    read = intake.read_batch_bytes

    def read_then_swapped(batch: Path, max_bytes: int) -> bytes:
        content = read(batch, max_bytes)
        batch.write_bytes(b"age\n-1\n")  # a writer replaces the file after the read
        return content

    monkeypatch.setattr(intake, "read_batch_bytes", read_then_swapped)
    [outcome] = intake_all(None, ct_config)
    assert outcome.accepted and outcome.rows == 200
    assert Path(outcome.destination).read_bytes() == original


def test_a_file_longer_than_its_size_said_is_refused_reading_one_byte_past_the_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc files say 0 bytes and hold more: the model of a file that grows while read."""
    asked: list[int] = []
    fdopen = os.fdopen

    class Counted:
        def __init__(self, handle: object) -> None:
            self.handle = handle

        def __enter__(self) -> "Counted":
            return self

        def __exit__(self, *_: object) -> None:
            self.handle.close()  # type: ignore[attr-defined]

        def read(self, size: int = -1) -> bytes:
            asked.append(size)
            return self.handle.read(size)  # type: ignore[attr-defined, no-any-return]

    monkeypatch.setattr(os, "fdopen", lambda *args: Counted(fdopen(*args)))
    with pytest.raises(RefusedEntry) as grew:
        read_batch_bytes(Path("/proc/self/status"), max_bytes=10)
    assert str(grew.value) == "grew over the limit of 10 bytes while being read"
    assert asked == [11]
