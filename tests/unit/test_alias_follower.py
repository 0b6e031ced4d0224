"""The alias follower's refusals and its status file (the real server: tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import free_port
from training.alias_follower import AliasFollower, FollowError
from training.follower_status import STATUS_FILE, main, registry_status
from training.registry import Registry


def test_a_database_uri_is_refused_naming_what_is_needed(tmp_path: Path) -> None:
    with pytest.raises(FollowError, match="needs an http\\(s\\) MLflow server"):
        AliasFollower(f"sqlite:///{tmp_path}/mlflow.db", Registry(tmp_path / "registry"))


@pytest.mark.parametrize("content", ['{"server": "http://mlflow:5000", "in_st', "[]", None])
def test_a_missing_or_torn_status_means_the_local_folder_alone(
        tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / STATUS_FILE).write_text(content)
    assert registry_status(tmp_path) == {"server": None, "in_step": None, "checked_at": None,
                                         "error": None}


def test_the_health_check_needs_a_recent_check_whatever_its_outcome(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "registry"
    alive = ["30", "--registry", str(folder)]
    assert main(alive) == 1  # no follower ever ran
    assert "last check: never" in capsys.readouterr().err

    # A server that does not answer: the check failed, but the follower's loop is alive.
    follower = AliasFollower(f"http://127.0.0.1:{free_port()}", Registry(folder), timeout=5)
    with pytest.raises(FollowError, match="unreachable"):
        follower.sync()
    assert registry_status(folder)["in_step"] is False
    assert main(alive) == 0

    status = (folder / STATUS_FILE).read_text()
    stale = status.replace(registry_status(folder)["checked_at"], "2026-01-01T00:00:00+00:00")
    (folder / STATUS_FILE).write_text(stale)
    assert main(alive) == 1
    assert "s ago" in capsys.readouterr().err
