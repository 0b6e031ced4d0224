"""`make report`: reports/summary.html and summary.txt, the body of the build e-mail.

Built from what the run left in reports/ (pipeline/inputs.py): overall status, each stage's
result and duration, test counts per kind, coverage, lint findings, the model's metrics next
to the champion's, its holdout plots, the gate decision with its reasons, the links to the
build and the MLflow run when known, and what is missing. The HTML comes from
pipeline/templates/summary.html (Jinja2, autoescaped): inline styles and tables only,
because mail clients drop style sheets.

The plots are separate PNG files, not data: URIs. summary.html refers to them beside it
(reports/plots/), which works when the file is opened from reports/ and in Jenkins' archived
artifacts (served with a Content-Security-Policy whose img-src allows the same origin but
not data: URIs), and keeps the HTML small. The e-mail carries them as inline parts
referenced by Content-ID (pipeline/notify.py), so they show without remote loading; most
webmail clients drop data: URIs anyway.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipeline.inputs import Inputs, TestCounts, collect
from training.report_names import CANARY_PLOT_CAPTION, PLOT_FILES, PLOT_PIXELS, PLOTS_DIR

if TYPE_CHECKING:
    import jinja2

logger = logging.getLogger("pipeline")

UNKNOWN = "UNKNOWN"
COLOURS = {"SUCCESS": "#1a7f37", "UNSTABLE": "#9a6700", "FAILURE": "#cf222e",
           "ABORTED": "#57606a", UNKNOWN: "#57606a"}
RESULT_COLOURS = {"passed": "#1a7f37", "unstable": "#9a6700", "failed": "#cf222e",
                  "skipped": "#57606a", "not applicable": "#57606a", "not run": "#8c959f"}
DECISIONS = {"promoted": "promoted: the new model serves production",
             "promoted as canary": "promoted as canary: the new model serves a share of the "
                                   "requests beside the champion until canary-report decides",
             "champion_kept": "champion kept: the production model stays",
             "failed": "failed: the model is under the quality floor",
             "floor_passed": "floor passed; champion/challenger has not run yet"}
DECISION_COLOURS = {"promoted": "#1a7f37", "promoted as canary": "#1a7f37",
                    "champion_kept": "#9a6700", "failed": "#cf222e"}
FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif"
TABLE_CELL = "padding:6px 10px;border-bottom:1px solid #d8dee4;text-align:left;vertical-align:top"
PLOT_WIDTH = PLOT_PIXELS[0]  # as drawn: the mail client lays the page out before loading
CONTENT_ID_DOMAIN = "credit-risk.summary"
GATE_KIND = "gate"  # reports/junit-gate.xml, written by training/gate.py


@dataclass(frozen=True)
class InlineImage:
    """A plot the e-mail carries as an inline part, and the Content-ID its HTML refers to."""

    path: Path
    content_id: str  # without angle brackets, as `cid:` URLs write it


@dataclass
class Summary:
    """The rendered summary and what the e-mail needs: subject, bodies, inline images."""

    status: str
    headline: str
    subject: str
    html: str  # summary.html: plots linked beside it in reports/plots/
    text: str
    mail_html: str  # the same page with the plots as cid: references
    images: list[InlineImage]  # the plots, as the e-mail's inline parts


def overall_status(inputs: Inputs, environ: Mapping[str, str]) -> tuple[str, str]:
    """The build status and where it comes from: Jenkins, the stage record, or the reports."""
    if environ.get("BUILD_RESULT"):
        return environ["BUILD_RESULT"].upper(), "the Jenkins build result"
    if inputs.stages and inputs.stages.get("status"):
        return str(inputs.stages["status"]), "the stage record"
    decision = (inputs.gate or {}).get("decision")
    # The gate's own JUnit file fails a check when the champion is kept; its decision,
    # not that check, says what the build is.
    failed_tests = any(t.failures or t.errors for t in inputs.tests if t.kind != GATE_KIND)
    if failed_tests or decision == "failed":
        return "FAILURE", "the report files (no stage record)"
    if decision == "champion_kept":
        return "UNSTABLE", "the report files (no stage record)"
    if not inputs.tests and inputs.gate is None:
        return UNKNOWN, "nothing: no stage record and no reports"
    return "SUCCESS", "the report files (no stage record)"


def failed_stage(inputs: Inputs) -> dict[str, Any] | None:
    """The stage that failed, from the stage record."""
    for stage in (inputs.stages or {}).get("stages", []):
        if stage.get("result") == "failed":
            return stage
    return None


def headline(status: str, inputs: Inputs) -> str:
    """One phrase for the subject: the failed stage, or the gate decision."""
    stage = failed_stage(inputs)
    if stage is not None:
        return f"stage '{stage.get('name')}' failed"
    decision = (inputs.gate or {}).get("decision")
    version = _challenger(inputs).get("version")
    if decision == "champion_kept":
        return "champion kept, nothing deployed"
    if decision == "promoted":
        how = " as canary" if (inputs.gate or {}).get("promotion") == "canary" else ""
        return f"model {version} promoted{how}" if version else f"model promoted{how}"
    if status == "FAILURE":
        return "build failed"
    if status == UNKNOWN:
        return "no results found in reports/"
    return "all stages passed" if status == "SUCCESS" else status.lower()


def where(inputs: Inputs) -> str:
    """The job and build number in Jenkins, else 'local run'."""
    build = inputs.build
    if build.get("JOB_NAME"):
        return f"{build['JOB_NAME']} #{build.get('BUILD_NUMBER', '?')}"
    return "local run"


def build_summary(reports_dir: Path, environ: Mapping[str, str] | None = None) -> Summary:
    """Read reports/ and render the summary (nothing is written)."""
    environ = os.environ if environ is None else environ
    inputs = collect(reports_dir, environ)
    status, basis = overall_status(inputs, environ)
    phrase = headline(status, inputs)
    subject = f"credit-risk {status}: {phrase} ({where(inputs)})"
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    images = plot_images(inputs)
    content_ids = {image.path: image.content_id for image in images}
    return Summary(status, phrase, subject,
                   render_html(inputs, status, basis, phrase, generated),
                   render_text(inputs, status, basis, phrase, generated),
                   mail_html=render_html(inputs, status, basis, phrase, generated,
                                         lambda path: f"cid:{content_ids[path]}"),
                   images=images)


def write_summary(reports_dir: Path, environ: Mapping[str, str] | None = None) -> Summary:
    """Render the summary and write summary.html, summary.txt and summary.json."""
    summary = build_summary(reports_dir, environ)
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "summary.html").write_text(summary.html)
    (reports_dir / "summary.txt").write_text(summary.text)
    (reports_dir / "summary.json").write_text(json.dumps(
        {"status": summary.status, "headline": summary.headline, "subject": summary.subject},
        indent=2) + "\n")
    logger.info("summary: %s -> %s", summary.subject, reports_dir / "summary.html")
    return summary


# --- shared pieces ------------------------------------------------------------------------
def _challenger(inputs: Inputs) -> dict[str, Any]:
    """The model this build produced: the gate's view of it, else the model card."""
    if inputs.gate and isinstance(inputs.gate.get("challenger"), dict):
        return inputs.gate["challenger"]
    if inputs.card:
        return {"version": inputs.card.get("version"),
                "model_family": inputs.card.get("model_family"),
                "metrics": inputs.card.get("metrics", {})}
    return {}


