"""Metrics stay bounded: fixed label values, and dead workers' files folded away."""

from __future__ import annotations

import json
from pathlib import Path

from flask.testing import FlaskClient
from prometheus_client.mmap_dict import MmapedDict

from app.metrics import Metrics
from app.metrics_files import merge_dead_worker
from tests.api.conftest import metric_value


def test_methods_a_client_invents_share_one_label_value(client: FlaskClient) -> None:
    for method in ("BREW", "PROPFIND", "XYZZYX"):
        assert client.open("/api/v1/predict", method=method).status_code == 405
    sample = 'credit_http_requests_total{method="other",route="<unmatched>",status="405"}'
    assert metric_value(client, sample) == 3.0
    assert "BREW" not in client.get("/metrics").get_data(as_text=True)


def test_every_gauge_is_a_live_mode_so_dead_workers_leave_no_gauge_file() -> None:
    gauges = [metric for metric in vars(Metrics()).values()
              if getattr(metric, "_type", None) == "gauge"]
    assert gauges and all(g._multiprocess_mode.startswith("live") for g in gauges)


def _key(route: str) -> str:
    return json.dumps(["credit_http_requests_total", "credit_http_requests_total",
                       {"route": route}, "HTTP requests answered."])


def _write(path: Path, values: dict[str, float]) -> None:
    store = MmapedDict(str(path))
    for key, value in values.items():
        store.write_value(key, value, 0.0)
    store.close()


def test_dead_workers_files_are_folded_into_one_and_removed(tmp_path: Path) -> None:
    _write(tmp_path / "counter_101.db", {_key("/a"): 3.0, _key("/b"): 1.0})
    _write(tmp_path / "counter_102.db", {_key("/a"): 4.0})
    _write(tmp_path / "gauge_livemax_101.db", {_key("/g"): 1.0})
    _write(tmp_path / "counter_103.db", {_key("/a"): 5.0})  # a live worker: untouched
    merge_dead_worker(101, str(tmp_path))
    merge_dead_worker(102, str(tmp_path))
    left = sorted(path.name for path in tmp_path.glob("*.db"))
    assert left == ["counter_103.db", "counter_merged.db"]
    merged = {key: value for key, value, _, _ in
              MmapedDict.read_all_values_from_file(str(tmp_path / "counter_merged.db"))}
    assert merged == {_key("/a"): 7.0, _key("/b"): 1.0}
