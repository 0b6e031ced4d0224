"""Benchmark of the service through NGINX: scoring one row, scoring a batch, and a no-op.

`/healthz` answers a constant JSON document through the same NGINX, Gunicorn and Flask
stack, so it is the framework floor: the ratio of predict to it is the cost of the model
and validation themselves. The endpoints run in alternating closed-loop phases (a few
rounds, the order rotated each round) so that all three see the same machine conditions.
Requests leave from the loopback address NGINX does not rate limit (LOAD_GENERATOR_ADDRESS),
so the numbers measure the service, not the limit.

It is a measurement, not a check: nothing passes or fails on timing. The exit status is 1
only when requests failed, because the figures would then describe errors. `make bench`
starts its own servers, runs `python -m pipeline.bench`, and stops them.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from training.schema import FEATURES

logger = logging.getLogger(__name__)

# NGINX exempts this source address from its rate limit (nginx/credit-risk.conf.template).
LOAD_GENERATOR_ADDRESS = "127.0.0.2"
DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "credit.csv"
NOOP = "healthz"


@dataclass(frozen=True)
class Endpoint:
    """One benchmarked request: method, path, JSON body, and rows it scores."""

    name: str
    method: str
    path: str
    body: bytes | None = None
    rows: int = 0


@dataclass
class Samples:
    """What the requests to one endpoint measured."""

    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: int = 0
    elapsed: float = 0.0  # wall time of this endpoint's phases

    def summary(self, endpoint: Endpoint) -> dict[str, Any]:
        """Requests/s, rows/s and latency percentiles (ms) of the endpoint."""
        done = len(self.latencies)
        ms = sorted(latency * 1000 for latency in self.latencies)
        cuts = statistics.quantiles(ms, n=100, method="inclusive") if done > 1 else ms * 99
        rps = done / self.elapsed if self.elapsed else 0.0
        return {"method": endpoint.method, "path": endpoint.path, "rows_per_request":
                endpoint.rows, "requests": done + self.errors, "errors": self.errors,
                "seconds": round(self.elapsed, 3), "requests_per_second": round(rps, 1),
                "rows_per_second": round(rps * endpoint.rows, 1),
                "latency_ms": {"p50": round(cuts[49], 2) if ms else None,
                               "p99": round(cuts[98], 2) if ms else None,
                               "mean": round(statistics.fmean(ms), 2) if ms else None,
                               "max": round(ms[-1], 2) if ms else None}}


def applicants(count: int, data_file: Path = DATA_FILE) -> list[dict[str, Any]]:
    """The first `count` applicants of the data set, as the API expects them."""
    rows: list[dict[str, Any]] = []
    with open(data_file, newline="") as handle:
        for record in csv.DictReader(handle):
            rows.append({column.name: int(record[column.name]) if column.is_numeric
                         else record[column.name] for column in FEATURES})
            if len(rows) == count:
                return rows
    raise ValueError(f"{data_file} has fewer than {count} rows")


def endpoints(batch_size: int) -> list[Endpoint]:
    """The three benchmarked requests: the no-op floor, one applicant, a batch."""
    batch = applicants(batch_size)
    return [Endpoint(NOOP, "GET", "/healthz"),
            Endpoint("predict_single", "POST", "/api/v1/predict",
                     json.dumps(batch[0]).encode(), rows=1),
            Endpoint(f"predict_batch_{batch_size}", "POST", "/api/v1/predict",
                     json.dumps({"instances": batch}).encode(), rows=batch_size)]


class Client:
    """One keep-alive connection from the load generator address, reopened after errors."""

    def __init__(self, url: str, source_address: str = LOAD_GENERATOR_ADDRESS) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.source_address = source_address
        self.connection: http.client.HTTPConnection | None = None

    def request(self, endpoint: Endpoint) -> tuple[int, bytes]:
        """Send one request; (status, body), status 0 for a connection failure."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                self.host, self.port, timeout=30, source_address=(self.source_address, 0))
        headers = {"Content-Type": "application/json"} if endpoint.body is not None else {}
        try:
            self.connection.request(endpoint.method, endpoint.path, endpoint.body, headers)
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            logger.warning("%s %s failed: %s", endpoint.method, endpoint.path, error)
            self.close()
            return 0, b""

    def close(self) -> None:
        """Close the connection (a new one opens on the next request)."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def run_phase(clients: list[Client], endpoint: Endpoint, count: int, samples: Samples) -> None:
    """Send `count` requests to `endpoint`, one closed loop per client, and record them."""
    remaining = [count]
    lock = threading.Lock()

    def loop(client: Client) -> None:
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            started = time.perf_counter()
            status, _ = client.request(endpoint)
            latency = time.perf_counter() - started
            with lock:
                if status == 200:
                    samples.latencies.append(latency)
                else:
                    samples.errors += 1

    threads = [threading.Thread(target=loop, args=(client,)) for client in clients]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples.elapsed += time.perf_counter() - started


def benchmark(url: str, requests_per_endpoint: int = 300, concurrency: int = 4,
              batch_size: int = 50, rounds: int = 3, warmup: int = 10) -> dict[str, Any]:
    """Measure every endpoint through `url` and return the report (see module docstring)."""
    targets = endpoints(batch_size)
    clients = [Client(url) for _ in range(concurrency)]
    samples = {endpoint.name: Samples() for endpoint in targets}
    try:
        for endpoint in targets:  # connections open, model and code paths warm
            run_phase(clients, endpoint, warmup, Samples())
        per_round = max(1, requests_per_endpoint // rounds)
        for number in range(rounds):
            shift = number % len(targets)
            for endpoint in targets[shift:] + targets[:shift]:
                logger.info("round %d/%d: %d x %s", number + 1, rounds, per_round,
                            endpoint.name)
                run_phase(clients, endpoint, per_round, samples[endpoint.name])
        status, body = clients[0].request(targets[1])
        version = json.loads(body).get("model_version") if status == 200 else None
    finally:
        for client in clients:
            client.close()
    results = {endpoint.name: samples[endpoint.name].summary(endpoint) for endpoint in targets}
    return {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "url": url,
            "model_version": version, "concurrency": concurrency, "rounds": rounds,
            "batch_size": batch_size, "host": {"cpus": _cpus(), "python":
                                               platform.python_version()},
            "endpoints": results, "ratios": ratios(results)}


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Each predict endpoint against the no-op: throughput and median latency ratios."""
    floor = results[NOOP]
    out: dict[str, dict[str, float | None]] = {}
    for name, result in results.items():
        if name == NOOP:
            continue
        rps, floor_rps = result["requests_per_second"], floor["requests_per_second"]
        p50, floor_p50 = result["latency_ms"]["p50"], floor["latency_ms"]["p50"]
        out[name] = {
            "requests_per_second_vs_noop": round(rps / floor_rps, 3) if floor_rps else None,
            "p50_latency_vs_noop": round(p50 / floor_p50, 2) if p50 and floor_p50 else None}
    return out