def metric_rows(inputs: Inputs) -> list[tuple[str, str, str, str]]:
    """(metric, this build, champion, difference) for every scalar metric the gate compared."""
    challenger = _challenger(inputs).get("metrics") or {}
    champion = ((inputs.gate or {}).get("champion") or {}).get("metrics") or {}
    rows = []
    for name, value in challenger.items():
        if not isinstance(value, float):
            continue  # counts and the confusion matrix are not comparable scores
        other = champion.get(name)
        difference = f"{value - other:+.4f}" if isinstance(other, float) else ""
        rows.append((name, f"{value:.4f}", f"{other:.4f}" if isinstance(other, float) else "-",
                     difference))
    return rows


def stage_rows(inputs: Inputs) -> list[tuple[str, str, str, str, str]]:
    """(stage, mode, result, duration, note) per recorded stage."""
    rows = []
    for stage in (inputs.stages or {}).get("stages", []):
        target = f"make {stage['target']}" if stage.get("target") else ""
        reason = str(stage.get("reason") or "")
        note = reason if target in reason else "; ".join(p for p in (target, reason) if p)
        ran = stage.get("result") in ("passed", "failed", "unstable")
        duration = f"{float(stage.get('seconds') or 0):.1f}s" if ran else "-"
        rows.append((str(stage.get("name")), str(stage.get("mode", "")),
                     str(stage.get("result", "")), duration, note))
    return rows


