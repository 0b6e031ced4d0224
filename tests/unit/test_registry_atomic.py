"""Promotion replaces the production pointer atomically: a reader sees the old name or the
new one, never an empty or half-written file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sklearn
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

from tests.conftest import DATA_FILE
from training.artifact import save_artifact
from training.data import load_dataset
from training.registry import POINTER_FILE, Registry
from training.schema import TARGET, feature_names
from training.train import reference_profile


@pytest.fixture
def tiny_artifact(tmp_path: Path) -> Path:
    """A servable artifact that costs no model search: a prior-only classifier over the raw
    fields, with the card promote checks (threshold, positive label, reference)."""
    directory = tmp_path / "artifact"
    frame = load_dataset(DATA_FILE)
    model = Pipeline([("model", DummyClassifier(strategy="prior"))]).fit(
        frame[feature_names()], frame[TARGET])
    save_artifact(directory, model, {
        "created_at": "2026-12-01T00:00:00+00:00", "threshold": 0.5, "positive_label": "bad",
        "environment": {"scikit_learn": sklearn.__version__},
        "reference": reference_profile(frame)})
    return directory


def test_promote_replaces_the_pointer_by_rename_not_in_place(
        tmp_path: Path, tiny_artifact: Path) -> None:
    registry = Registry(tmp_path / "registry")
    first = registry.register(tiny_artifact, version="v1")
    registry.promote(first)
    pointer = registry.root / POINTER_FILE
    before = pointer.stat().st_ino
    registry.promote(first)
    # An in-place write truncates and rewrites the same inode: a reader in between reads
    # an empty file and concludes that nothing is promoted.
    assert pointer.stat().st_ino != before
    assert pointer.read_text() == "v1\n"
    assert sorted(p.name for p in registry.root.iterdir() if p.name.startswith(f".{POINTER_FILE}")
                  ) == [], "no temporary pointer file is left behind"


def test_a_concurrent_reader_never_sees_a_missing_or_partial_pointer(
        tmp_path: Path, tiny_artifact: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register(tiny_artifact, version="v1")
    registry.register(tiny_artifact, version="v2")
    registry.promote("v1")
    seen: set[str | None] = set()
    done = threading.Event()

    def read_until_done() -> None:
        while not done.is_set():
            seen.add(registry.production_version())

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for version in ["v2", "v1"] * 25:
            registry.promote(version)
    finally:
        done.set()
        reader.join(timeout=30)
    assert seen <= {"v1", "v2"}, f"the reader saw {seen - {'v1', 'v2'}}"