def _cpus() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def image_size(image: str) -> int | None:
    """Size in bytes of a local Docker image, or None when Docker or the image is absent."""
    if not image or shutil.which("docker") is None:
        return None
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image],
                            capture_output=True, text=True, timeout=60, check=False)
    return int(result.stdout.strip()) if result.returncode == 0 else None


def table(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table."""
    header = (f"{'endpoint':<20} {'requests':>8} {'errors':>6} {'req/s':>8} {'rows/s':>9} "
              f"{'p50 ms':>8} {'p99 ms':>8} {'req/s vs no-op':>15}")
    lines = [f"benchmark through {report['url']} (model {report['model_version']}, "
             f"concurrency {report['concurrency']}, {report['host']['cpus']} CPUs)",
             header, "-" * len(header)]
    for name, result in report["endpoints"].items():
        ratio = report["ratios"].get(name, {}).get("requests_per_second_vs_noop")
        latency = result["latency_ms"]
        lines.append(f"{name:<20} {result['requests']:>8} {result['errors']:>6} "
                     f"{result['requests_per_second']:>8.1f} {result['rows_per_second']:>9.1f} "
                     f"{_number(latency['p50']):>8} {_number(latency['p99']):>8} "
                     f"{'floor' if name == NOOP else _number(ratio):>15}")
    image = report.get("image") or {}
    size = image.get("size_bytes")
    lines.append(f"image size: {size / 1e6:.1f} MB ({image['name']})" if size
                 else "image size: not built")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write the JSON report, print the table."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8005", help="NGINX's URL")
    parser.add_argument("--output", type=Path, default=Path("reports/bench.json"))
    parser.add_argument("--requests", type=int, default=300, help="per endpoint")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", default="", help="Docker image whose size to report")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    report = benchmark(args.url, args.requests, args.concurrency, args.batch_size,
                       args.rounds)
    report["image"] = {"name": args.image, "size_bytes": image_size(args.image)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(table(report) + f"\nreport: {args.output}\n")
    failed = sum(result["errors"] for result in report["endpoints"].values())
    if failed:
        logger.error("%d requests failed; the figures above are not a valid benchmark", failed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