def test_rows(tests: list[TestCounts]) -> list[tuple[str, int, int, int, int, int]]:
    """(kind, passed, failed, errors, skipped, total) per JUnit file."""
    return [(t.kind, t.passed, t.failures, t.errors, t.skipped, t.tests) for t in tests]


def coverage_phrase(coverage: Mapping[str, float | int] | None) -> str:
    """'lines 87.1% (1200/1378), branches 70.2% (...)' or 'not available'."""
    if not coverage:
        return "not available"
    parts = []
    for kind, rate, covered, valid in (("lines", "line_rate", "lines_covered", "lines_valid"),
                                       ("branches", "branch_rate", "branches_covered",
                                        "branches_valid")):
        text = f"{kind} {100 * float(coverage[rate]):.1f}%"
        if valid in coverage:
            text += f" ({coverage.get(covered, 0)}/{coverage[valid]})"
        parts.append(text)
    return ", ".join(parts)


def lint_phrase(lint: Mapping[str, Any] | None) -> str:
    """'0 flake8 findings' / '3 flake8 findings (E501 x2, F401 x1)' / 'not available'."""
    if lint is None:
        return "not available"
    text = f"{lint['count']} flake8 finding{'' if lint['count'] == 1 else 's'}"
    if lint.get("codes"):
        text += " (" + ", ".join(f"{code} x{n}" for code, n in lint["codes"]) + ")"
    return text


def image_phrase(inputs: Inputs) -> str | None:
    """'credit-risk:tag, 412.3 MB' when the image is known; None in native mode."""
    if inputs.image:
        size = inputs.image.get("size_bytes")
        shown = f"{size / 1e6:.1f} MB" if isinstance(size, (int, float)) else "size unknown"
        return f"{inputs.image.get('image', 'image')}, {shown}"
    if (inputs.stages or {}).get("mode") == "docker":
        return "size unknown (no reports/image.json)"
    return None  # native mode builds no image


def bench_lines(bench: Mapping[str, Any]) -> list[str]:
    """The last benchmark's headline figures, one phrase per line."""
    endpoints = bench.get("endpoints") or {}
    lines = [f"{bench.get('time', 'time unknown')}, model {bench.get('model_version')}, "
             f"{bench.get('tool', 'load generator unknown')}"]
    for name, result in endpoints.items():
        latency = result.get("latency_ms") or {}
        lines.append(f"{name}: {result.get('requests_per_second')} req/s, "
                     f"p50 {latency.get('p50')} ms, p99 {latency.get('p99')} ms")
    return lines


