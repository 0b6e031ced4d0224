"""`docker build` is the build-time gate: invalid data or a model under the floor fails it.

Each case builds, with `make image`, a copy of the build context in which data/credit.csv is
replaced, and checks that the build fails and its output names the failed check.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pandas as pd
import pytest

from tests.container.support import BUILD_TIMEOUT, ROOT, remove_built_images, run_make
from training.schema import TARGET

pytestmark = pytest.mark.slow

FIXTURES = ROOT / "tests" / "data" / "fixtures"


def build_context(directory: Path) -> Path:
    """A copy of the build context: the .dockerignore allow-list and the Dockerfiles."""
    entries = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    for entry in [*entries, "Dockerfile", ".dockerignore"]:
        source, target = ROOT / entry, directory / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return directory


@pytest.fixture
def broken_build(docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[dict[str, str]]:
    """make variables for a build of a context copy; the caller swaps its data file."""
    tag = f"test-bad-{uuid.uuid4().hex[:8]}"
    variables = {"IMAGE_TAG": tag, "BUILD_CONTEXT": str(build_context(tmp_path / "context"))}
    yield variables
    remove_built_images(docker_client, tag)


def test_build_with_invalid_data_fails_naming_the_check(
        broken_build: dict[str, str], docker_client: docker.DockerClient) -> None:
    # An amount of 1,049,000 DM and an age of 7 (tests/data/fixtures/README.md).
    shutil.copy2(FIXTURES / "out_of_range.csv",
                 Path(broken_build["BUILD_CONTEXT"]) / "data" / "credit.csv")
    made = run_make("image", broken_build, timeout=BUILD_TIMEOUT)
    assert made.status != 0, made.tail()
    assert "python -m training validate" in made.output
    assert "[FAIL] range:amount" in made.output, made.tail()
    assert "[FAIL] range:age" in made.output
    assert not docker_client.images.list(name=f"credit-risk-app:{broken_build['IMAGE_TAG']}")


def test_build_of_a_model_under_the_floor_fails_at_the_gate(
        broken_build: dict[str, str], docker_client: docker.DockerClient) -> None:
    # Valid data whose labels were shuffled: nothing left to learn, so the holdout ROC AUC
    # falls to chance, far under the floor.
    frame = pd.read_csv(ROOT / "data" / "credit.csv")
    frame[TARGET] = frame[TARGET].sample(frac=1.0, random_state=0).to_numpy()
    frame.to_csv(Path(broken_build["BUILD_CONTEXT"]) / "data" / "credit.csv", index=False)
    made = run_make("image", broken_build, timeout=BUILD_TIMEOUT)
    assert made.status != 0, made.tail()
    assert "gate decision: failed (exit status 3)" in made.output, made.tail()
    assert "under the absolute floor" in made.output
    assert not docker_client.images.list(name=f"credit-risk-app:{broken_build['IMAGE_TAG']}")
