"""The benchmark's arithmetic and report format (no timing is judged here)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline import bench
from tests.helpers import require_executable


def result(rps: float, rows: int = 0, p50: float = 1.0, p99: float = 2.0) -> dict[str, Any]:
    """One endpoint's summary as Samples.summary writes it."""
    return {"requests_per_second": rps, "rows_per_second": rps * rows,
            "requests_per_second_per_round": [rps], "latency_ms": {"p50": p50, "p99": p99}}


def report(**changes: Any) -> dict[str, Any]:
    """A report in which every target is exactly on its bound."""
    base: dict[str, Any] = {
        "batch_size": 1000,
        "endpoints": {bench.NOOP: result(1000.0), bench.HEALTHZ_DIRECT: result(600.0),
                      bench.HEALTHZ_NGINX: result(400.0),
                      bench.SINGLE_NGINX: result(200.0, rows=1),
                      bench.batch_name(1000): result(10.0, rows=1000),
                      bench.batch_alone_name(1000): {**result(8.0, rows=1000),
                                                     "connections": 1}},
        "paced": {bench.PACED_PREDICT: result(100.0, rows=1, p99=8.0),
                  bench.PACED_NOOP: result(100.0, p99=4.0)},
        "batch_server_ms": {"requests": 30, "p50": 49.99},
    }
    base.update(changes)
    return base


def test_target_values_are_the_issue_ratios() -> None:
    assert bench.target_values(report()) == {
        "predict_vs_healthz_nginx": 0.5, "healthz_vs_noop": 0.6, "batch_server_p50_ms": 49.99,
        "batch_vs_single_rows": 50.0, "paced_p99_vs_noop": 2.0}


def test_a_value_on_its_bound_meets_the_target_except_the_strict_server_time() -> None:
    assert [item["met"] for item in bench.judge(report())] == [True] * 5
    on_bound = report(batch_server_ms={"requests": 30, "p50": 50.0})
    assert {item["key"]: item["met"] for item in bench.judge(on_bound)}[
        "batch_server_p50_ms"] is False


def test_a_target_without_measurements_is_neither_met_nor_missed() -> None:
    judged = bench.judge(report(batch_server_ms={}))
    assert {item["key"]: item["met"] for item in judged}["batch_server_p50_ms"] is None


def test_targets_read_from_failed_requests_are_not_measured() -> None:
    """Batches answered 413 by NGINX are fast; their figures must not meet target 3."""
    failed_batch = {**result(900.0, rows=1000), "errors": 12}
    values = bench.target_values(report(endpoints={
        **report()["endpoints"], bench.batch_name(1000): failed_batch}))
    assert values["batch_vs_single_rows"] is None and values["batch_server_p50_ms"] == 49.99
    values = bench.target_values(report(endpoints={
        **report()["endpoints"], bench.batch_alone_name(1000): failed_batch}))
    assert values["batch_server_p50_ms"] is None and values["batch_vs_single_rows"] == 50.0
    assert values["predict_vs_healthz_nginx"] == 0.5


def test_batch_throughput_uses_the_one_row_connections_and_server_time_one() -> None:
    by_name = {endpoint.name: endpoint for endpoint in bench.endpoints(10)}
    throughput, alone = by_name[bench.batch_name(10)], by_name[bench.batch_alone_name(10)]
    assert throughput.connections is None  # the benchmark's setting, as one-row predict
    assert alone.connections == 1 and alone.body == throughput.body and alone.rows == 10


def run(requests: int, latency_us: dict[int, int], errors: int = 0) -> bench.WrkRun:
    """A 2-second wrk run with these answers' latencies."""
    return bench.WrkRun(requests, errors, 2.0, latency_us, 0.1)


