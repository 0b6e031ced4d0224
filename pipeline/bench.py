"""Benchmark of the service with wrk: the framework floor, /healthz, one-row and batch scoring.

Measured in one run, in alternating rounds (the order rotated each round) so that every
figure sees the same machine conditions:

- `noop`: a bare Flask app (pipeline/bench_noop.py) under the service's Gunicorn settings,
  straight to Gunicorn: the framework floor;
- `healthz_direct` / `healthz_nginx`: this service's /healthz straight and through NGINX;
- `predict_single_direct` / `predict_single_nginx`: one applicant;
- `predict_batch_<n>_nginx`: a batch of n applicants (1,000 by default), for its rows/s on
  as many connections as the one-row runs; `predict_batch_<n>_nginx_alone`: the same batch
  on one connection, whose server time is read from NGINX's access log
  (upstream_response_time of its request id): a batch's own cost;
- then, paced at half the one-row maximum throughput straight to Gunicorn (its median
  round), one-row predict and the no-op, both straight to Gunicorn, for their p99 at the
  same rate (wrk's `delay()`: a closed loop with random think times, exponentially
  distributed, so that arrivals are independent; each endpoint's mean think time is set
  after two short calibration runs of it, so that every one runs at that rate). Like
  for like: the no-op has no NGINX in front of it, so the target compares the service with
  the framework, not with the proxy. The same rate through NGINX is measured too, as
  information (the proxy's share of the tail).

wrk (C, one thread) is the load generator, so the client is not the bottleneck on a small
machine; its CPU share is reported. It cannot choose its source address, so `make bench`
renders its own NGINX copy with 127.0.0.1 added to the addresses exempt from the rate limit
(LOAD_GENERATOR_ADDRESS is the one the template exempts for clients that can bind it).

It is a measurement, not a check: the report lists the issue's targets and whether this run
met them, but the exit status is 1 only when requests failed (the figures would then describe
errors) and 2 when wrk is missing. `make bench` starts its servers, runs
`python -m pipeline.bench`, and stops them.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.schema import FEATURES

logger = logging.getLogger(__name__)

# NGINX exempts this source address from its rate limit (nginx/credit-risk.conf.template).
LOAD_GENERATOR_ADDRESS = "127.0.0.2"
DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "credit.csv"
RESULT_MARK = "BENCH-RESULT "
NOOP = "noop"
HEALTHZ_DIRECT = "healthz_direct"
HEALTHZ_NGINX = "healthz_nginx"
SINGLE_DIRECT = "predict_single_direct"
SINGLE_NGINX = "predict_single_nginx"
PACED_PREDICT = "paced_predict_single_direct"
PACED_PREDICT_NGINX = "paced_predict_single_nginx"
PACED_NOOP = "paced_noop"
# A batch's server time (target 3a) is its own cost: one connection, so no other request
# shares its worker. Its rows/s (3b) is a throughput like one-row predict's, on as many
# connections. One connection per Gunicorn worker was meant to give both: but NGINX reuses
# its most recently used upstream connection first, the two often sat on one worker, and
# runs gave 75-105 or 140-170 batches/s by the luck of where they sat.
BATCH_ALONE_CONNECTIONS = 1
# Short runs that set each paced endpoint's think time (benchmark() says why two).
CALIBRATION_RUNS = 2


@dataclass(frozen=True)
class Endpoint:
    """One benchmarked request: which server, method, path, JSON body, rows it scores."""

    name: str
    server: str  # key of the base URL: nginx, gunicorn or noop
    method: str
    path: str
    body: bytes | None = None
    rows: int = 0
    connections: int | None = None  # None: the benchmark's setting


@dataclass(frozen=True)
class WrkRun:
    """What one wrk run measured."""

    requests: int
    errors: int
    seconds: float
    # Every answer's latency: microseconds -> how many answers took exactly that long.
    latency_us: Mapping[int, int]
    cpu_seconds: float  # wrk's own user + system time


@dataclass
class Samples:
    """The runs of one endpoint over all rounds."""

    runs: list[WrkRun] = field(default_factory=list)

    def summary(self, endpoint: Endpoint) -> dict[str, Any]:
        """Requests/s and rows/s over all rounds, per-round req/s; p50 and p99 (ms) of all
        the rounds' answers together, and each round's p99."""
        requests = sum(run.requests for run in self.runs)
        seconds = sum(run.seconds for run in self.runs)
        rps = requests / seconds if seconds else 0.0
        # Pooled, not a median of the rounds' percentiles: a 5 s round's p99 rests on its
        # slowest ~50 answers, and one round more or less moved it by a factor of two.
        pooled: Counter[int] = Counter()
        for run in self.runs:
            pooled.update(run.latency_us)
        return {"server": endpoint.server, "method": endpoint.method, "path": endpoint.path,
                "connections": endpoint.connections,
                "rows_per_request": endpoint.rows, "requests": requests,
                "errors": sum(run.errors for run in self.runs), "seconds": round(seconds, 2),
                "requests_per_second": round(rps, 1),
                "requests_per_second_per_round": [
                    round(run.requests / run.seconds, 1) if run.seconds else 0.0
                    for run in self.runs],
                "rows_per_second": round(rps * endpoint.rows, 1),
                "latency_ms": {"p50": percentile_ms(pooled, 50), "p99": percentile_ms(pooled, 99),
                               "p99_per_round": [percentile_ms(run.latency_us, 99)
                                                 for run in self.runs]}}


def percentile_ms(latency_us: Mapping[int, int], percent: float) -> float | None:
    """The `percent` percentile (ms) of a latency histogram (microseconds -> answers), by
    nearest rank as wrk computes it; None when nothing was answered."""
    total = sum(latency_us.values())
    if not total:
        return None
    rank = max(1, math.ceil(percent / 100 * total))
    seen = 0
    for value in sorted(latency_us):
        seen += latency_us[value]
        if seen >= rank:
            break
    return round(value / 1000, 2)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def applicants(count: int, data_file: Path = DATA_FILE) -> list[dict[str, Any]]:
    """`count` applicants of the data set (cycled when it has fewer), as the API expects."""
    rows: list[dict[str, Any]] = []
    with open(data_file, newline="") as handle:
        for record in csv.DictReader(handle):
            rows.append({column.name: int(record[column.name]) if column.is_numeric
                         else record[column.name] for column in FEATURES})
            if len(rows) == count:
                return rows
    if not rows:
        raise ValueError(f"{data_file} has no rows")
    return [rows[index % len(rows)] for index in range(count)]


def endpoints(batch_size: int) -> list[Endpoint]:
    """The measured requests, floor first."""
    batch = applicants(batch_size)
    one, batch_body = json.dumps(batch[0]).encode(), json.dumps({"instances": batch}).encode()
    return [Endpoint(NOOP, "noop", "GET", "/healthz"),
            Endpoint(HEALTHZ_DIRECT, "gunicorn", "GET", "/healthz"),
            Endpoint(HEALTHZ_NGINX, "nginx", "GET", "/healthz"),
            Endpoint(SINGLE_DIRECT, "gunicorn", "POST", "/api/v1/predict", one, 1),
            Endpoint(SINGLE_NGINX, "nginx", "POST", "/api/v1/predict", one, 1),
            Endpoint(batch_name(batch_size), "nginx", "POST", "/api/v1/predict",
                     batch_body, batch_size),
            Endpoint(batch_alone_name(batch_size), "nginx", "POST", "/api/v1/predict",
                     batch_body, batch_size, connections=BATCH_ALONE_CONNECTIONS)]


def batch_name(batch_size: int) -> str:
    """The report's name of the batch throughput endpoint."""
    return f"predict_batch_{batch_size}_nginx"


