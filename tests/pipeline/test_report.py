"""The summary (`make report`): green, red naming the failed stage, unstable, partial runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline import report
from pipeline.inputs import MLFLOW_RUN_FILE, collect, inspect_image, read_flake8
from tests.conftest import ROOT
from tests.pipeline import builders
from training.report_names import PLOT_FILES, PLOTS_DIR

JENKINS = {"BUILD_URL": "https://ci.example.com/job/credit-risk/42/", "JOB_NAME": "credit-risk",
           "BUILD_NUMBER": "42", "GIT_COMMIT": "0123456789abcdef0123", "BRANCH_NAME": "main"}


class _TagChecker(HTMLParser):
    """Collects start tags and text, and fails on tags that are opened but never closed."""

    VOID = {"meta", "br", "img", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "a":
            self.links.append(dict(attrs).get("href"))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(markup: str) -> _TagChecker:
    """Parse the summary HTML; it must be well nested."""
    checker = _TagChecker()
    checker.feed(markup)
    checker.close()
    assert checker.stack == [], f"unclosed tags: {checker.stack}"
    return checker


def test_green_summary_shows_every_section(tmp_path: Path) -> None:
    builders.green(tmp_path)
    summary = report.write_summary(tmp_path, JENKINS)
    assert summary.status == "SUCCESS"
    assert summary.subject.startswith("credit-risk SUCCESS: model 20261122T101500Z-abc1234 "
                                      "promoted")
    assert "credit-risk #42" in summary.subject
    text = (tmp_path / "summary.txt").read_text()
    for expected in ("Stages", "build image", "PASSED".lower(), "lines 87.1% (1200/1377)",
                     "branches 70.2% (330/470)", "0 flake8 findings", "roc_auc",
                     "0.8312", "0.8201", "+0.0111", "promoted: the new model serves production",
                     "[pass] champion_roc_auc", "https://ci.example.com/job/credit-risk/42/",
                     "commit: 0123456789ab"):
        assert expected in text, expected
    assert "Missing inputs" not in text
    html_doc = parse_html((tmp_path / "summary.html").read_text())
    assert "a" in html_doc.tags and "table" in html_doc.tags
    assert "https://ci.example.com/job/credit-risk/42/console" in summary.html
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "SUCCESS"


def test_green_summary_counts_tests_per_kind(tmp_path: Path) -> None:
    builders.green(tmp_path)
    text = report.build_summary(tmp_path, {}).text
    unit = next(line for line in text.splitlines() if re.match(r"\s+unit\s+\d", line))
    assert unit.split() == ["unit", "5", "0", "0", "1", "6"]
    assert "gate " in text  # the gate's JUnit file is a kind of its own


def test_red_summary_names_the_failed_stage_and_the_failed_test(tmp_path: Path) -> None:
    builders.red_data_tests(tmp_path)
    summary = report.write_summary(tmp_path, {})
    assert summary.status == "FAILURE"
    assert summary.subject == "credit-risk FAILURE: stage 'data tests' failed (local run)"
    assert "FAILED STAGE: data tests - make test-data exited with status 2" in summary.text
    assert "failed: data: tests.data.test_bad.test_real_data_passes_every_check" in summary.text
    assert "Failed stage: <b>data tests</b>" in summary.html
    assert "#cf222e" in summary.html  # red header
    # The stages after the failure were not run, and the summary says so.
    assert re.search(r"build image\s+native\s+not run", summary.text)


def test_red_summary_lists_what_is_missing_and_why(tmp_path: Path) -> None:
    builders.red_data_tests(tmp_path)
    text = report.build_summary(tmp_path, {}).text
    assert "reports/coverage.xml: no coverage" in text
    assert "reports/model-card.json: no model card: no model was trained" in text
    assert "reports/gate.json: no gate result: the gate did not run" in text
    assert "no model card and no gate result" in text


def test_unstable_summary_explains_the_kept_champion(tmp_path: Path) -> None:
    builders.unstable(tmp_path)
    summary = report.write_summary(tmp_path, {})
    assert summary.status == "UNSTABLE"
    assert "champion kept, nothing deployed" in summary.subject
    assert "champion kept: the production model stays" in summary.text
    assert "[FAIL] champion_roc_auc" in summary.text
    assert re.search(r"deploy\s+native\s+skipped.*no new model to deploy", summary.text)
    assert "1 flake8 finding (F401 x1)" in summary.text
    assert "#9a6700" in summary.html


def test_empty_reports_directory_still_gives_a_summary(tmp_path: Path) -> None:
    summary = report.write_summary(tmp_path / "reports", {})
    assert summary.status == report.UNKNOWN
    assert (tmp_path / "reports" / "summary.html").is_file()
    assert summary.text.count("reports/") >= 6  # every input is listed as missing
    parse_html(summary.html)


def test_jenkins_build_result_wins_over_the_reports(tmp_path: Path) -> None:
    builders.green(tmp_path)
    summary = report.build_summary(tmp_path, dict(JENKINS, BUILD_RESULT="FAILURE"))
    assert summary.status == "FAILURE"
    assert "status from: the Jenkins build result" in summary.text


def test_without_a_stage_record_the_status_is_derived_from_the_reports(tmp_path: Path) -> None:
    builders.unstable(tmp_path)
    (tmp_path / "stages.json").unlink()
    summary = report.build_summary(tmp_path, {})
    assert summary.status == "UNSTABLE"
    assert "no stage record" in summary.text


def test_report_values_are_escaped_in_html(tmp_path: Path) -> None:
    builders.red_data_tests(tmp_path)
    builders.write_junit(tmp_path, "unit", passed=1, failed=('test_<script>alert("x")</script>',))
    summary = report.build_summary(tmp_path, {})
    assert "<script>" not in summary.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in summary.html
    parse_html(summary.html)


def test_unreadable_report_is_named_not_fatal(tmp_path: Path) -> None:
    builders.green(tmp_path)
    (tmp_path / "coverage.xml").write_text("<coverage")
    (tmp_path / "gate.json").write_text("{not json")
    inputs = collect(tmp_path, {})
    missing = dict(inputs.missing)
    assert missing["coverage.xml"].startswith("unreadable")
    assert missing["gate.json"].startswith("unreadable")
    # The model section falls back to the model card.
    assert "20261122T101500Z-abc1234" in report.build_summary(tmp_path, {}).text


@pytest.mark.parametrize("mode, expected", [("docker", "size unknown"), ("native", None)])
def test_image_size_is_shown_only_where_there_is_an_image(tmp_path: Path, mode: str,
                                                          expected: str | None) -> None:
    builders.write_stages(tmp_path, {}, mode=mode)
    phrase = report.image_phrase(collect(tmp_path, {}))
    assert (phrase is None) if expected is None else (expected in phrase)
    (tmp_path / "image.json").write_text(json.dumps({"image": "credit-risk:abc",
                                                     "size_bytes": 412_300_000}))
    assert report.image_phrase(collect(tmp_path, {})) == "credit-risk:abc, 412.3 MB"


def test_flake8_report_is_counted_by_code(tmp_path: Path) -> None:
    path = tmp_path / "flake8.txt"
    path.write_text("a.py:1:1: F401 'os' imported but unused\n"
                    "a.py:2:80: E501 line too long (120 > 100 characters)\n"
                    "b.py:3:1: E501 line too long (130 > 100 characters)\n\n")
    lint = read_flake8(path)
    assert lint["count"] == 3
    assert lint["codes"][0] == ("E501", 2)


def test_image_is_looked_up_only_in_docker_mode_and_only_when_it_exists() -> None:
    absent = {"APP_IMAGE": "credit-risk-no-such-image", "IMAGE_TAG": "never-built"}
    assert inspect_image(absent, "docker") is None  # a missing image is "size unknown"
    assert inspect_image({"APP_IMAGE": "credit-risk-app"}, "native") is None
    assert inspect_image({}, "docker") is None


def test_last_benchmark_is_shown_only_when_bench_json_exists(tmp_path: Path) -> None:
    builders.green(tmp_path)
    report.write_summary(tmp_path, {})
    assert "Last benchmark" not in (tmp_path / "summary.txt").read_text()
    bench = {"time": "2026-12-03T12:00:00+00:00", "model_version": "v7", "tool": "wrk 4.1.0",
             "endpoints": {"predict_single_nginx": {"requests_per_second": 812.5,
                                                    "latency_ms": {"p50": 9.1, "p99": 31.0}}},
             "targets": [{"what": "1  one-row predict / /healthz, through NGINX (req/s)",
                          "value": 0.61, "target": ">= 0.5", "met": True}]}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    summary = report.write_summary(tmp_path, {})
    text = (tmp_path / "summary.txt").read_text()
    assert "Last benchmark (make bench)" in text
    assert "predict_single_nginx: 812.5 req/s, p50 9.1 ms, p99 31.0 ms" in text
    assert re.search(r"one-row predict / /healthz, through NGINX \(req/s\)\s+0.61\s+>= 0.5\s+yes",
                     text)
    page = " ".join(parse_html(summary.html).text)
    assert "Last benchmark (make bench)" in page and "812.5 req/s" in page


def test_mutation_score_is_shown_when_a_mutation_run_left_its_report(tmp_path: Path) -> None:
    from pipeline.mutation import summarise, write_reports

    builders.green(tmp_path)
    assert "mutation" not in report.build_summary(tmp_path, {}).text.lower()
    results = {"training.gate.x_a__mutmut_1": "killed", "training.gate.x_a__mutmut_2": "timeout",
               "training.gate.x_a__mutmut_3": "killed", "training.gate.x_a__mutmut_4": "survived",
               "training.gate.x_a__mutmut_5": "survived"}
    equivalent = {"training.gate.x_a__mutmut_5": "only the log line's wording changes"}
    write_reports(summarise(results, equivalent, 12.0), tmp_path, {})
    summary = report.build_summary(tmp_path, {})
    expected = "75.0% of mutants killed (3/4; 1 survived, 1 equivalent)"
    assert f"mutation testing: {expected}" in summary.text
    assert f"Mutation testing: {expected}" in summary.html
    survivors = (tmp_path / "mutation-survivors.txt").read_text()
    assert "== training.gate.x_a__mutmut_4" in survivors and "mutmut_5" not in survivors


def test_the_deployed_section_lists_each_replica_with_its_model_and_canary(
        tmp_path: Path) -> None:
    builders.green(tmp_path)
    replicas = [{"name": "app.1", "node": "n1", "image": "app:t", "revision": "0123456789abcdef",
                 "model_version": "v1", "problem": "", "canary": "v2 (canary, 10%)"},
                {"name": "app.2", "node": "n2", "image": "app:t", "revision": "",
                 "model_version": "v1", "problem": "", "canary": ""}]
    (tmp_path / "deploy.json").write_text(json.dumps(
        {"target": "swarm", "name": "credit-risk", "url": "http://h:8005",
         "replicas": replicas}))
    text = report.build_summary(tmp_path, {}).text
    assert "swarm: credit-risk, http://h:8005" in text
    assert re.search(r"app\.1\s+n1\s+app:t\s+0123456789ab\s+v1\s+v2 \(canary, 10%\)", text)
    assert re.search(r"app\.2\s+n2\s+app:t\s+-\s+v1\s+-$", text, re.M)


def test_the_last_canary_report_is_shown_with_its_arms_and_plot(tmp_path: Path) -> None:
    builders.green(tmp_path)
    assert "Canary" not in report.build_summary(tmp_path, {}).text
    arms = {"production": {"version": "v1", "rows": 900, "errors": 0, "p95_ms": 1.25,
                           "labelled": 300, "roc_auc": 0.81, "recall_bad": 0.7},
            "canary": {"version": "v2", "rows": 100, "errors": 4, "p95_ms": None,
                       "labelled": 30, "roc_auc": None, "recall_bad": None}}
    (tmp_path / "canary-report.json").write_text(json.dumps({
        "recommendation": "abort", "reasons": ["the canary broke its limits: 4 of 104"],
        "test": "the release's limits", "test_result": "4 of 104 scorings failed",
        "more_outcomes_needed": None, "production_version": "v1", "arms": arms,
        "release": {"version": "v2", "mode": "canary", "share": 0.1},
        "actions": ["aborted v2; production answers all"]}))
    (tmp_path / "canary-arms.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    summary = report.write_summary(tmp_path, {})
    assert ("Recommendation: ABORT for canary v2 (canary, share 0.1) beside production v1"
            in summary.text)
    assert re.search(r"canary\s+v2\s+100\s+4\s+-\s+30\s+-\s+-", summary.text), summary.text
    assert re.search(r"production\s+v1\s+900\s+0\s+1.250\s+300\s+0.810\s+0.700",
                     summary.text)
    assert "Done: aborted v2; production answers all" in summary.text
    page = parse_html((tmp_path / "summary.html").read_text())
    assert ("canary-arms.png", "Production and canary on live traffic") in [
        (image["src"], image["alt"]) for image in page.images]
    assert "Canary" in page.text
    # The mail carries the plot inline, like the holdout plots.
    [inline] = [image for image in summary.images if image.path.name == "canary-arms.png"]
    assert f'src="cid:{inline.content_id}"' in summary.mail_html


def test_a_promotion_as_canary_is_told_apart_in_the_headline_and_the_gate(
        tmp_path: Path) -> None:
    builders.green(tmp_path)
    gate = json.loads((tmp_path / "gate.json").read_text())
    direct = report.build_summary(tmp_path, {})
    (tmp_path / "gate.json").write_text(json.dumps({**gate, "promotion": "canary"}))
    summary = report.build_summary(tmp_path, {})
    assert summary.headline == direct.headline + " as canary"
    assert "decision: promoted as canary: the new model serves a share" in summary.text
    assert "promoted as canary" not in direct.text


HOSTILE = '<script>alert("card")</script>'


def test_hostile_model_card_values_are_text_in_the_file_and_the_mail(tmp_path: Path) -> None:
    builders.green(tmp_path)
    (tmp_path / "gate.json").unlink()  # the model section then shows the card itself
    card = json.loads((tmp_path / "model-card.json").read_text())
    card.update(version=HOSTILE, model_family='"><img src=x onerror=alert(1)>')
    (tmp_path / "model-card.json").write_text(json.dumps(card))
    summary = report.build_summary(tmp_path, {})
    for markup in (summary.html, summary.mail_html):
        assert "<script" not in markup and "<img src=x" not in markup
        assert "&lt;script&gt;alert(&#34;card&#34;)&lt;/script&gt;" in markup
        page = parse_html(markup)
        assert all(image["src"] != "x" for image in page.images)
        assert any(HOSTILE in text for text in page.text)  # shown, as text
    assert HOSTILE in summary.text


def test_plots_are_shown_from_beside_the_summary_file(tmp_path: Path) -> None:
    builders.green(tmp_path)
    summary = report.write_summary(tmp_path, {})
    page = parse_html((tmp_path / "summary.html").read_text())
    assert [(image["src"], image["alt"]) for image in page.images] == [
        (f"plots/{name}", caption) for name, caption in PLOT_FILES.items()]
    for image in page.images:  # every source resolves to the PNG the training drew
        assert (tmp_path / str(image["src"])).read_bytes().startswith(b"\x89PNG")
    assert "Holdout plots" in page.text
    for name, caption in PLOT_FILES.items():
        assert f"reports/plots/{name}: {caption}" in summary.text
    assert "Missing inputs" not in summary.text


def test_a_model_without_plots_is_named_among_the_missing_inputs(tmp_path: Path) -> None:
    builders.green(tmp_path)
    shutil.rmtree(tmp_path / PLOTS_DIR)
    summary = report.build_summary(tmp_path, {})
    assert "reports/plots/: no plots: the training run drew none" in summary.text
    assert parse_html(summary.html).images == [] and summary.images == []
    # No model, no plots to miss.
    builders.red_data_tests(tmp_path / "red")
    assert "plots/" not in report.build_summary(tmp_path / "red", {}).text


MLFLOW_RUN = {"run_id": "0f1e2d3c", "experiment_id": "1",
              "tracking_uri": "http://mlflow:5000",
              "run_url": "http://mlflow.example.com:5000/#/experiments/1/runs/0f1e2d3c"}


def test_mlflow_run_is_linked_when_the_tracking_left_its_file(tmp_path: Path) -> None:
    builders.green(tmp_path)
    assert "MLflow" not in report.build_summary(tmp_path, JENKINS).html
    (tmp_path / MLFLOW_RUN_FILE).write_text(json.dumps(MLFLOW_RUN))
    summary = report.build_summary(tmp_path, JENKINS)
    page = parse_html(summary.html)
    assert page.links == ["https://ci.example.com/job/credit-risk/42/",
                          "https://ci.example.com/job/credit-risk/42/console",
                          "https://ci.example.com/job/credit-risk/42/testReport/",
                          MLFLOW_RUN["run_url"]]
    assert f"MLflow run: {MLFLOW_RUN['run_url']}" in summary.text


def test_an_mlflow_link_that_is_not_http_is_not_linked(tmp_path: Path) -> None:
    builders.green(tmp_path)
    (tmp_path / MLFLOW_RUN_FILE).write_text(json.dumps(
        dict(MLFLOW_RUN, run_url="javascript:alert(document.cookie)")))
    summary = report.build_summary(tmp_path, {})
    assert parse_html(summary.html).links == []
    assert "javascript:" not in summary.html


def test_an_unreadable_mlflow_run_file_is_named(tmp_path: Path) -> None:
    builders.green(tmp_path)
    (tmp_path / MLFLOW_RUN_FILE).write_text("[]")
    assert f"reports/{MLFLOW_RUN_FILE}: unreadable" in report.build_summary(tmp_path, {}).text


def test_the_pipeline_cli_starts_on_a_python_without_jinja2_or_numpy() -> None:
    # `make system` runs this CLI on the system Python before it has python3-jinja2, and
    # the summary never needs numpy: both are imported only where they are used.
    script = ("import sys; sys.modules.update(jinja2=None, numpy=None); "
              "import pipeline.cli, pipeline.report, pipeline.notify")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