def test_samples_summary_adds_requests_over_rounds_and_pools_their_latencies() -> None:
    samples = bench.Samples([run(100, {1000: 99, 5000: 1}),
                             run(300, {3000: 297, 9000: 3}, errors=1),
                             run(200, {2000: 198, 7000: 2})])
    endpoint = bench.Endpoint("batch", "nginx", "POST", "/api/v1/predict", b"{}", rows=10)
    summary = samples.summary(endpoint)
    assert summary["requests_per_second"] == 100.0
    assert summary["rows_per_second"] == 1000.0
    assert summary["requests_per_second_per_round"] == [50.0, 150.0, 100.0]
    # 600 answers: the 300th and the 594th are both among the 3 ms ones (the 594th the
    # last of them); a median of the rounds' own p99s would have said 2 ms.
    assert summary["latency_ms"] == {"p50": 3.0, "p99": 3.0,
                                     "p99_per_round": [1.0, 3.0, 2.0]}
    assert summary["errors"] == 1


def test_the_pooled_p99_is_the_nearest_rank_as_wrk_reads_it() -> None:
    assert bench.percentile_ms({1500: 98, 4000: 1, 9000: 1}, 99) == 4.0
    assert bench.percentile_ms({1500: 99, 4000: 1}, 99) == 1.5
    assert bench.percentile_ms({1500: 97, 4000: 2, 9000: 1}, 99) == 4.0
    assert bench.percentile_ms({250: 1}, 99) == 0.25
    assert bench.percentile_ms({7000: 1, 3000: 1}, 50) == 3.0  # by value, not by arrival
    assert bench.percentile_ms({}, 99) is None


def test_the_paced_rate_is_half_the_median_round_so_one_slow_round_does_not_lower_it(
        ) -> None:
    assert bench.paced_rate({"requests_per_second_per_round": [2966.0, 2867.0, 1222.0]}) \
        == 1433.5
    assert bench.paced_rate({"requests_per_second_per_round": [2000.0, 3000.0]}) == 1250.0
    assert bench.paced_rate({"requests_per_second_per_round": []}) == 0.0


def test_the_no_op_thinks_longer_by_the_difference_of_the_two_cycle_times() -> None:
    # 8 connections at 1,283 req/s cycle every 6.235 ms, at 1,154 req/s every 6.932 ms: the
    # no-op answered 0.697 ms faster, so it waits that much longer to match the rate.
    assert bench.matched_interval_ms(5.5, 8, 1154.0, 1283.0) == pytest.approx(6.197, abs=1e-3)
    assert bench.matched_interval_ms(5.5, 8, 1000.0, 1000.0) == 5.5
    assert bench.matched_interval_ms(5.5, 8, 1283.0, 1154.0) == pytest.approx(4.803, abs=1e-3)
    assert bench.matched_interval_ms(0.2, 8, 1000.0, 500.0) == 0.0  # never negative
    assert bench.matched_interval_ms(5.5, 8, 0.0, 1000.0) == 5.5  # nothing measured: as is
    assert bench.matched_interval_ms(5.5, 8, 1000.0, 0.0) == 5.5


def test_a_run_without_answers_does_not_count_as_zero_latency() -> None:
    samples = bench.Samples([run(0, {}), run(100, {4000: 50, 9000: 50})])
    summary = samples.summary(bench.Endpoint("x", "nginx", "GET", "/healthz"))
    assert summary["latency_ms"] == {"p50": 4.0, "p99": 9.0, "p99_per_round": [None, 9.0]}
    assert summary["requests_per_second"] == 25.0


def test_the_wrk_script_sends_the_body_and_paces_when_asked(tmp_path: Path) -> None:
    endpoint = bench.Endpoint("one", "nginx", "POST", "/api/v1/predict", b'{"a": 1}', rows=1)
    script = bench.wrk_script(endpoint, "paced", tmp_path, interval_ms=80.0).read_text()
    assert 'wrk.method = "POST"' in script
    assert f"io.open([[{tmp_path / 'one.json'}]]" in script
    assert (tmp_path / "one.json").read_bytes() == b'{"a": 1}'
    assert '"X-Request-ID"] = "bench-one-paced"' in script
    assert "math.log(1 - math.random()) * 80.000 + 0.5" in script
    plain = bench.wrk_script(bench.Endpoint("get", "noop", "GET", "/healthz"), "measure",
                             tmp_path).read_text()
    assert "delay" not in plain and "wrk.body" not in plain