def batch_alone_name(batch_size: int) -> str:
    """The report's name of the batch endpoint measured one request at a time."""
    return f"{batch_name(batch_size)}_alone"


def request_id(endpoint: Endpoint, phase: str) -> str:
    """The X-Request-ID the requests of one phase carry (NGINX logs it)."""
    return f"bench-{endpoint.name}-{phase}"


def wrk_script(endpoint: Endpoint, phase: str, directory: Path,
               interval_ms: float | None = None) -> Path:
    """A wrk Lua script: method, body, request id, optional pacing; prints one JSON line."""
    lines = [f'wrk.method = "{endpoint.method}"',
             f'wrk.headers["X-Request-ID"] = "{request_id(endpoint, phase)}"']
    if endpoint.body is not None:
        body = directory / f"{endpoint.name}.json"
        body.write_bytes(endpoint.body)
        lines += [f'local body = assert(io.open([[{body}]], "rb"))',
                  "wrk.body = body:read('*a')", "body:close()",
                  'wrk.headers["Content-Type"] = "application/json"']
    if interval_ms is not None:
        # Think times drawn from an exponential distribution of mean `interval_ms`: with a
        # constant one, the connections that started together stay in step and collide on
        # every request (or never), and a run's p99 measures its start instead of the
        # server. wrk truncates the delay to whole milliseconds; +0.5 rounds it instead.
        lines += ["function delay()",
                  f"  return -math.log(1 - math.random()) * {interval_ms:.3f} + 0.5", "end"]
    # done() prints the whole latency histogram: wrk's stats object yields its distinct
    # values in order with their counts (latency(i), i up to #latency), so the rounds can be
    # pooled; its percentile() would only describe one run.
    lines += [
        "function done(summary, latency, requests)",
        "  local e = summary.errors",
        "  local histogram = {}",
        "  for i = 1, #latency do",
        "    local value, count = latency(i)",
        '    histogram[i] = string.format("[%d,%d]", value, count)',
        "  end",
        f'  io.write(string.format("{RESULT_MARK}{{\\"requests\\":%d,\\"duration_us\\":%d,'
        '\\"errors\\":%d,\\"latency_us\\":[%s]}\\n", summary.requests, '
        "summary.duration, e.connect + e.read + e.write + e.status + e.timeout, "
        'table.concat(histogram, ",")))',
        "end"]
    script = directory / f"{endpoint.name}-{phase}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def parse_result(output: str) -> dict[str, int]:
    """The JSON line the script's done() printed."""
    for line in output.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    raise RuntimeError(f"wrk printed no result line:\n{output[-2000:]}")


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> WrkRun:
    """One wrk run (one thread); its CPU time from the children's resource usage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
         "-s", str(script), url], capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    result = parse_result(completed.stdout)
    return WrkRun(requests=result["requests"], errors=result["errors"],
                  seconds=result["duration_us"] / 1e6,
                  latency_us={value: count for value, count in result["latency_us"]},
                  cpu_seconds=(after.ru_utime - before.ru_utime)
                  + (after.ru_stime - before.ru_stime))


@dataclass(frozen=True)
class Settings:
    """How the benchmark runs."""

    urls: dict[str, str]  # nginx, gunicorn, noop
    connections: int = 8
    seconds: float = 5.0
    rounds: int = 3
    # The paced pair's p99s are the target 4 figures: more rounds, pooled (Samples.summary).
    paced_rounds: int = 6
    batch_size: int = 1000
    warmup_seconds: float = 1.0
    # Gunicorn pid files whose workers' memory is read: "service" and "noop".
    pid_files: dict[str, Path | None] = field(default_factory=dict)


def benchmark(settings: Settings, directory: Path) -> dict[str, Any]:
    """Warm up, measure every endpoint in rotated rounds, then the paced pair."""
    targets = endpoints(settings.batch_size)
    samples = {endpoint.name: Samples() for endpoint in targets}
    cpu = wall = 0.0

    def measure(endpoint: Endpoint, phase: str, seconds: float,
                interval_ms: float | None = None) -> WrkRun:
        nonlocal cpu, wall
        script = wrk_script(endpoint, phase, directory, interval_ms)
        # A run of 1,000-row batches appends hundreds of MB to the prediction log, which the
        # kernel would write back during the next runs (and throttle whoever writes then:
        # one-row predict, never the no-op). Each run starts with nothing left to write back.
        os.sync()
        run = run_wrk(settings.urls[endpoint.server] + endpoint.path, script,
                      endpoint.connections or settings.connections, seconds)
        cpu, wall = cpu + run.cpu_seconds, wall + run.seconds
        logger.info("%s %s: %d requests in %.1f s, p50 %s ms, p99 %s ms", phase,
                    endpoint.name, run.requests, run.seconds,
                    percentile_ms(run.latency_us, 50), percentile_ms(run.latency_us, 99))
        return run

    for endpoint in targets:
        measure(endpoint, "warmup", settings.warmup_seconds)
    rss_after_warmup = {name: worker_rss_mb(path) for name, path in settings.pid_files.items()}
    for number in range(settings.rounds):
        shift = number % len(targets)
        for endpoint in targets[shift:] + targets[:shift]:
            samples[endpoint.name].runs.append(measure(endpoint, "measure", settings.seconds))
    results = {endpoint.name: samples[endpoint.name].summary(endpoint) for endpoint in targets}

    rate = paced_rate(results[SINGLE_DIRECT])
    paced_pair = [Endpoint(PACED_PREDICT, *_fields(targets, SINGLE_DIRECT)),
                  Endpoint(PACED_NOOP, *_fields(targets, NOOP)),
                  Endpoint(PACED_PREDICT_NGINX, *_fields(targets, SINGLE_NGINX))]
    paced = {endpoint.name: Samples() for endpoint in paced_pair}
    interval_ms = settings.connections * 1000 / rate if rate else None  # per connection
    intervals: dict[str, float] = {}
    if interval_ms is not None:
        # A closed loop: a connection's cycle is its think time plus the response time, so
        # with the rate's whole cycle as think time every endpoint ran below the rate, the
        # faster one less so. Short runs of each find the think time that reaches it: a
        # second one, since the response time itself shortens as the rate falls (one
        # left the paced endpoints 3-7% apart, predict above or below the no-op).
        for endpoint in paced_pair:
            think = interval_ms
            for _ in range(CALIBRATION_RUNS):
                calibration = measure(endpoint, "calibrate", settings.seconds / 2, think)
                think = matched_interval_ms(
                    think, settings.connections, rate,
                    calibration.requests / calibration.seconds if calibration.seconds else 0.0)
            intervals[endpoint.name] = think
        for number in range(settings.paced_rounds):
            shift = number % len(paced_pair)
            for endpoint in paced_pair[shift:] + paced_pair[:shift]:
                paced[endpoint.name].runs.append(
                    measure(endpoint, "paced", settings.seconds, intervals[endpoint.name]))
    return {"endpoints": results, "rss_after_warmup_mb": rss_after_warmup,
            "paced": {"target_requests_per_second": round(rate, 1),
                      **{endpoint.name: {**paced[endpoint.name].summary(endpoint),
                                         "think_time_ms": _rounded(intervals.get(endpoint.name))}
                         for endpoint in paced_pair}},
            "load_generator": {"cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2),
                               "cores_used": round(cpu / wall, 3) if wall else None,
                               "machine_share": round(cpu / wall / (_cpus() or 1), 3)
                               if wall else None}}


def paced_rate(summary: dict[str, Any]) -> float:
    """Half the maximum throughput of an endpoint: of its median round, so that one round
    slowed by something else (seen: one round in about three bench runs at half the usual
    rate, cause unknown) neither lowers the rate of the tail runs nor eases their target."""
    rounds = summary["requests_per_second_per_round"]
    return statistics.median(rounds) / 2 if rounds else 0.0


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def matched_interval_ms(interval_ms: float, connections: int, wanted_rps: float,
                        measured_rps: float) -> float:
    """The mean think time that brings a closed loop measured at `measured_rps` with
    `interval_ms` to `wanted_rps`: the time a request takes (connections / rate) changes by
    the difference of the two rates' cycle times, and the think time absorbs it."""
    if wanted_rps <= 0 or measured_rps <= 0:
        return interval_ms
    return max(0.0, interval_ms + connections * 1000 / wanted_rps
               - connections * 1000 / measured_rps)


