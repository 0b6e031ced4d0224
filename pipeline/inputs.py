"""Read what a pipeline run left in reports/: tests, coverage, lint, model card, gate, stages.

Every reader tolerates a missing or broken file: a failed early stage leaves most of them
absent, and the summary must still be written and say what is missing and why.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.deployment import REPORT_FILE as DEPLOY_FILE
from training.report_names import (CANARY_PLOT_FILE, CANARY_REPORT_FILE, MLFLOW_RUN_FILE,
                                   PLOT_FILES, PLOTS_DIR)

# The Jenkins variables the summary shows (the build link, the job, the commit).
BUILD_VARIABLES = ("BUILD_URL", "JOB_NAME", "BUILD_NUMBER", "GIT_COMMIT", "BRANCH_NAME",
                   "GIT_BRANCH")
FLAKE8_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<code>[A-Z]+\d+) ")
MAX_FAILED_CASES = 10

# What each input means when it is absent: the summary lists these for a partial run.
MISSING_MEANS = {
    "stages.json": "no stage record: the run did not go through `make pipeline` "
                   "(in Jenkins, the stage view shows each stage)",
    "junit-*.xml": "no test reports: no test stage ran",
    "coverage.xml": "no coverage: no test stage finished, or coverage was not combined",
    "flake8.txt": "no lint report: the lint stage did not run",
    "model-card.json": "no model card: no model was trained",
    "gate.json": "no gate result: the gate did not run",
}


@dataclass
class TestCounts:
    """One JUnit file's totals and the names of its failed cases."""

    kind: str
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    failed_cases: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        """Tests that neither failed, errored nor were skipped."""
        return max(self.tests - self.failures - self.errors - self.skipped, 0)


@dataclass
class Inputs:
    """Everything the summary is built from; None where a file is missing."""

    reports_dir: Path
    stages: dict[str, Any] | None = None
    tests: list[TestCounts] = field(default_factory=list)
    coverage: dict[str, float | int] | None = None
    lint: dict[str, Any] | None = None
    card: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    bench: dict[str, Any] | None = None  # the last `make bench`, when one ran here
    plots: list[Path] = field(default_factory=list)  # the model's holdout plots, in order
    mlflow_run: dict[str, Any] | None = None  # the training run, when it was tracked
    deployment: dict[str, Any] | None = None  # where it deployed, what each replica serves
    canary: dict[str, Any] | None = None  # the last canary-report, when one ran here
    canary_plot: Path | None = None  # its plot of the two arms
    build: dict[str, str] = field(default_factory=dict)
    missing: list[tuple[str, str]] = field(default_factory=list)

    def note_missing(self, name: str, why: str | None = None) -> None:
        """Record an absent or unreadable input and what that means."""
        self.missing.append((name, why or MISSING_MEANS.get(name, "missing")))


def collect(reports_dir: Path, environ: Mapping[str, str]) -> Inputs:
    """Read every report file there is; note each one that is missing or unreadable."""
    inputs = Inputs(reports_dir=reports_dir,
                    build={name: environ[name] for name in BUILD_VARIABLES
                           if environ.get(name)})
    inputs.stages = _read(inputs, "stages.json", _json)
    inputs.tests = read_junit_files(inputs)
    inputs.coverage = _read(inputs, "coverage.xml", read_coverage)
    inputs.lint = _read(inputs, "flake8.txt", read_flake8)
    inputs.card = _read(inputs, "model-card.json", _json)
    inputs.gate = _read(inputs, "gate.json", _json)
    # The image is optional: only Docker mode builds one.
    image = reports_dir / "image.json"
    inputs.image = (_read(inputs, "image.json", _json) if image.exists()
                    else inspect_image(environ, (inputs.stages or {}).get("mode")))
    # Optional too: `make bench` is run by people, not by every pipeline run.
    if (reports_dir / "bench.json").exists():
        inputs.bench = _read(inputs, "bench.json", _json)
    inputs.plots = [reports_dir / PLOTS_DIR / name for name in PLOT_FILES
                    if (reports_dir / PLOTS_DIR / name).is_file()]
    if inputs.card is not None and not inputs.plots:
        inputs.note_missing(f"{PLOTS_DIR}/", "no plots: the training run drew none "
                            "(matplotlib comes with requirements-training.txt)")
    # Written by the MLflow tracking (run_id, experiment_id, tracking_uri, run_url) when
    # the training run was tracked; no file, no link.
    if (reports_dir / MLFLOW_RUN_FILE).exists():
        inputs.mlflow_run = _read(inputs, MLFLOW_RUN_FILE, _json)
    # Written by the smoke test's replica check (pipeline/deployment.py) once it passed.
    if (reports_dir / DEPLOY_FILE).exists():
        inputs.deployment = _read(inputs, DEPLOY_FILE, _json)
    # Written by `make canary-report` (the canary job, or a person).
    if (reports_dir / CANARY_REPORT_FILE).exists():
        inputs.canary = _read(inputs, CANARY_REPORT_FILE, _json)
    if (reports_dir / CANARY_PLOT_FILE).is_file():
        inputs.canary_plot = reports_dir / CANARY_PLOT_FILE
    return inputs