def test_the_result_line_is_found_among_wrk_output() -> None:
    output = ("Running 5s test @ http://x\n" + bench.RESULT_MARK
              + '{"requests":10,"duration_us":5000000,"errors":0,"latency_us":[[900,10]]}\n')
    assert bench.parse_result(output)["latency_us"] == [[900, 10]]
    with pytest.raises(RuntimeError, match="no result line"):
        bench.parse_result("Running 5s test\n")


class Answer(BaseHTTPRequestHandler):
    """200 with a short body to every POST; keeps the connection open (HTTP/1.1)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (its signature)
        pass


@contextmanager
def answering_server() -> Iterator[str]:
    """A local HTTP server answering every POST, in a thread; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_real_wrk_reports_every_answer_in_the_latency_histogram(tmp_path: Path) -> None:
    require_executable("wrk")
    endpoint = bench.Endpoint("one", "gunicorn", "POST", "/api/v1/predict", b'{"a": 1}', 1)
    script = bench.wrk_script(endpoint, "paced", tmp_path, interval_ms=2.0)
    with answering_server() as url:
        run = bench.run_wrk(url + endpoint.path, script, connections=2, seconds=1)
    assert run.errors == 0 and run.requests > 0
    # wrk counts a request when its answer is complete and records its latency then, so
    # the two agree but for answers still in flight when wrk stopped (one per connection).
    assert run.requests <= sum(run.latency_us.values()) <= run.requests + 2
    assert all(latency > 0 and count > 0 for latency, count in run.latency_us.items())
    assert bench.percentile_ms(run.latency_us, 50) <= bench.percentile_ms(run.latency_us, 99)


def test_server_times_come_from_the_batch_requests_after_the_offset(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    old = json.dumps({"request_id": "b", "status": 200, "upstream_response_time": "9.000"})
    log.write_text(old + "\n")
    offset = log.stat().st_size
    lines = [{"request_id": "b", "status": 200, "upstream_response_time": "0.012"},
             {"request_id": "b", "status": 200, "upstream_response_time": "0.010, 0.005"},
             {"request_id": "b", "status": 502, "upstream_response_time": "0.001"},
             {"request_id": "other", "status": 200, "upstream_response_time": "0.100"}]
    with open(log, "a") as handle:
        handle.write("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    assert bench.server_times_ms(log, offset, "b") == pytest.approx([12.0, 15.0])


def test_the_table_shows_endpoints_targets_cpu_and_memory() -> None:
    full = report(tool="wrk 4.1.0", connections=8, rounds=3, paced_rounds=6, seconds=5.0,
                  model_version="v1", host={"cpus": 2},
                  load_generator={"machine_share": 0.21, "cores_used": 0.42},
                  rss_mb={"service": [101.5, 102.0], "noop": [40.1]}, image={},
                  rss_after_warmup_mb={"service": [99.0, 98.5], "noop": [40.0]})
    full["paced"]["target_requests_per_second"] = 100.0
    full["paced"][bench.PACED_PREDICT]["think_time_ms"] = 80.0
    full["paced"][bench.PACED_NOOP]["think_time_ms"] = 81.25
    full["targets"] = bench.judge(full)
    text = bench.table(full)
    assert "predict_single_nginx" in text and "paced_noop" in text
    assert "\npredict_batch_1000_nginx_alone (1 conn.)      8.0 " in text
    assert "1  one-row predict / /healthz, through NGINX (req/s)" in text
    assert "21% of the machine" in text
    assert "paced runs: 6 rounds at 100.0 req/s" in text
    assert ("mean think time, calibrated to reach the rate: paced_predict_single_direct "
            "80.00 ms, paced_noop 81.25 ms, paced_predict_single_nginx - ms") in text
    assert "after warm-up: service 99.0, 98.5 MB; bare Flask 40.0 MB" in text
    assert "after the runs: service 101.5, 102.0 MB; bare Flask 40.1 MB" in text


def test_applicants_cycle_the_data_when_a_batch_is_larger() -> None:
    rows = bench.applicants(1500)
    assert len(rows) == 1500 and rows[1000] == rows[0]
