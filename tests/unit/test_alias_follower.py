"""The alias follower's refusals and its status file (the real server: tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.alias_follower import STATUS_FILE, AliasFollower, FollowError, registry_status
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
