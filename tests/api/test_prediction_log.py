"""The prediction log: one JSON line per scored row, in the shape the monitor reads."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.prediction_log import JsonLinesLog
from tests.api.conftest import metric_value
from tests.helpers import failure_with_file_size_limit
from training.jsonlines import encode_lines
from training.monitor import prediction_frame, read_json_lines
from training.schema import PROTECTED


def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every record of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_prediction_log_has_one_line_per_row_in_the_contract_shape(
        client: FlaskClient, applicant: dict[str, Any], prediction_log: Path) -> None:
    response = client.post("/api/v1/predict", json={"instances": [applicant, applicant]})
    body = response.get_json()
    records = log_lines(prediction_log)
    assert len(records) == 2
    for record, prediction in zip(records, body["predictions"]):
        assert set(record) == {"time", "request_id", "trace_id", "inputs", "output",
                               "model_version", "arm", "scoring_ms"}
        assert record["arm"] == body["arm"] == "production"
        assert record["scoring_ms"] >= 0
        assert record["trace_id"] == response.headers["X-Request-ID"]
        assert record["request_id"] == prediction["request_id"]
        assert record["inputs"] == applicant
        assert record["output"] == {"probability_bad": prediction["probability_bad"],
                                    "decision": prediction["decision"]}
        assert record["model_version"] == body["model_version"]
        assert record["time"].endswith("+00:00")


def test_prediction_log_keeps_protected_fields_for_fairness_monitoring(
        client: FlaskClient, applicant: dict[str, Any], prediction_log: Path) -> None:
    protected = {column.name: column.categories[-1] for column in PROTECTED}
    client.post("/api/v1/predict", json={**applicant, **protected})
    (record,) = log_lines(prediction_log)
    assert {k: record["inputs"][k] for k in protected} == protected


def test_prediction_log_is_read_by_the_monitor(
        client: FlaskClient, applicant: dict[str, Any], prediction_log: Path) -> None:
    client.post("/api/v1/predict", json={"instances": [applicant] * 3})
    frame = prediction_frame(read_json_lines(prediction_log), window=1000)
    assert len(frame) == 3
    assert frame["amount"].tolist() == [applicant["amount"]] * 3
    assert frame["probability_bad"].notna().all()


def test_rejected_requests_are_not_logged(client: FlaskClient, applicant: dict[str, Any],
                                          prediction_log: Path) -> None:
    client.post("/api/v1/predict", json={**applicant, "amount": -5})
    assert not prediction_log.exists()


def test_prediction_log_write_failure_answers_503_and_is_counted(
        make_app: Any, tmp_path: Path, applicant: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    unwritable = tmp_path / "a-directory"
    unwritable.mkdir()
    client = make_app(PREDICTION_LOG=str(unwritable)).test_client()
    response = client.post("/api/v1/predict", json=applicant)
    # An answer the log does not hold would be lost to drift, feedback and retraining.
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"
    assert response.get_json()["message"] == \
        "The prediction could not be recorded; try again shortly."
    assert metric_value(client, "credit_prediction_log_write_failures_total") == 1.0
    [said] = [record.getMessage() for record in caplog.records if record.name == "app.scoring"]
    assert said.startswith(f"could not write 1 line(s) to the prediction log {unwritable}: ")
    assert "Is a directory" in said  # the error itself


def test_short_write_on_a_full_disk_leaves_no_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    log = JsonLinesLog(path)
    log.append([{"n": 1}])  # the forked writer below inherits this worker's open log
    record = {"n": 2, "pad": "x" * 50}
    failure = failure_with_file_size_limit(path.stat().st_size + 7, lambda: log.append([record]))
    assert failure == (f"OSError: {path}: wrote 7 of {len(encode_lines([record]))} bytes "
                       "(disk full?)")
    assert path.read_text() == '{"n":1}\n'
    failure = failure_with_file_size_limit(path.stat().st_size, lambda: log.append([{"n": 2}]))
    assert failure == "OSError: [Errno 27] File too large"  # nothing written at all
    log.append([{"n": 3}])
    assert path.read_text() == '{"n":1}\n{"n":3}\n'


def test_the_first_append_creates_the_log_directory(tmp_path: Path) -> None:
    path = tmp_path / "run" / "logs" / "predictions.jsonl"
    JsonLinesLog(path).append([{"n": 1}])
    JsonLinesLog(path).append([{"n": 2}])
    assert path.read_text() == '{"n":1}\n{"n":2}\n'


def test_a_line_torn_by_a_killed_writer_is_closed_before_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"n":1}\n{"n":2,"pad"')  # a writer from before, killed mid-line
    JsonLinesLog(path).append([{"n": 3}])
    assert path.read_text().splitlines() == ['{"n":1}', '{"n":2,"pad"', '{"n":3}']


def test_rotation_renames_the_full_log_aside_and_keeps_every_line(tmp_path: Path) -> None:
    log = JsonLinesLog(tmp_path / "predictions.jsonl", max_bytes=500)
    for n in range(40):
        log.append([{"n": n, "pad": "x" * 20}])
    files = sorted(tmp_path.glob("predictions.jsonl*"))
    assert len(files) > 2, "rotated several times"
    numbers = sorted(record["n"] for path in files for record in log_lines(path))
    assert numbers == list(range(40))


def _append_many(path: str, worker: int, count: int) -> None:
    log = JsonLinesLog(Path(path), max_bytes=20_000)
    for n in range(count):
        log.append([{"worker": worker, "n": n, "pad": "y" * 100},
                    {"worker": worker, "n": n, "second": True}])


def test_concurrent_worker_processes_never_lose_or_tear_a_line(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(path), w, 300)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=300)
        assert process.exitcode == 0
    records = [record for file in tmp_path.glob("predictions.jsonl*")
               for record in log_lines(file)]  # json.loads fails on a torn line
    assert len(records) == 4 * 300 * 2
    assert len({(r["worker"], r["n"], "second" in r) for r in records}) == len(records)
    assert len(list(tmp_path.glob("predictions.jsonl.*"))) > 1, "rotation happened"