def _fields(targets: list[Endpoint], name: str) -> tuple[Any, ...]:
    endpoint = next(item for item in targets if item.name == name)
    return endpoint.server, endpoint.method, endpoint.path, endpoint.body, endpoint.rows


def server_times_ms(access_log: Path, offset: int, wanted_id: str) -> list[float]:
    """Upstream response times (ms) of 200 answers to `wanted_id` in NGINX's JSON log."""
    times = []
    with open(access_log, "rb") as handle:
        handle.seek(offset)
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("request_id") == wanted_id and entry.get("status") == 200:
                # Several values ("0.012, 0.010") when NGINX retried: the server spent both.
                parts = str(entry.get("upstream_response_time", "")).split(",")
                times.append(sum(float(part) for part in parts if part.strip()) * 1000)
    return times


def worker_rss_mb(pid_file: Path | None) -> list[float]:
    """Resident memory (MB) of each child of the Gunicorn master named by `pid_file`."""
    if pid_file is None or not pid_file.is_file():
        return []
    master = pid_file.read_text().strip()
    children: list[str] = []
    for task in Path(f"/proc/{master}/task").glob("*/children"):
        children += task.read_text().split()
    sizes = []
    for child in children:
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue  # a worker recycled meanwhile
        kilobytes = next((int(line.split()[1]) for line in status.splitlines()
                          if line.startswith("VmRSS:")), None)
        if kilobytes is not None:
            sizes.append(round(kilobytes / 1024, 1))
    return sorted(sizes)


