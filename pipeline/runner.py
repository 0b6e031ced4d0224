"""`make pipeline`: run the stages of pipeline/stages.py in order, the way Jenkins does.

One progress line per stage (name, mode, result, duration); the first failed stage stops the
run and the rest are recorded as not run. The gate's "champion kept" (exit status 4) is not a
failure: the run becomes UNSTABLE and deploy and smoke test are skipped with the reason.
Each stage's result goes to reports/stages.json as soon as it is known, so a summary written
after a crash still shows how far the run got. `make pipeline` (`run --system`) first gives
the mode what it needs from the machine and checks it (pipeline/system.py, preflight.py);
that check is recorded first, as 'preflight', and when it fails no stage runs.

Settings (environment, or make variables: `make pipeline DEPLOY=false`):
  PIPELINE_MODE  docker|native; default: docker when `docker info` answers, else native
  DEPLOY         false skips deploy and smoke test (default true)
  RETRAIN        true runs `make retrain-image` (Docker) or `make retrain` (native) in the
                 gate stage's place (default false)
  BRANCH_NAME / GIT_BRANCH  when set (Jenkins, CI) deploy runs only on the main branch
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pipeline.stages import (DOCKER, GATE_CHAMPION_KEPT, GATE_UNDER_FLOOR, MAIN_BRANCH, MODES,
                             NATIVE, STAGES, Stage)

logger = logging.getLogger("pipeline")

PASSED = "passed"
FAILED = "failed"
UNSTABLE = "unstable"
SKIPPED = "skipped"
NOT_APPLICABLE = "not applicable"
NOT_RUN = "not run"

SUCCESS_STATUS = "SUCCESS"
UNSTABLE_STATUS = "UNSTABLE"
FAILURE_STATUS = "FAILURE"
# Exit statuses of `python -m pipeline run`, documented in README.md. UNSTABLE reuses the
# gate's "champion kept" status so a script can tell it from success and from failure.
EXIT_STATUS = {SUCCESS_STATUS: 0, FAILURE_STATUS: 1, UNSTABLE_STATUS: 4}

STAGES_FILE = "stages.json"
# The check before the first stage (`make pipeline`): recorded like a stage, so the summary
# names it when it fails.
PREFLIGHT = "preflight"
OUTBOX = "outbox"
# Decisions as training/gate.py writes them to reports/gate.json.
CHAMPION_KEPT = "champion_kept"
GATE_FAILED = "failed"
DOCKER_INFO_TIMEOUT = 30.0

Executor = Callable[[str, Mapping[str, str]], int]


class SettingsError(ValueError):
    """A pipeline setting from the environment that cannot be used."""


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r}: use true or false")


def detect_mode(environ: Mapping[str, str]) -> tuple[str, str]:
    """Docker mode when an engine answers `docker info`, else native; and why."""
    forced = environ.get("PIPELINE_MODE", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise SettingsError(f"PIPELINE_MODE={forced!r}: use one of {', '.join(MODES)}")
        return forced, f"PIPELINE_MODE={forced}"
    docker = shutil.which("docker")
    if docker is None:
        return NATIVE, "no docker command on PATH"
    try:
        answer = subprocess.run([docker, "info"], capture_output=True, text=True,
                                timeout=DOCKER_INFO_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return NATIVE, f"`docker info` did not answer within {DOCKER_INFO_TIMEOUT:.0f}s"
    if answer.returncode == 0:
        return DOCKER, "a Docker engine answers `docker info`"
    detail = (answer.stderr.strip().splitlines() or ["no message"])[-1]
    return NATIVE, f"`docker info` failed: {detail}"


@dataclass(frozen=True)
class Settings:
    """What a run needs to know: where reports go, the mode, and the build parameters."""

    reports_dir: Path
    mode: str
    mode_reason: str
    deploy: bool = True
    retrain: bool = False
    branch: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 mode: str | None = None) -> "Settings":
        """Read the settings from the environment; `mode` overrides detection."""
        environ = os.environ if environ is None else environ
        if mode is not None:
            if mode not in MODES:
                raise SettingsError(f"mode {mode!r}: use one of {', '.join(MODES)}")
            chosen, reason = mode, f"--mode {mode}"
        else:
            chosen, reason = detect_mode(environ)
        branch = environ.get("BRANCH_NAME") or environ.get("GIT_BRANCH") or None
        if branch and branch.startswith("origin/"):
            branch = branch[len("origin/"):]
        return cls(reports_dir=reports_dir(environ), mode=chosen, mode_reason=reason,
                   deploy=_flag(environ, "DEPLOY", True),
                   retrain=_flag(environ, "RETRAIN", False), branch=branch)


def reports_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The reports directory: REPORTS_DIR (the Makefile exports it), default reports/."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("REPORTS_DIR") or "reports")


@dataclass
class StageResult:
    """How one stage ended."""

    name: str
    mode: str
    result: str
    target: str | None = None
    seconds: float = 0.0
    exit_status: int | None = None
    reason: str = ""


@dataclass
class RunRecord:
    """The whole run, as written to reports/stages.json."""

    settings: Settings
    started_at: str = field(default_factory=lambda: _now())
    finished_at: str | None = None
    seconds: float = 0.0
    stages: list[StageResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        """FAILURE if a stage failed, UNSTABLE if the gate kept the champion, else SUCCESS."""
        results = {stage.result for stage in self.stages}
        if FAILED in results:
            return FAILURE_STATUS
        return UNSTABLE_STATUS if UNSTABLE in results else SUCCESS_STATUS

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form of the record."""
        settings = self.settings
        return {"status": self.status, "mode": settings.mode,
                "mode_reason": settings.mode_reason, "deploy": settings.deploy,
                "retrain": settings.retrain, "branch": settings.branch,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "seconds": round(self.seconds, 1),
                "stages": [asdict(stage) for stage in self.stages]}

    def write(self) -> Path:
        """Write reports/stages.json (atomically, so a reader never sees half a file)."""
        path = self.settings.reports_dir / STAGES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.tmp")
        partial.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        partial.replace(path)
        return path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_make(target: str, environ: Mapping[str, str]) -> int:
    """Run `make <target>` with the output going straight to ours; return its exit status."""
    completed = subprocess.run(["make", "--no-print-directory", target], env=dict(environ),
                               check=False)
    return completed.returncode


