"""The production monitor: drift and live performance from the service's logs, and the
Jenkins remote trigger, called against a real HTTP server on loopback."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest

from tests.helpers import free_port
from tests.training_cli import run_training
from training.artifact import LoadedModel
from training.config import TrainingConfig
from training.data import load_dataset, split
from training import monitor
from training.monitor import (TRIGGER_TEXT_LIMIT, assess, live_performance, prediction_frame,
                              read_json_lines, trigger_jenkins)
from training.registry import Registry
from training.schema import INPUTS
from training.simulate import simulate_batch


class Recorder(BaseHTTPRequestHandler):
    """Answers every POST with `status` and keeps what it was sent."""

    requests: list[dict[str, Any]] = []
    status = 201
    body = b""
    queue_location = True  # answer with a Location header naming the queue item

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        url = urlsplit(self.path)
        type(self).requests.append({"path": url.path, "query": parse_qs(url.query),
                                    "authorization": self.headers.get("Authorization")})
        self.send_response(self.status)
        if self.queue_location:
            self.send_header("Location",
                             f"http://127.0.0.1:{self.server.server_port}/queue/1/")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def jenkins() -> Iterator[type[Recorder]]:
    """A real HTTP server on loopback standing in for Jenkins's remote trigger endpoint."""
    handler = type("JenkinsRecorder", (Recorder,), {"requests": [], "status": 201})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = (f"http://127.0.0.1:{server.server_port}"
                   "/job/credit-risk/buildWithParameters")
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def log_lines(frame: pd.DataFrame, version: str, prefix: str = "r") -> list[dict[str, Any]]:
    """Prediction-log records in the shape the service writes them."""
    inputs = json.loads(frame[[c.name for c in INPUTS]].to_json(orient="records"))
    return [{"time": "2026-01-01T00:00:00.000+00:00", "request_id": f"{prefix}{n}",
             "inputs": row, "output": {"probability_bad": 0.5, "decision": "decline"},
             "model_version": version} for n, row in enumerate(inputs)]


