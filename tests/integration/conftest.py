"""Fixtures of the integration tests: real Gunicorn behind real NGINX, on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.bench import applicants
from tests import servers
from tests.helpers import require_executable
from training.registry import Registry


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Attach the logs of the servers still running to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in servers.ACTIVE:
            report.sections.append((f"{server.name} logs", server.log_tails()))


@pytest.fixture(scope="module")
def module_registry(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Path:
    """A registry shared by one module's tests, serving the session's trained model."""
    registry = Registry(tmp_path_factory.mktemp("registry") / "registry")
    registry.promote(registry.register(trained_model_dir), reason="integration tests")
    return registry.root


@pytest.fixture(scope="module")
def stack(module_registry: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[servers.Stack]:
    """Gunicorn (2 workers) behind NGINX for the tests that do not change the registry, with
    feedback switched on (FEEDBACK_TOKEN)."""
    require_executable("nginx")
    with servers.running_stack(module_registry, tmp_path_factory.mktemp("stack"),
                               env={"FEEDBACK_TOKEN": servers.FEEDBACK_TOKEN}) as running:
        yield running


@pytest.fixture(scope="session")
def applicant() -> dict[str, Any]:
    """One valid applicant from the real data set."""
    return applicants(1)[0]


@pytest.fixture(scope="session")
def batch() -> list[dict[str, Any]]:
    """Five valid applicants from the real data set."""
    return applicants(5)