# The targets: (key, description, comparison, bound).
TARGETS = (
    ("predict_vs_healthz_nginx", "1  one-row predict / /healthz, through NGINX (req/s)", ">=",
     0.5),
    ("healthz_vs_noop", "2  /healthz / bare-Flask no-op, straight (req/s)", ">=", 0.6),
    ("batch_server_p50_ms", "3a batch: server time p50 (ms)", "<", 50.0),
    ("batch_vs_single_rows", "3b rows/s: batch / one-row requests", ">=", 50.0),
    ("paced_p99_vs_noop", "4  p99 at half max rate: one-row predict / no-op", "<=", 2.0),
)


def target_values(report: dict[str, Any]) -> dict[str, float | None]:
    """The value of each target's ratio or time in this report; None when it was not
    measured, or when requests it reads failed (a 413 is fast, and would count as a batch)."""
    results, paced = report["endpoints"], report["paced"]
    batch_key = batch_name(report["batch_size"])
    batch = results[batch_key]
    reads = {"predict_vs_healthz_nginx": (SINGLE_NGINX, HEALTHZ_NGINX),
             "healthz_vs_noop": (HEALTHZ_DIRECT, NOOP),
             "batch_server_p50_ms": (batch_alone_name(report["batch_size"]),),
             "batch_vs_single_rows": (batch_key, SINGLE_NGINX),
             "paced_p99_vs_noop": (PACED_PREDICT, PACED_NOOP)}
    measured = {**results, **paced}
    values = {
        "predict_vs_healthz_nginx": _ratio(results[SINGLE_NGINX]["requests_per_second"],
                                           results[HEALTHZ_NGINX]["requests_per_second"]),
        "healthz_vs_noop": _ratio(results[HEALTHZ_DIRECT]["requests_per_second"],
                                  results[NOOP]["requests_per_second"]),
        "batch_server_p50_ms": report.get("batch_server_ms", {}).get("p50"),
        "batch_vs_single_rows": _ratio(batch["rows_per_second"],
                                       results[SINGLE_NGINX]["rows_per_second"]),
        "paced_p99_vs_noop": _ratio(paced[PACED_PREDICT]["latency_ms"]["p99"],
                                    paced[PACED_NOOP]["latency_ms"]["p99"]),
    }
    return {key: None if any(measured[name].get("errors") for name in reads[key]) else value
            for key, value in values.items()}


