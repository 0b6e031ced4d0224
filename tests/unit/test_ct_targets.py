"""The continuous-training make targets Jenkins and people call: `pending` and `simulate`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.helpers import require_executable
from training.schema import column_names


@pytest.fixture
def ct_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a CT run whose incoming batches live in a temp dir."""
    return {**os.environ, "TRAINING_INCOMING_DIR": str(tmp_path / "incoming"),
            "MODEL_REGISTRY": str(tmp_path / "registry"),
            "REPORTS_DIR": str(tmp_path / "reports")}


def make(target: str, env: dict[str, str], *variables: str) -> subprocess.CompletedProcess[str]:
    """Run `make TARGET` from the repository root. `-o` keeps make from reinstalling the
    venv inside a test when a requirements file is newer than it."""
    executable = require_executable("make")
    return subprocess.run([executable, "--no-print-directory", "-o", ".venv/.installed",
                           target, *variables], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_pending_exits_0_only_when_a_batch_waits(ct_env: dict[str, str]) -> None:
    incoming = Path(ct_env["TRAINING_INCOMING_DIR"])
    nothing = make("pending", ct_env)
    # make reports any failing recipe as its own status 2 and names the command's status.
    assert nothing.returncode == 2 and "Error 5" in nothing.stderr, nothing.stderr
    assert "no unprocessed batches" in nothing.stdout
    direct = subprocess.run([sys.executable, "-m", "training", "pending"], cwd=ROOT,
                            env=ct_env, capture_output=True, text=True, timeout=120)
    assert direct.returncode == 5

    incoming.mkdir(parents=True)
    shutil.copyfile(ROOT / "tests" / "data" / "fixtures" / "valid_sample.csv",
                    incoming / "batch.csv")
    waiting = make("pending", ct_env)
    assert waiting.returncode == 0, waiting.stdout + waiting.stderr
    assert "pending batch:" in waiting.stdout and "batch.csv" in waiting.stdout


def test_simulate_writes_a_labelled_batch_named_after_its_drift(
        ct_env: dict[str, str]) -> None:
    result = make("simulate", ct_env, "KIND=label", "AMOUNT=1", "ROWS=60", "SEED=3")
    assert result.returncode == 0, result.stdout + result.stderr
    path = Path(ct_env["TRAINING_INCOMING_DIR"]) / "simulated-label-1-seed3.csv"
    assert "SIMULATED" in result.stdout and path.name in result.stdout
    batch = pd.read_csv(path)
    assert list(batch.columns) == column_names() and len(batch) == 60
    assert (batch["credit_risk"] == "bad").mean() == pytest.approx(0.6)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left
