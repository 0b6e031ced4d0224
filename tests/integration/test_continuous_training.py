"""Continuous training end to end, on real Gunicorn (behind real NGINX where it matters).

The story of issue 6: v1 serves; drifted traffic arrives; the monitor reads the service's
prediction log and asks for retraining; retraining takes in a simulated labelled batch and
produces v2; the gate promotes it; the running service switches to v2 while a client keeps
sending requests, and none fails; a rollback brings v1 back the same way. Worse
challengers are refused while the champion keeps serving, and a quarantined batch never
reaches training.

Retraining here uses only the logistic-regression family (TRAINING_MODEL_FAMILIES): the
family does not matter to any of these behaviours, and it keeps each retraining to
seconds. Each subprocess runs with its own registry, reports and data directories.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from tests import servers
from tests.conftest import ROOT
from tests.helpers import require_executable, wait_until
from training.config import TrainingConfig
from training.data import load_dataset, read_csv
from training.registry import Registry
from training.schema import FEATURES
from training.simulate import UNKNOWN_PURPOSE, simulate_batch

pytestmark = pytest.mark.slow

PREDICT = "/api/v1/predict"
# Upper bounds that only keep a broken run from hanging; nothing is asserted on time.
SWITCH_DEADLINE = 180.0
MAX_CLIENT_REQUESTS = 20_000


# --- helpers -------------------------------------------------------------------------------
def ct_environment(work: Path, registry: Path, **extra: str) -> dict[str, str]:
    """Environment of the `python -m training` / `make` subprocesses of one test."""
    return {**os.environ, "MODEL_REGISTRY": str(registry), "REPORTS_DIR": str(work / "reports"),
            "TRAINING_INCOMING_DIR": str(work / "incoming"),
            "TRAINING_PROCESSED_DIR": str(work / "processed"),
            "TRAINING_QUARANTINE_DIR": str(work / "quarantine"),
            "TRAINING_SNAPSHOT_DIR": str(work / "snapshots"),
            "TRAINING_MODEL_FAMILIES": "logistic_regression", **extra}


def training(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m training ARGUMENTS` as cron or Jenkins would."""
    return subprocess.run([sys.executable, "-m", "training", *arguments], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def make(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run a make target; `-o` keeps make from reinstalling the venv during a test."""
    return subprocess.run([require_executable("make"), "--no-print-directory", "-o",
                           ".venv/.installed", *arguments], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def as_applicants(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the API takes them: the model inputs, numbers as JSON integers."""
    return [{c.name: int(row[c.name]) if c.is_numeric else str(row[c.name]) for c in FEATURES}
            for _, row in frame.iterrows()]


def served_version(url: str) -> str:
    """The version /readyz reports."""
    response = requests.get(url + "/readyz", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["model_version"]


class Client(threading.Thread):
    """Keeps scoring one applicant until stopped, recording every answer's model version
    and every failure (any status but 200, or no answer at all)."""

    def __init__(self, url: str, applicant: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.applicant = url + PREDICT, applicant
        self.versions: list[str] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        """Send requests one after another (a short pause: steady traffic, not a flood)."""
        with servers.load_generator_session() as session:
            while not self.stopping.is_set() and (
                    len(self.versions) + len(self.failures) < MAX_CLIENT_REQUESTS):
                try:
                    response = session.post(self.url, json=self.applicant, timeout=60)
                    if response.status_code == 200:
                        self.versions.append(response.json()["model_version"])
                    else:
                        self.failures.append(f"HTTP {response.status_code}: "
                                             f"{response.text[:300]}")
                except requests.RequestException as error:
                    self.failures.append(repr(error))
                self.stopping.wait(0.05)

    def wait_until_serving(self, version: str, in_a_row: int = 20) -> None:
        """Wait until the last `in_a_row` answers all came from `version`."""
        deadline = time.monotonic() + SWITCH_DEADLINE
        while time.monotonic() < deadline and self.is_alive():
            recent = self.versions[-in_a_row:]
            if len(recent) == in_a_row and set(recent) == {version}:
                return
            time.sleep(0.2)
        pytest.fail(f"the client never got {in_a_row} answers in a row from {version}; "
                    f"last answers {self.versions[-5:]}, failures {self.failures[:5]}")

    def stop(self) -> None:
        """Stop sending and wait for the last request to finish."""
        self.stopping.set()
        self.join(timeout=120)
        assert not self.is_alive()


def drift_psi(metrics_text: str, feature: str) -> float:
    """The largest per-worker PSI /metrics reports for one input (0 while none is)."""
    pattern = re.compile(r'^credit_feature_drift_psi\{[^}]*feature="' + feature
                         + r'"[^}]*\} (\S+)$', re.MULTILINE)
    values = [float(value) for value in pattern.findall(metrics_text)]
    return max(values, default=0.0)


# --- the whole loop -------------------------------------------------------------------------
def test_drift_alarm_retrains_promotes_and_the_service_switches_without_failures(
        tmp_path: Path, promoted_registry: Path, data_file: Path) -> None:
    require_executable("nginx")
    registry = Registry(promoted_registry)
    v1 = registry.production_version()
    env = ct_environment(tmp_path, promoted_registry)
    base = load_dataset(data_file)
    threshold = TrainingConfig().drift_psi_threshold

    # Each worker recomputes drift every DRIFT_EVERY rows it scored itself; at 50, every
    # worker that gets a share of the 300 rows below publishes a PSI, however NGINX spreads
    # them (at the default 250, a 150/150 split would publish none).
    drift_cadence = {"DRIFT_EVERY": "50", "DRIFT_MIN_ROWS": "50"}
    with servers.running_stack(promoted_registry, tmp_path / "stack",
                               env=drift_cadence) as stack:
        assert served_version(stack.url) == v1
        master = stack.app.pid

        # Production traffic drifts: applicants ask for longer, larger credits.
        drifted = as_applicants(simulate_batch(base, "covariate", 1.0, 300, seed=31))
        with servers.load_generator_session() as session:
            for start in range(0, len(drifted), 50):
                response = session.post(stack.url + PREDICT, timeout=60,
                                        json={"instances": drifted[start:start + 50]})
                assert response.status_code == 200, response.text
                assert response.json()["model_version"] == v1
        log = stack.app.logs["log"].parent / "predictions.jsonl"
        assert len(log.read_text().splitlines()) == 300
        # The service itself sees it too: per-input drift in /metrics (Gunicorn only).
        # A worker's drift thread computes after the request that crossed the mark returned,
        # so the PSI appears in /metrics shortly after the last answer: wait for it.
        wait_until(lambda: drift_psi(requests.get(stack.app.url + "/metrics",
                                                  timeout=30).text, "amount") >= threshold,
                   timeout=60, what="an amount PSI above the threshold in /metrics")

        # Labelled outcomes of the new kind of applicant arrive as a (simulated) batch.
        simulated = training(env, "simulate", "--kind", "covariate", "--amount", "0.6",
                             "--rows", "300", "--seed", "11")
        assert simulated.returncode == 0, simulated.stdout + simulated.stderr
        batch_name = "simulated-covariate-0.6-seed11.csv"

        client = Client(stack.url, as_applicants(base.iloc[:1])[0])
        client.start()
        try:
            client.wait_until_serving(v1, in_a_row=5)
            monitored = training(env, "monitor", "--log", str(log), "--feedback",
                                 str(log.with_name("feedback.jsonl")), "--action", "retrain",
                                 "--output", str(tmp_path / "challenger"))
            assert monitored.returncode == 0, monitored.stdout + monitored.stderr
            assert "RETRAINING NEEDED" in monitored.stdout
            assert re.search(r"input drift in [a-z_, ]*amount", monitored.stdout)
            assert "gate decision: promoted" in monitored.stdout
            v2 = registry.production_version()
            assert v2 != v1
            client.wait_until_serving(v2)

            # Rollback: production points at v1 again; the same processes follow it.
            rolled = make(env, "rollback")
            assert rolled.returncode == 0, rolled.stdout + rolled.stderr
            assert registry.production_version() == v1
            client.wait_until_serving(v1)
        finally:
            client.stop()
        assert client.failures == []
        switches = [b for a, b in zip(client.versions, client.versions[1:]) if a != b]
        assert v2 in switches and v1 in switches  # both switches happened under traffic
        assert stack.app.pid == master and stack.app.process.poll() is None  # no restart
        # The client may have been answered by one worker only; every worker follows the
        # pointer within MODEL_RELOAD_SECONDS, so /readyz names v1 soon, whichever answers.
        deadline = time.monotonic() + 30
        while served_version(stack.url) != v1 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert served_version(stack.url) == v1

    # What the monitor decided and why, and what retraining took in and produced.
    reports = tmp_path / "reports"
    decision = json.loads((reports / "monitor.json").read_text())
    assert decision["retrain"] and "amount" in decision["drift"]["drifted"]
    assert decision["actions"] == ["retrained in process: exit status 0"]
    retrained = json.loads((reports / "retrain.json").read_text())
    assert retrained["decision"] == "promoted" and retrained["challenger_version"] == v2
    assert [(b["name"], b["accepted"]) for b in retrained["batches"]] == [(batch_name, True)]
    assert retrained["newest_batch"]["batch"] == batch_name
    assert {"challenger", "champion"} <= set(retrained["newest_batch"])
    intake = json.loads((reports / "intake" / "simulated-covariate-0.6-seed11.json")
                        .read_text())
    assert intake["accepted"] and intake["drift"]["drifted"]
    gate = json.loads((reports / "gate.json").read_text())
    assert gate["champion"]["version"] == v1
    assert gate["champion"]["metrics"]["rows"] == gate["challenger"]["metrics"]["rows"]
    card = registry.card(v2)
    assert card["data"]["sha256"] == retrained["snapshot"]["sha256"]
    assert card["data"]["rows"] == 1300
    assert [s["name"] for s in card["data_sources"]] == ["credit.csv", batch_name]


# --- worse challengers ----------------------------------------------------------------------
def test_worse_challengers_are_refused_and_the_champion_keeps_serving(
        tmp_path: Path, promoted_registry: Path, data_file: Path) -> None:
    registry = Registry(promoted_registry)
    v1 = registry.production_version()
    env = ct_environment(tmp_path, promoted_registry)
    base = load_dataset(data_file)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    applicant = as_applicants(base.iloc[:1])[0]

    with servers.running_gunicorn(promoted_registry, tmp_path / "app") as app:
        # A challenger that does not hold up against the champion: here the gate demands
        # a 0.05 ROC AUC gain, which an honest retrain on similar data cannot show.
        plain = simulate_batch(base, "none", 0.0, 200, seed=41)
        plain.to_csv(incoming / "a-plain.csv", index=False)
        kept = training({**env, "TRAINING_CHAMPION_TOLERANCE": "-0.05"}, "retrain",
                        "--output", str(tmp_path / "challenger"))
        assert kept.returncode == 4, kept.stdout + kept.stderr
        assert f"champion {v1} kept" in kept.stdout
        assert registry.production_version() == v1 and len(registry.versions()) == 2

        # A broken labelling feed: a large batch whose labels are shuffled. It passes
        # validation (every value is legal), but the challenger learns nothing from it.
        poisoned = simulate_batch(base, "none", 0.0, 1500, seed=42)
        poisoned["credit_risk"] = poisoned["credit_risk"].sample(
            frac=1.0, random_state=0).to_numpy()
        poisoned.to_csv(incoming / "b-shuffled-labels.csv", index=False)
        failed = training(env, "retrain", "--output", str(tmp_path / "challenger"))
        assert failed.returncode == 3, failed.stdout + failed.stderr
        assert "under the absolute floor" in failed.stdout
        assert registry.production_version() == v1
        assert len(registry.versions()) == 2  # a challenger under the floor is not registered

        # The champion kept serving throughout, in the same Gunicorn.
        for _ in range(5):
            response = requests.post(app.url + PREDICT, json=applicant, timeout=30)
            assert response.status_code == 200 and response.json()["model_version"] == v1
        assert served_version(app.url) == v1 and app.process.poll() is None


# --- quarantine -----------------------------------------------------------------------------
def test_a_quarantined_batch_never_reaches_training(
        tmp_path: Path, promoted_registry: Path, data_file: Path) -> None:
    registry = Registry(promoted_registry)
    env = ct_environment(tmp_path, promoted_registry)
    for kind, amount, seed in (("new_category", "0.3", "51"), ("none", "0", "52")):
        made = training(env, "simulate", "--kind", kind, "--amount", amount, "--seed", seed)
        assert made.returncode == 0, made.stdout + made.stderr
    # A feed that lost a column.
    lost = simulate_batch(load_dataset(data_file), "none", 0.0, 200, seed=53)
    lost.drop(columns=["telephone"]).to_csv(tmp_path / "incoming" / "no-telephone.csv",
                                            index=False)
    assert training(env, "pending").returncode == 0

    result = training(env, "retrain", "--output", str(tmp_path / "challenger"))
    assert result.returncode in (0, 4), result.stdout + result.stderr
    assert training(env, "pending").returncode == 5  # every batch was dealt with

    quarantine = tmp_path / "quarantine"
    reason = (quarantine / "simulated-new_category-0.3-seed51.reason.txt").read_text()
    assert "QUARANTINED" in reason and "domain:purpose" in reason and UNKNOWN_PURPOSE in reason
    reason = (quarantine / "no-telephone.reason.txt").read_text()
    assert "columns: missing ['telephone']" in reason
    report = json.loads((tmp_path / "reports" / "intake" / "no-telephone.json").read_text())
    assert report["accepted"] is False and report["validation"]["passed"] is False

    retrained = json.loads((tmp_path / "reports" / "retrain.json").read_text())
    snapshot = read_csv(Path(retrained["snapshot"]["path"]))
    assert len(snapshot) == 1200  # the base data and the one valid batch
    assert UNKNOWN_PURPOSE not in set(snapshot["purpose"])
    card = registry.card(retrained["challenger_version"])
    assert [s["name"] for s in card["data_sources"]] == [
        "credit.csv", "simulated-none-0-seed52.csv"]