def judge(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with this run's value and whether it was met (information, not a gate)."""
    values = target_values(report)
    checks = {">=": lambda v, b: v >= b, "<=": lambda v, b: v <= b, "<": lambda v, b: v < b}
    return [{"key": key, "what": what, "target": f"{op} {bound:g}", "value": values[key],
             "met": None if values[key] is None else checks[op](values[key], bound)}
            for key, what, op, bound in TARGETS]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator and denominator else None


def _cpus() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def wrk_version() -> str:
    """wrk's version line, e.g. 'wrk debian/4.1.0-3+b2 [epoll]'."""
    completed = subprocess.run(["wrk", "--version"], capture_output=True, text=True,
                               check=False)
    return (completed.stdout or completed.stderr).splitlines()[0].split(" Copyright")[0]


def model_version(gunicorn_url: str, body: bytes) -> str | None:
    """The serving model's version, from one prediction straight to Gunicorn."""
    request = urllib.request.Request(gunicorn_url + "/api/v1/predict", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response).get("model_version")


def image_size(image: str) -> int | None:
    """Size in bytes of a local Docker image, or None when Docker or the image is absent."""
    if not image or shutil.which("docker") is None:
        return None
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image],
                            capture_output=True, text=True, timeout=60, check=False)
    return int(result.stdout.strip()) if result.returncode == 0 else None