def write_lines(path: Path, records: list[dict[str, Any]]) -> Path:
    """Write JSON lines (appending)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    return path


def test_drifted_traffic_asks_for_retraining_naming_the_inputs(
        tmp_path: Path, trained_model: LoadedModel, data_file: Path) -> None:
    batch = simulate_batch(load_dataset(data_file), "covariate", 1.0, 300, seed=2)
    log = write_lines(tmp_path / "p.jsonl", log_lines(batch, "v1"))
    decision = assess(log, tmp_path / "none.jsonl", trained_model.card, TrainingConfig())
    assert decision.retrain
    assert "input drift in" in decision.reasons[0] and "amount" in decision.reasons[0]
    assert decision.versions == {"v1": 300}


def test_stable_traffic_or_too_little_of_it_does_not(
        tmp_path: Path, trained_model: LoadedModel, data_file: Path) -> None:
    holdout = split(load_dataset(data_file), TrainingConfig())[1]
    log = write_lines(tmp_path / "p.jsonl", log_lines(holdout, "v1"))
    config = TrainingConfig(monitor_min_rows=150)
    stable = assess(log, tmp_path / "none.jsonl", trained_model.card, config)
    assert not stable.retrain and "no input drift over the last 200" in stable.reasons[0]
    few = assess(log, tmp_path / "none.jsonl", {**trained_model.card, "version": "v1"},
                 TrainingConfig(monitor_min_rows=500))
    assert not few.retrain and few.drift is None and "only 200 logged" in few.reasons[0]
    assert few.window_rows == 200 and few.versions == {"v1": 200}
    assert few.reasons[1] == ("0 labelled outcomes of model v1; live performance is judged "
                              f"from {TrainingConfig().monitor_min_feedback}")
    # Exactly the minimum is enough to judge drift.
    enough = assess(log, tmp_path / "none.jsonl", trained_model.card,
                    TrainingConfig(monitor_min_rows=200))
    assert enough.drift is not None and enough.drift["drifted"] == []
    assert "no input drift over the last 200" in enough.reasons[0]


def test_live_performance_counts_only_the_production_models_own_predictions(
        tmp_path: Path, trained_model: LoadedModel, data_file: Path) -> None:
    frame = load_dataset(data_file).iloc[:120]
    card = {**trained_model.card, "version": "v2"}
    # v1's answers were all wrong; v2's were right. Only v2's may judge v2.
    old = log_lines(frame.iloc[:60], "v1", "old")
    new = log_lines(frame.iloc[60:], "v2", "new")
    for record, label in zip(old + new, list(frame["credit_risk"])):
        wrong = record["model_version"] == "v1"
        record["output"]["probability_bad"] = float((label == "bad") != wrong)
    log = write_lines(tmp_path / "p.jsonl", old + new)
    feedback = write_lines(tmp_path / "f.jsonl", [
        {"request_id": r["request_id"], "outcome": label}
        for r, label in zip(old + new, list(frame["credit_risk"]))])
    # v2 sits exactly on floors of 1.0: on the floor is not under it.
    decision = assess(log, feedback, card, TrainingConfig(
        monitor_min_feedback=50, floor_roc_auc=1.0, floor_recall_bad=1.0))
    assert decision.live["rows"] == 60 and decision.live["roc_auc"] == 1.0
    assert decision.live["recall_bad"] == 1.0
    assert not decision.retrain
    assert decision.reasons[-1] == "live performance on 60 labelled requests holds"
    under = assess(log, feedback, {**card, "version": "v1"},
                   TrainingConfig(monitor_min_feedback=50))
    assert under.retrain and under.reasons[-1] == (
        "live performance on 60 labelled requests under the floor: "
        "roc_auc 0.000 < 0.75; recall_bad 0.000 < 0.6")


def test_reading_the_log_keeps_the_last_lines_and_skips_torn_ones(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(10)) + '{"n": 10, "to')
    assert [r["n"] for r in read_json_lines(path, last=3)] == [7, 8, 9]
    assert len(read_json_lines(path)) == 10
    assert read_json_lines(tmp_path / "missing.jsonl") == []


def test_trigger_posts_retrain_with_token_and_basic_auth(jenkins: type[Recorder]) -> None:
    location = trigger_jenkins("input drift in amount", {
        "JENKINS_TRIGGER_URL": jenkins.url, "JENKINS_TRIGGER_TOKEN": "s3cret",
        "JENKINS_USER": "ct-bot", "JENKINS_API_TOKEN": "api-token"})
    assert location.endswith("/queue/1/")
    [sent] = jenkins.requests
    assert sent["path"] == "/job/credit-risk/buildWithParameters"
    assert sent["query"]["RETRAIN"] == ["true"] and sent["query"]["token"] == ["s3cret"]
    assert sent["query"]["cause"] == ["input drift in amount"]
    assert sent["authorization"] == "Basic " + base64.b64encode(b"ct-bot:api-token").decode()


def test_trigger_sends_no_credentials_unless_user_and_token_are_both_set(
        jenkins: type[Recorder]) -> None:
    trigger_jenkins("x", {"JENKINS_TRIGGER_URL": jenkins.url, "JENKINS_USER": "ct-bot"})
    trigger_jenkins("x", {"JENKINS_TRIGGER_URL": jenkins.url, "JENKINS_API_TOKEN": "t"})
    assert [sent["authorization"] for sent in jenkins.requests] == [None, None]
    assert all("token" not in sent["query"] for sent in jenkins.requests)


def test_trigger_reads_the_process_environment_by_default(
        jenkins: type[Recorder], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JENKINS_TRIGGER_URL", jenkins.url)
    monkeypatch.setenv("JENKINS_TRIGGER_TOKEN", "from-env")
    trigger_jenkins("drift")
    assert jenkins.requests[0]["query"]["token"] == ["from-env"]


def test_trigger_accepts_200_and_falls_back_to_the_url_without_a_queue_location(
        jenkins: type[Recorder]) -> None:
    jenkins.status, jenkins.queue_location = 200, False
    assert trigger_jenkins("x", {"JENKINS_TRIGGER_URL": jenkins.url}) == jenkins.url


def test_trigger_cuts_the_cause_and_the_error_body_to_their_limit(
        jenkins: type[Recorder]) -> None:
    trigger_jenkins("c" * 300, {"JENKINS_TRIGGER_URL": jenkins.url})
    assert jenkins.requests[0]["query"]["cause"] == ["c" * TRIGGER_TEXT_LIMIT]
    jenkins.status, jenkins.body = 500, b"e" * 300
    with pytest.raises(ValueError) as refused:
        trigger_jenkins("x", {"JENKINS_TRIGGER_URL": jenkins.url})
    assert str(refused.value) == (f"Jenkins answered HTTP 500 to {jenkins.url}: "
                                  + "e" * TRIGGER_TEXT_LIMIT)


def test_trigger_failures_are_errors_with_the_reason(jenkins: type[Recorder]) -> None:
    with pytest.raises(ValueError) as unset:
        trigger_jenkins("x", {})
    assert str(unset.value) == ("JENKINS_TRIGGER_URL is not set (the job's "
                                "buildWithParameters URL)")
    jenkins.status = 403
    with pytest.raises(ValueError, match="HTTP 403"):
        trigger_jenkins("x", {"JENKINS_TRIGGER_URL": jenkins.url})
    nobody = f"http://127.0.0.1:{free_port()}/job/x/buildWithParameters"
    with pytest.raises(ValueError, match="cannot reach Jenkins"):
        trigger_jenkins("x", {"JENKINS_TRIGGER_URL": nobody})


def test_a_jenkins_that_never_answers_is_reported_after_the_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A socket that listens but never accepts: the connection is made, no answer comes.
    silent = socket.create_server(("127.0.0.1", 0))
    # Should the request wait for ever, closing the socket ends it with a reset instead,
    # and the assertion on "timed out" below fails.
    closer = threading.Timer(30, silent.close)
    closer.start()
    monkeypatch.setattr(monitor, "TRIGGER_TIMEOUT_SECONDS", 0.5)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/job/x/buildWithParameters"
    try:
        with pytest.raises(ValueError, match="cannot reach Jenkins") as down:
            trigger_jenkins("x", {"JENKINS_TRIGGER_URL": url})
    finally:
        closer.cancel()
        silent.close()
    assert "timed out" in str(down.value)


def monitor_cli(tmp_path: Path, registry: Path, log: Path, *arguments: str,
                **environ: str) -> subprocess.CompletedProcess[str]:
    """`python -m training monitor` with the environment cron or Jenkins would give it."""
    # The test's own tracking store, where the registry of record lives (never mlruns/).
    env = {"PATH": "/usr/bin:/bin", "MODEL_REGISTRY": str(registry),
           "TRAINING_TRACKING_DIR": os.environ["TRAINING_TRACKING_DIR"],
           "REPORTS_DIR": str(tmp_path / "reports"),
           "TRAINING_INCOMING_DIR": str(tmp_path / "incoming"), **environ}
    return run_training("monitor", "--log", str(log), "--feedback",
                        str(tmp_path / "feedback.jsonl"), *arguments, env=env)


def test_monitor_command_triggers_jenkins_when_inputs_drift(
        tmp_path: Path, promoted_registry: Path, data_file: Path,
        jenkins: type[Recorder]) -> None:
    version = Registry(promoted_registry).production_version()
    batch = simulate_batch(load_dataset(data_file), "covariate", 1.0, 250, seed=8)
    log = write_lines(tmp_path / "p.jsonl", log_lines(batch, version))
    result = monitor_cli(tmp_path, promoted_registry, log, "--action", "trigger",
                         JENKINS_TRIGGER_URL=jenkins.url, JENKINS_TRIGGER_TOKEN="tok")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RETRAINING NEEDED" in result.stdout and "input drift in" in result.stdout
    [sent] = jenkins.requests
    assert sent["query"]["RETRAIN"] == ["true"] and sent["query"]["token"] == ["tok"]
    assert "input drift" in sent["query"]["cause"][0]
    report = json.loads((tmp_path / "reports" / "monitor.json").read_text())
    assert report["retrain"] and report["actions"][0].startswith("triggered Jenkins")
    assert set(report) == {"retrain", "reasons", "window_rows", "versions", "drift", "live",
                           "actions"}
    assert report["window_rows"] == 250 and report["versions"] == {version: 250}
    assert report["drift"]["drifted"] and report["live"] is None  # no feedback came back
    drifted = report["drift"]["drifted"]
    assert len(drifted) > 1 and report["reasons"][0].startswith(
        f"input drift in {', '.join(drifted)} over the last 250 requests (worst: ")


def test_monitor_command_does_not_trigger_on_stable_traffic(
        tmp_path: Path, promoted_registry: Path, data_file: Path,
        jenkins: type[Recorder]) -> None:
    version = Registry(promoted_registry).production_version()
    holdout = split(load_dataset(data_file), TrainingConfig())[1]
    log = write_lines(tmp_path / "p.jsonl", log_lines(holdout, version))
    result = monitor_cli(tmp_path, promoted_registry, log, "--action", "trigger",
                         JENKINS_TRIGGER_URL=jenkins.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no retraining needed" in result.stdout
    assert jenkins.requests == []


def test_monitor_retrain_without_a_labelled_batch_exits_5(
        tmp_path: Path, promoted_registry: Path, data_file: Path) -> None:
    version = Registry(promoted_registry).production_version()
    batch = simulate_batch(load_dataset(data_file), "covariate", 1.0, 250, seed=8)
    log = write_lines(tmp_path / "p.jsonl", log_lines(batch, version))
    result = monitor_cli(tmp_path, promoted_registry, log, "--action", "retrain")
    assert result.returncode == 5, result.stdout + result.stderr
    assert "no labelled batch waits" in result.stdout
    assert Registry(promoted_registry).versions() == [version]


def test_reading_a_window_spans_rotated_files_newest_last(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    older = path.with_name(path.name + ".20260101T000000000000Z-7")
    old = path.with_name(path.name + ".20260102T000000000000Z-8")
    older.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(3)))
    old.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(3, 6)))
    path.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(6, 8)))
    path.with_name(path.name + ".gz").write_text("not part of the log\n")
    assert [r["n"] for r in read_json_lines(path, last=4)] == [4, 5, 6, 7]
    assert [r["n"] for r in read_json_lines(path, last=7)] == list(range(1, 8))
    assert [r["n"] for r in read_json_lines(path)] == list(range(8))


def test_reading_a_window_does_not_read_the_older_part_of_a_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    monkeypatch.setattr("training.jsonlines.BLOCK_BYTES", 64)
    path = tmp_path / "p.jsonl"
    # A torn line at the head: a reader of the whole file would meet (and report) it.
    path.write_text("torn{\n" + "".join(json.dumps({"n": n}) + "\n" for n in range(50)))
    assert [r["n"] for r in read_json_lines(path, last=3)] == [47, 48, 49]
    assert "not JSON" not in caplog.text
    assert len(read_json_lines(path)) == 50 and "not JSON" in caplog.text


def test_the_monitor_reads_outcomes_from_rotated_feedback_logs_within_its_window(
        tmp_path: Path, trained_model: LoadedModel, data_file: Path) -> None:
    frame = load_dataset(data_file).iloc[:60]
    card = {**trained_model.card, "version": "v1"}
    records = log_lines(frame, "v1", "r")
    log = write_lines(tmp_path / "p.jsonl", records)
    outcomes = [{"request_id": r["request_id"], "outcome": label}
                for r, label in zip(records, list(frame["credit_risk"]))]
    feedback = tmp_path / "f.jsonl"
    write_lines(feedback.with_name("f.jsonl.20260101T000000000000Z-1"), outcomes[:40])
    write_lines(feedback, outcomes[40:])
    config = TrainingConfig(monitor_min_feedback=10)
    assert assess(log, feedback, card, config).live["rows"] == 60
    narrow = TrainingConfig(monitor_min_feedback=10, monitor_window_feedback=25)
    assert assess(log, feedback, card, narrow).live["rows"] == 25


def test_the_prediction_frame_has_the_schemas_columns_whatever_the_log_holds() -> None:
    columns = [c.name for c in INPUTS] + ["request_id", "probability_bad", "model_version"]
    assert list(prediction_frame([], 10).columns) == columns  # an empty log: no KeyError later
    odd = {"request_id": "r1", "inputs": {"age": 30, "smuggled": 1}, "model_version": "v1"}
    frame = prediction_frame([odd], 10)
    assert list(frame.columns) == columns and frame.loc[0, "age"] == 30
    assert frame["amount"].isna().all() and frame["probability_bad"].isna().all()


def test_feedback_lines_without_a_request_id_or_a_known_outcome_are_ignored() -> None:
    logged = [{"request_id": f"r{n}", "inputs": {"age": 30}, "model_version": "v1",
               "output": {"probability_bad": p}} for n, p in enumerate((0.9, 0.1))]
    feedback = [{"outcome": "bad"}, {"request_id": "r0"}, {"request_id": "r1", "outcome": "?"},
                {"request_id": "r0", "outcome": "bad"}, {"request_id": "r1", "outcome": "good"}]
    live = live_performance(prediction_frame(logged, 10), feedback, threshold=0.5)
    assert live is not None and live["rows"] == 2 and live["roc_auc"] == 1.0
