"""The worker's drift window: computed off the request thread, at most once per rest period,
and always over the newest rows in the end."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from app.drift_window import DriftWindow
from tests.helpers import wait_until
from training.artifact import LoadedModel
from training.drift import window_psi
from training.fast_scorer import random_applicants

REST_SECONDS = 0.5


def test_snapshots_handed_over_during_the_rest_collapse_into_one_of_the_newest_rows(
        trained_model: LoadedModel) -> None:
    reference = trained_model.card["reference"]
    reports: list[tuple[dict[str, float], int]] = []
    first = threading.Event()

    def on_report(psi: dict[str, float], rows: int) -> None:
        reports.append((psi, rows))
        first.set()

    window = DriftWindow(size=3, every=1, min_rows=1, on_report=on_report,
                         min_seconds=REST_SECONDS)
    rows: list[dict[str, Any]] = random_applicants(3, seed=19)
    handed_over = time.monotonic()
    window.add(rows[:1], reference)
    assert first.wait(10.0), "the first snapshot was not computed within 10 s"
    window.add(rows[1:2], reference)  # both due while the thread rests:
    window.add(rows[2:], reference)   # the second replaces the first
    wait_until(lambda: len(reports) == 2, 10.0, "the computation after the rest",
               interval=0.01)
    # The second computation starts a rest after the first started (which was after the
    # first snapshot was handed over).
    assert time.monotonic() - handed_over >= REST_SECONDS
    assert reports[1] == (window_psi(rows, reference), 3)
    time.sleep(REST_SECONDS * 2)  # nothing is left to compute
    assert len(reports) == 2


def test_a_window_without_rest_computes_every_snapshot_as_it_comes(
        trained_model: LoadedModel) -> None:
    computed = threading.Semaphore(0)
    window = DriftWindow(size=10, every=1, min_rows=1,
                         on_report=lambda psi, rows: computed.release())
    for row in random_applicants(3, seed=23):
        window.add([row], trained_model.card["reference"])
        assert computed.acquire(timeout=10.0), "a snapshot was not computed within 10 s"
    assert window.last_psi is not None


@pytest.mark.parametrize("seconds", [-1.0, 0.0])
def test_no_rest_is_a_rest_of_zero(seconds: float) -> None:
    window = DriftWindow(size=1, every=1, min_rows=1, on_report=lambda psi, rows: None,
                         min_seconds=seconds)
    assert window.min_seconds == 0.0
