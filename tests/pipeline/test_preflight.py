"""The system step and the pipeline's preflight: what is missing, what is said, what apt does.

apt-get is replaced by a script on PATH that records its calls (and fails when asked), and
the components by ones whose executables do not exist, so these tests change nothing on the
machine; the real step runs at the start of every `make test` and `make pipeline`.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pipeline import preflight, runner, system
from pipeline.preflight import Component, Job
from pipeline.report import write_summary
from pipeline.stages import NATIVE, STAGES

ABSENT_NGINX = Component("NGINX", ("nginx",), ("no-such-nginx-here",))
ABSENT_CHROMIUM = Component("Chromium", ("chromium",), ("no-such-chromium-here",))
PRESENT = Component("a shell", ("bash",), ("sh",))
FAKE_APT = """#!/bin/sh
echo "$@" >> "{calls}"
if [ -n "$APT_FAILS" ]; then echo "E: Unable to locate package $APT_FAILS" >&2; exit 100; fi
"""


@pytest.fixture
def fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An apt-get on PATH that records its arguments; returns the file they go to."""
    calls = tmp_path / "apt-calls.txt"
    script = tmp_path / "bin" / "apt-get"
    script.parent.mkdir()
    script.write_text(FAKE_APT.format(calls=calls))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(system, "APT_LOG", tmp_path / "apt.log")
    return calls


def with_job(monkeypatch: pytest.MonkeyPatch, *components: Component) -> str:
    """Register a job needing `components` (no engine) and return its name."""
    monkeypatch.setitem(preflight.JOBS, "demo", Job("make demo", components))
    return "demo"


def test_message_names_every_missing_component_and_the_install_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "is_root", lambda: False)
    monkeypatch.setattr(preflight, "has_apt", lambda: True)
    job = with_job(monkeypatch, ABSENT_NGINX, PRESENT, ABSENT_CHROMIUM)
    with pytest.raises(system.SetupError) as raised:
        system.ensure(job)
    message = str(raised.value)
    assert message == ("make demo needs NGINX, Chromium, not installed; install: "
                       "sudo apt-get install -y --no-install-recommends nginx chromium")


def test_without_apt_the_message_names_the_packages_to_look_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "has_apt", lambda: False)
    message = preflight.missing_message(Job("make demo", (ABSENT_NGINX,)), [ABSENT_NGINX])
    assert message.endswith("install them with your system's package manager "
                            "(Debian packages: nginx)")


def test_nothing_missing_runs_no_apt(monkeypatch: pytest.MonkeyPatch, fake_apt: Path) -> None:
    monkeypatch.setattr(preflight, "is_root", lambda: True)
    system.ensure(with_job(monkeypatch, PRESENT))
    assert not fake_apt.exists()


def test_missing_packages_are_installed_with_apt_as_root(
        monkeypatch: pytest.MonkeyPatch, fake_apt: Path) -> None:
    monkeypatch.setattr(preflight, "is_root", lambda: True)
    monkeypatch.setattr(preflight, "has_apt", lambda: True)
    # The fake apt installs nothing, so the step then reports the component still missing.
    with pytest.raises(system.SetupError, match="needs Chromium, not installed"):
        system.ensure(with_job(monkeypatch, PRESENT, ABSENT_CHROMIUM))
    assert fake_apt.read_text().splitlines() == [
        "update -qq", "install -y -qq --no-install-recommends chromium"]


def test_apt_failure_stops_with_apts_error_and_the_package(
        monkeypatch: pytest.MonkeyPatch, fake_apt: Path, capfd: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(preflight, "is_root", lambda: True)
    monkeypatch.setattr(preflight, "has_apt", lambda: True)
    monkeypatch.setenv("APT_FAILS", "chromium")
    with pytest.raises(system.SetupError) as raised:
        system.ensure(with_job(monkeypatch, ABSENT_CHROMIUM))
    assert str(raised.value) == ("`apt-get update` failed (status 100) installing chromium; "
                                 "apt's error is above")
    assert "E: Unable to locate package chromium" in capfd.readouterr().err


def test_base_images_are_the_dockerfiles_defaults() -> None:
    assert preflight.base_images() == ["python:3.11-slim-bookworm", "nginx:1.27-bookworm"]


def test_every_job_names_real_components() -> None:
    for job in preflight.JOBS.values():
        assert job.components and set(job.components) <= set(preflight.COMPONENTS)
    assert preflight.providing("nginx") is preflight.NGINX
    assert preflight.providing("chromedriver") is preflight.CHROMEDRIVER


def test_failed_preflight_runs_no_stage_and_the_summary_names_it(tmp_path: Path) -> None:
    ran: list[str] = []
    settings = runner.Settings(reports_dir=tmp_path, mode=NATIVE, mode_reason="test")
    reason = "make pipeline (native mode) needs NGINX, not installed; install: apt-get ..."
    checked = runner.StageResult(runner.PREFLIGHT, NATIVE, runner.FAILED, seconds=0.2,
                                 reason=reason)
    record = runner.run(settings, execute=lambda target, env: ran.append(target) or 0,
                        environ={}, preflight=checked)
    assert ran == [] and record.status == runner.FAILURE_STATUS
    stages = json.loads((tmp_path / "stages.json").read_text())["stages"]
    assert [s["name"] for s in stages] == [runner.PREFLIGHT, *(s.name for s in STAGES)]
    assert {s["result"] for s in stages[1:]} <= {runner.NOT_RUN, runner.NOT_APPLICABLE}
    summary = write_summary(tmp_path, environ={})
    assert summary.subject.startswith("credit-risk FAILURE: stage 'preflight' failed")
    assert f"FAILED STAGE: preflight - {reason}" in summary.text