def skip_reason(stage: Stage, settings: Settings, record: RunRecord) -> str | None:
    """Why a deploying stage must not run now, or None when it should run."""
    if not stage.deploys:
        return None
    if not settings.deploy:
        return "DEPLOY=false"
    if settings.branch and settings.branch != MAIN_BRANCH:
        return f"branch {settings.branch} is not {MAIN_BRANCH}; only {MAIN_BRANCH} deploys"
    if any(result.result == UNSTABLE for result in record.stages):
        return "the gate kept the champion: there is no new model to deploy"
    return None


def gate_decision(reports: Path, since: float) -> str | None:
    """The decision in reports/gate.json, if the gate stage that started at `since` wrote it.

    make turns every failing exit status into its own 2, so the gate's 3 (under the floor)
    and 4 (champion kept) reach us only through the report the gate writes."""
    path = reports / "gate.json"
    try:
        if path.stat().st_mtime < since:
            return None  # left by the build stage's floor gate, not by this gate
        decision = json.loads(path.read_text()).get("decision")
    except (OSError, ValueError, AttributeError):
        return None
    return str(decision) if decision else None


def run_stage(stage: Stage, target: str, settings: Settings, execute: Executor,
              environ: Mapping[str, str]) -> StageResult:
    """Run one stage's target and turn its exit status into a stage result."""
    wall_start, started = time.time(), time.monotonic()
    status = execute(target, environ)
    seconds = time.monotonic() - started
    result = StageResult(stage.name, settings.mode, PASSED, target, seconds, status)
    decision = gate_decision(settings.reports_dir, wall_start - 1) if stage.is_gate else None
    if status == 0:
        if decision:
            result.reason = f"gate decision: {decision}"
        return result
    if stage.is_gate and (decision == CHAMPION_KEPT or status == GATE_CHAMPION_KEPT):
        result.result = UNSTABLE
        result.reason = "champion kept: the production model stays"
    elif stage.is_gate and (decision == GATE_FAILED or status == GATE_UNDER_FLOOR):
        result.result = FAILED
        result.reason = "the model is under the quality floor"
    else:
        result.result = FAILED
        result.reason = f"make {target} exited with status {status}"
    return result