def bench_target_rows(bench: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(target, value, goal, met) for each target the benchmark judged."""
    met = {True: "yes", False: "no", None: "-"}
    return [(str(item.get("what")), str(item.get("value")), str(item.get("target")),
             met.get(item.get("met"), "-")) for item in bench.get("targets") or []]


def mutation_phrase(reports_dir: Path) -> str | None:
    """The score of the last `make mutation` (reports/mutation.json), None when it never ran."""
    path = reports_dir / "mutation.json"
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
        judged = result["mutants"] - len(result["equivalent"])
        return (f"{100 * result['score']:.1f}% of mutants killed ({result['killed']}/{judged}; "
                f"{result['survived']} survived, {len(result['equivalent'])} equivalent)")
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"reports/mutation.json is unreadable ({error!r})"


def context_items(inputs: Inputs, basis: str, generated: str) -> list[tuple[str, str]]:
    """Label/value pairs for the header: job, commit, branch, mode, duration."""
    build, stages = inputs.build, inputs.stages or {}
    items = [("where", where(inputs))]
    if build.get("GIT_COMMIT"):
        items.append(("commit", build["GIT_COMMIT"][:12]))
    branch = build.get("BRANCH_NAME") or build.get("GIT_BRANCH") or stages.get("branch")
    if branch:
        items.append(("branch", str(branch)))
    if stages.get("mode"):
        items.append(("mode", f"{stages['mode']} ({stages.get('mode_reason', '')})"))
    if stages.get("seconds") is not None:
        items.append(("duration", f"{float(stages['seconds']):.0f}s"))
    flags = [name for name, on in (("RETRAIN", stages.get("retrain")),
                                   ("DEPLOY=false", stages.get("deploy") is False)) if on]
    if flags:
        items.append(("parameters", ", ".join(flags)))
    items.append(("status from", basis))
    items.append(("generated", generated))
    return items


# --- HTML ---------------------------------------------------------------------------------
@functools.cache
def templates() -> jinja2.Environment:
    """The summary's templates, autoescaped like the service's pages (app/templates)."""
    # Imported here, not at the top: the pipeline's CLI runs on the system Python, whose
    # Jinja2 (python3-jinja2) the system step installs, so `make system` must start without.
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("pipeline", "templates"),
                              autoescape=jinja2.select_autoescape(["html"]),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True)


def web_url(value: object) -> str | None:
    """`value` when it is an http(s) URL; None otherwise (a `javascript:` link in a report
    file would survive escaping)."""
    text = str(value or "")
    return text if urlsplit(text).scheme in ("http", "https") and "//" in text else None


def link_items(inputs: Inputs) -> list[tuple[str, str]]:
    """(label, URL) of the build's pages in Jenkins and of the MLflow run, where known."""
    links = []
    url = web_url(inputs.build.get("BUILD_URL"))
    if url:
        base = url if url.endswith("/") else url + "/"
        links += [("build", base), ("console log", base + "console"),
                  ("test results", base + "testReport/")]
    run_url = web_url((inputs.mlflow_run or {}).get("run_url"))
    if run_url:
        links.append(("MLflow run", run_url))
    return links


def plot_images(inputs: Inputs) -> list[InlineImage]:
    """The holdout plots in reports/plots/ and the canary's plot, each with a Content-ID for
    the e-mail."""
    paths = inputs.plots + ([inputs.canary_plot] if inputs.canary_plot else [])
    return [InlineImage(path, make_msgid(idstring=path.stem, domain=CONTENT_ID_DOMAIN)[1:-1])
            for path in paths]


def deployment_lines(deployment: Mapping[str, Any]) -> list[str]:
    """Where the build deployed: target, name and public URL."""
    return [f"{deployment.get('target')}: {deployment.get('name')}, "
            f"{deployment.get('url') or 'URL unknown'}"]


def replica_rows(deployment: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """(replica, node, image, revision, model version, canary) for each replica the smoke
    test asked."""
    return [(str(replica.get("name")), str(replica.get("node")), str(replica.get("image")),
             str(replica.get("revision") or "-")[:12], str(replica.get("model_version")),
             str(replica.get("canary") or "-"))
            for replica in deployment.get("replicas") or []]


REPLICA_HEADERS = ["replica", "node", "image", "revision", "model", "canary"]


def gate_decision(gate: Mapping[str, Any]) -> str:
    """The gate's decision, told apart when a promotion went to a canary first."""
    decision = str(gate.get("decision"))
    return f"{decision} as canary" if decision == "promoted" and \
        gate.get("promotion") == "canary" else decision


def canary_lines(canary: Mapping[str, Any]) -> list[str]:
    """The canary report's recommendation, why, its test, and what was done."""
    release = canary.get("release") or {}
    lines = [f"Recommendation: {str(canary.get('recommendation')).upper()}"
             + (f" for canary {release.get('version')} ({release.get('mode')}, share "
                f"{release.get('share')}) beside production {canary.get('production_version')}"
                if release else "")]
    lines += [str(reason) for reason in canary.get("reasons") or []]
    if canary.get("test"):
        lines.append(f"Test: {canary['test']}: {canary.get('test_result')}")
    if canary.get("more_outcomes_needed"):
        lines.append(f"About {canary['more_outcomes_needed']} more labelled outcomes per arm "
                     "are needed to decide.")
    lines += [f"Done: {action}" for action in canary.get("actions") or []]
    return lines


def canary_rows(canary: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One row per arm: the figures the report compares, side by side."""
    def shown(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
    return [(arm, str(stats.get("version")), *(shown(stats.get(key)) for key in CANARY_COLUMNS))
            for arm, stats in (canary.get("arms") or {}).items()]


CANARY_COLUMNS = ("rows", "errors", "p95_ms", "labelled", "roc_auc", "recall_bad")
CANARY_HEADERS = ["arm", "version", "rows", "failed", "p95 ms", "labelled", "ROC AUC",
                  "recall on bad"]


def quality_lines(inputs: Inputs) -> list[str]:
    """Coverage, lint, image and mutation phrases, as the summary's 'Quality' lines."""
    lines = [f"Coverage: {coverage_phrase(inputs.coverage)}", f"Lint: {lint_phrase(inputs.lint)}"]
    image = image_phrase(inputs)
    if image:
        lines.append(f"Image: {image}")
    mutation = mutation_phrase(inputs.reports_dir)
    if mutation:
        lines.append(f"Mutation testing: {mutation}")
    return lines


def html_context(inputs: Inputs, status: str, basis: str, phrase: str, generated: str,
                 image_source: Callable[[Path], str]) -> dict[str, Any]:
    """Everything the template shows, as plain values; `image_source` gives each plot's
    src (a path beside summary.html, or a cid: reference in the e-mail)."""
    items = context_items(inputs, basis, generated)
    challenger = _challenger(inputs)
    champion = (inputs.gate or {}).get("champion") or {}
    model = None
    if challenger:
        model = {"lines": [f"This build: {challenger.get('version') or 'candidate'} "
                           f"({challenger.get('model_family') or 'unknown family'})",
                           "Champion (production): " + (
                               str(champion.get("version")) if champion
                               else "none: no production model to compare with")],
                 "metrics": metric_rows(inputs)}
    gate = None
    if inputs.gate:
        decision = gate_decision(inputs.gate)
        gate = {"decision": DECISIONS.get(decision, decision),
                "colour": DECISION_COLOURS.get(decision, "#1f2328"),
                "reasons": [str(reason) for reason in inputs.gate.get("reasons", [])],
                "checks": [("pass" if check.get("passed") else "FAIL", check.get("name", ""),
                            check.get("detail", ""))
                           for check in inputs.gate.get("checks", [])]}
    return {
        "styles": {"cell": TABLE_CELL, "font": FONT},
        "status": status, "phrase": phrase,
        "status_colour": COLOURS.get(status, COLOURS[UNKNOWN]),
        "header_facts": [(label, value) for label, value in items
                         if label in ("where", "commit", "branch", "duration")],
        "links": link_items(inputs),
        "stages": stage_rows(inputs), "failed_stage": failed_stage(inputs),
        "result_colours": RESULT_COLOURS,
        "tests": test_rows(inputs.tests),
        "failed_tests": [f"{t.kind}: {name}" for t in inputs.tests for name in t.failed_cases],
        "quality": quality_lines(inputs),
        "model": model,
        "plots": [{"caption": PLOT_FILES[path.name], "src": image_source(path),
                   "width": PLOT_WIDTH} for path in inputs.plots],
        "gate": gate,
        "deployment": {"lines": deployment_lines(inputs.deployment),
                       "headers": REPLICA_HEADERS,
                       "replicas": replica_rows(inputs.deployment)} if inputs.deployment else None,
        "canary": {"lines": canary_lines(inputs.canary), "headers": CANARY_HEADERS,
                   "arms": canary_rows(inputs.canary),
                   "plot": {"caption": CANARY_PLOT_CAPTION,
                            "src": image_source(inputs.canary_plot),
                            "width": PLOT_WIDTH} if inputs.canary_plot else None}
        if inputs.canary else None,
        "bench": {"lines": bench_lines(inputs.bench),
                  "targets": bench_target_rows(inputs.bench)} if inputs.bench else None,
        "missing": [f"reports/{name}: {why}" for name, why in inputs.missing],
        "footer": " · ".join(f"{label}: {value}" for label, value in items
                             if label in ("mode", "parameters", "status from", "generated")),
    }


def render_html(inputs: Inputs, status: str, basis: str, phrase: str, generated: str,
                image_source: Callable[[Path], str] | None = None) -> str:
    """The e-mail-safe HTML summary; plots are linked beside it unless told otherwise."""
    source = image_source or (lambda path: path.relative_to(inputs.reports_dir).as_posix())
    return templates().get_template("summary.html").render(
        html_context(inputs, status, basis, phrase, generated, source))


# --- plain text ---------------------------------------------------------------------------
def _text_table(headers: list[str], rows: list[tuple[Any, ...]]) -> list[str]:
    cells = [headers] + [[str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return ["  " + "  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip()
            for row in cells]


def render_text(inputs: Inputs, status: str, basis: str, phrase: str, generated: str) -> str:
    """The plain-text alternative: the same facts, for terminals and text-only mail."""
    lines = [f"credit-risk pipeline: {status} - {phrase}", ""]
    lines += [f"  {label}: {value}" for label, value in context_items(inputs, basis, generated)]
    if inputs.build.get("BUILD_URL"):
        lines.append(f"  build: {inputs.build['BUILD_URL']}")
    if inputs.mlflow_run:
        lines.append("  MLflow run: " + str(inputs.mlflow_run.get("run_url")
                                            or inputs.mlflow_run.get("run_id")))
    lines += ["", "Stages"]
    stage = failed_stage(inputs)
    if stage is not None:
        lines.append(f"  FAILED STAGE: {stage.get('name')} - {stage.get('reason', '')}")
    rows = stage_rows(inputs)
    lines += (_text_table(["stage", "mode", "result", "duration", "target / note"], rows)
              if rows else ["  not recorded (no reports/stages.json)"])
    lines += ["", "Tests"]
    lines += (_text_table(["kind", "passed", "failed", "errors", "skipped", "total"],
                          test_rows(inputs.tests)) if inputs.tests else ["  no JUnit reports"])
    lines += [f"  failed: {t.kind}: {name}" for t in inputs.tests for name in t.failed_cases]
    lines += ["", "Quality"]
    lines += [f"  {line[:1].lower()}{line[1:]}" for line in quality_lines(inputs)]
    lines += ["", "Model"] + _model_text(inputs)
    lines += ["", "Gate"] + _gate_text(inputs)
    if inputs.plots:
        lines += ["", "Holdout plots"]
        lines += [f"  reports/{PLOTS_DIR}/{path.name}: {PLOT_FILES[path.name]}"
                  for path in inputs.plots]
    if inputs.deployment:
        lines += ["", "Deployed"]
        lines += [f"  {line}" for line in deployment_lines(inputs.deployment)]
        lines += _text_table(REPLICA_HEADERS, replica_rows(inputs.deployment))
    if inputs.canary:
        lines += ["", "Canary"]
        lines += [f"  {line}" for line in canary_lines(inputs.canary)]
        lines += _text_table(CANARY_HEADERS, canary_rows(inputs.canary))
        if inputs.canary_plot:
            lines.append(f"  reports/{inputs.canary_plot.name}: {CANARY_PLOT_CAPTION}")
    if inputs.bench:
        lines += ["", "Last benchmark (make bench)"]
        lines += [f"  {line}" for line in bench_lines(inputs.bench)]
        lines += _text_table(["target", "value", "goal", "met"],
                             bench_target_rows(inputs.bench))
    if inputs.missing:
        lines += ["", "Missing inputs"]
        lines += [f"  reports/{name}: {why}" for name, why in inputs.missing]
    return "\n".join(lines) + "\n"


def _model_text(inputs: Inputs) -> list[str]:
    challenger = _challenger(inputs)
    if not challenger:
        return ["  no model card and no gate result"]
    champion = (inputs.gate or {}).get("champion") or {}
    lines = [f"  this build: {challenger.get('version') or 'candidate'} "
             f"({challenger.get('model_family') or 'unknown family'})",
             f"  champion: {champion.get('version') if champion else 'none'}"]
    rows = metric_rows(inputs)
    if rows:
        lines += _text_table(["holdout metric", "this build", "champion", "difference"], rows)
    return lines


def _gate_text(inputs: Inputs) -> list[str]:
    gate = inputs.gate
    if not gate:
        return ["  the gate did not run"]
    decision = gate_decision(gate)
    lines = [f"  decision: {DECISIONS.get(decision, decision)}"]
    lines += [f"  - {reason}" for reason in gate.get("reasons", [])]
    lines += [f"  [{'pass' if check.get('passed') else 'FAIL'}] {check.get('name')}: "
              f"{check.get('detail')}" for check in gate.get("checks", [])]
    return lines