def inspect_image(environ: Mapping[str, str], mode: str | None) -> dict[str, Any] | None:
    """Name and size of the app image the Makefile names (APP_IMAGE:IMAGE_TAG), if built."""
    docker = shutil.which("docker")
    if mode == "native" or not environ.get("APP_IMAGE") or docker is None:
        return None
    reference = f"{environ['APP_IMAGE']}:{environ.get('IMAGE_TAG') or 'latest'}"
    try:
        answer = subprocess.run([docker, "image", "inspect", "--format", "{{.Size}}", reference],
                                capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if answer.returncode != 0 or not answer.stdout.strip().isdigit():
        return None
    return {"image": reference, "size_bytes": int(answer.stdout.strip())}


def _read(inputs: Inputs, name: str, reader: Any) -> Any:
    path = inputs.reports_dir / name
    if not path.is_file():
        inputs.note_missing(name)
        return None
    try:
        return reader(path)
    except (OSError, ValueError, ElementTree.ParseError) as error:
        inputs.note_missing(name, f"unreadable: {error}")
        return None


def _json(path: Path) -> dict[str, Any]:
    value = json.loads(path.read_text())
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def read_junit_files(inputs: Inputs) -> list[TestCounts]:
    """Counts per JUnit file `junit-<kind>.xml`, in name order."""
    results = []
    for path in sorted(inputs.reports_dir.glob("junit-*.xml")):
        kind = path.stem[len("junit-"):]
        try:
            results.append(read_junit(path, kind))
        except (OSError, ElementTree.ParseError) as error:
            inputs.note_missing(path.name, f"unreadable: {error}")
    if not results:
        inputs.note_missing("junit-*.xml")
    return results


def read_junit(path: Path, kind: str) -> TestCounts:
    """Totals of one JUnit XML file (pytest's, or the model gate's), counted per test case."""
    root = ElementTree.parse(path).getroot()
    counts = TestCounts(kind)
    for case in root.iter("testcase"):
        counts.tests += 1
        outcome = next((child.tag for child in case
                        if child.tag in ("failure", "error", "skipped")), None)
        if outcome == "skipped":
            counts.skipped += 1
            continue
        if outcome is None:
            continue
        if outcome == "failure":
            counts.failures += 1
        else:
            counts.errors += 1
        if len(counts.failed_cases) < MAX_FAILED_CASES:
            name = ".".join(part for part in (case.get("classname"), case.get("name")) if part)
            counts.failed_cases.append(name)
    return counts


def read_coverage(path: Path) -> dict[str, float | int]:
    """Line and branch rates and counts from a Cobertura coverage.xml."""
    root = ElementTree.parse(path).getroot()
    if root.tag != "coverage":
        raise ValueError(f"not a Cobertura report (root element <{root.tag}>)")
    result: dict[str, float | int] = {"line_rate": float(root.get("line-rate", "nan")),
                                      "branch_rate": float(root.get("branch-rate", "nan"))}
    for name in ("lines-covered", "lines-valid", "branches-covered", "branches-valid"):
        if root.get(name) is not None:
            result[name.replace("-", "_")] = int(root.get(name, "0"))
    return result


def read_flake8(path: Path) -> dict[str, Any]:
    """The number of flake8 findings, the most frequent codes and the first findings."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    codes = Counter(match["code"] for line in lines if (match := FLAKE8_LINE.match(line)))
    return {"count": len(lines), "codes": codes.most_common(5), "first": lines[:5]}