def log_progress(index: int, result: StageResult) -> None:
    """The one progress line of a stage: name, mode, result, duration, target and reason."""
    target = f"make {result.target}" if result.target else "-"
    line = (f"stage {index}/{len(STAGES)}  {result.name:<18} {result.mode:<6}  "
            f"{result.result.upper():<14} {result.seconds:7.1f}s  {target}")
    if result.reason:
        line += f"  ({result.reason})"
    (logger.error if result.result == FAILED else logger.info)(line)


def run(settings: Settings, execute: Executor = run_make,
        environ: Mapping[str, str] | None = None,
        preflight: StageResult | None = None) -> RunRecord:
    """Run every stage in order, record each result, stop at the first failure.

    `preflight`, when given, is recorded first; when it failed, no stage runs."""
    environ = dict(os.environ if environ is None else environ)
    # The targets may want to know how the runner decided (e.g. which smoke test to expect).
    environ["PIPELINE_MODE"] = settings.mode
    record = RunRecord(settings)
    started = time.monotonic()
    logger.info("pipeline: %d stages, %s mode (%s)%s%s", len(STAGES), settings.mode,
                settings.mode_reason, ", RETRAIN" if settings.retrain else "",
                "" if settings.deploy else ", DEPLOY=false")
    stopped_by: str | None = None
    if preflight is not None:
        record.stages.append(preflight)
        record.write()
        (logger.error if preflight.result == FAILED else logger.info)(
            "preflight %s %.1fs: %s", preflight.result.upper(), preflight.seconds,
            preflight.reason)
        if preflight.result == FAILED:
            stopped_by = preflight.name
    for index, stage in enumerate(STAGES, start=1):
        target = stage.target(settings.mode, settings.retrain)
        if stopped_by is not None:
            result = StageResult(stage.name, settings.mode, NOT_RUN, target,
                                 reason=f"stage '{stopped_by}' failed")
        elif target is None:
            result = StageResult(stage.name, settings.mode, NOT_APPLICABLE,
                                 reason=stage.native_note)
        elif (reason := skip_reason(stage, settings, record)) is not None:
            result = StageResult(stage.name, settings.mode, SKIPPED, target, reason=reason)
        else:
            logger.info("stage %d/%d  %s: make %s", index, len(STAGES), stage.name, target)
            result = run_stage(stage, target, settings, execute, environ)
        record.stages.append(result)
        record.seconds = time.monotonic() - started
        record.write()
        log_progress(index, result)
        if result.result == FAILED:
            stopped_by = stage.name
    record.finished_at = _now()
    record.seconds = time.monotonic() - started
    record.write()
    logger.info("pipeline %s after %.1fs (%s mode)", record.status, record.seconds,
                settings.mode)
    return record


def clean_reports(directory: Path) -> int:
    """Remove the previous run's report files (the outbox stays); return how many."""
    if not directory.is_dir():
        return 0
    removed = 0
    for entry in directory.iterdir():
        if entry.is_file() or entry.is_symlink():
            entry.unlink()
            removed += 1
        elif entry.is_dir() and entry.name != OUTBOX:
            shutil.rmtree(entry)
            removed += 1
    return removed