def table(report: dict[str, Any]) -> str:
    """The report as a short fixed-width text table."""
    header = (f"{'endpoint':<40} {'req/s':>8} {'per round':>15} {'rows/s':>9} "
              f"{'p50 ms':>7} {'p99 ms':>7}")
    lines = [f"benchmark: {report['tool']}, 1 thread, {report['connections']} connections, "
             f"{report['rounds']} rounds x {report['seconds']:g} s, "
             f"{report['host']['cpus']} CPUs, model {report['model_version']}",
             header, "-" * len(header)]
    rows = list(report["endpoints"].items()) + [
        (name, result) for name, result in report["paced"].items() if isinstance(result, dict)]
    for name, result in rows:
        rounds = "/".join(f"{rps:.0f}" for rps in result["requests_per_second_per_round"])
        latency = result["latency_ms"]
        if result.get("connections"):
            name = f"{name} ({result['connections']} conn.)"
        lines.append(f"{name:<40} {result['requests_per_second']:>8.1f} {rounds:>15} "
                     f"{result['rows_per_second']:>9.1f} {_number(latency['p50']):>7} "
                     f"{_number(latency['p99']):>7}")
    paced = report["paced"]
    lines.append(f"paced runs: {report['paced_rounds']} rounds at "
                 f"{paced['target_requests_per_second']} req/s (half the median round of "
                 "one-row predict straight to Gunicorn), p50 and p99 of all rounds' answers "
                 "together; mean think time, calibrated to reach the rate: "
                 + ", ".join(f"{name} {_number(paced.get(name, {}).get('think_time_ms'))} ms"
                             for name in (PACED_PREDICT, PACED_NOOP, PACED_PREDICT_NGINX)))
    lines += ["", f"{'target':<54} {'value':>8} {'goal':>8} {'met':>4}"]
    for item in report["targets"]:
        met = "-" if item["met"] is None else ("yes" if item["met"] else "no")
        lines.append(f"{item['what']:<54} {_number(item['value']):>8} {item['target']:>8} "
                     f"{met:>4}")
    generator = report["load_generator"]
    lines.append(f"\nload generator (wrk) CPU: {_percent(generator['machine_share'])} of the "
                 f"machine ({_number(generator['cores_used'])} cores while it ran)")
    for when, key in (("warm-up", "rss_after_warmup_mb"), ("the runs", "rss_mb")):
        rss = report.get(key) or {}
        lines.append(f"RSS per worker after {when}: service "
                     f"{', '.join(map(str, rss.get('service', []))) or '-'} MB; bare Flask "
                     f"{', '.join(map(str, rss.get('noop', []))) or '-'} MB")
    image = report.get("image") or {}
    size = image.get("size_bytes")
    lines.append(f"image size: {size / 1e6:.1f} MB ({image['name']})" if size
                 else "image size: not built")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write the JSON report, print the table."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8015", help="NGINX's URL")
    parser.add_argument("--gunicorn-url", default="http://127.0.0.1:8010",
                        help="the service's Gunicorn, straight")
    parser.add_argument("--noop-url", default="http://127.0.0.1:8011",
                        help="the bare Flask app's Gunicorn")
    parser.add_argument("--output", type=Path, default=Path("reports/bench.json"))
    parser.add_argument("--connections", type=int, default=Settings.connections)
    parser.add_argument("--seconds", type=float, default=Settings.seconds, help="per run")
    parser.add_argument("--rounds", type=int, default=Settings.rounds)
    parser.add_argument("--paced-rounds", type=int, default=Settings.paced_rounds,
                        help="rounds of the paced runs (target 4)")
    parser.add_argument("--batch-size", type=int, default=Settings.batch_size)
    parser.add_argument("--nginx-log", type=Path, help="NGINX's JSON access log (server time)")
    parser.add_argument("--pid-file", type=Path, help="the service's Gunicorn pid file")
    parser.add_argument("--noop-pid-file", type=Path, help="the bare app's Gunicorn pid file")
    parser.add_argument("--image", default="", help="Docker image whose size to report")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if shutil.which("wrk") is None:
        logger.error("wrk is not installed (Debian: apt-get install wrk)")
        return 2

    settings = Settings(urls={"nginx": args.url.rstrip("/"),
                              "gunicorn": args.gunicorn_url.rstrip("/"),
                              "noop": args.noop_url.rstrip("/")},
                        connections=args.connections, seconds=args.seconds,
                        rounds=args.rounds, paced_rounds=args.paced_rounds,
                        batch_size=args.batch_size,
                        pid_files={"service": args.pid_file, "noop": args.noop_pid_file})
    log_offset = args.nginx_log.stat().st_size if args.nginx_log and \
        args.nginx_log.is_file() else 0
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        measured = benchmark(settings, Path(directory))
    rss = {name: worker_rss_mb(path) for name, path in settings.pid_files.items()}
    single = next(item for item in endpoints(1) if item.name == SINGLE_NGINX)
    report: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tool": wrk_version(), "urls": settings.urls, "connections": settings.connections,
        "seconds": settings.seconds, "rounds": settings.rounds,
        "paced_rounds": settings.paced_rounds,
        "batch_size": settings.batch_size,
        "model_version": model_version(settings.urls["gunicorn"], single.body or b"{}"),
        "host": {"cpus": _cpus(), "python": platform.python_version()},
        **measured, "rss_mb": rss}
    if args.nginx_log and args.nginx_log.is_file():
        times = server_times_ms(args.nginx_log, log_offset, request_id(
            Endpoint(batch_alone_name(settings.batch_size), "nginx", "POST", ""), "measure"))
        report["batch_server_ms"] = {"requests": len(times), "p50": _median(times)}
    report["targets"] = judge(report)
    report["image"] = {"name": args.image, "size_bytes": image_size(args.image)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(table(report) + f"\nreport: {args.output}\n")
    failed = sum(result["errors"] for result in measured["endpoints"].values())
    if failed:
        logger.error("%d requests failed; the figures above are not a valid benchmark", failed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
