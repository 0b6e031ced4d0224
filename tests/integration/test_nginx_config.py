"""The NGINX configuration itself: what may differ per environment, and `nginx -t`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import create_app
from app.config import DEFAULTS
from pipeline import swarm
from pipeline.bench import applicants
from tests import servers
from training.registry import Registry

PLACEHOLDERS = {"${NGINX_UPSTREAM}", "${NGINX_LISTEN}", "${NGINX_STATIC_ROOT}",
                "${NGINX_BACKEND}"}


def test_template_has_exactly_the_four_environment_placeholders() -> None:
    found = set(re.findall(r"\$\{[A-Z_]+\}", servers.NGINX_TEMPLATE.read_text()))
    assert found == PLACEHOLDERS


def test_standalone_main_config_has_no_placeholders() -> None:
    assert "${" not in servers.NGINX_MAIN.read_text()


def test_rendered_config_passes_nginx_t(tmp_path: Path) -> None:
    conf = servers.render_nginx_config(tmp_path, "127.0.0.1:9", "127.0.0.1:9")
    checked = servers.check_nginx_config(conf)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    assert "${" not in (tmp_path / "credit-risk.conf").read_text()


def test_rendered_config_with_image_values_passes_nginx_t(tmp_path: Path) -> None:
    """The values the NGINX image uses (a host name upstream, a bare port) are valid too."""
    conf = servers.render_nginx_config(tmp_path, "localhost:8000", "127.0.0.1:80",
                                       static_root=Path("/usr/share/nginx/static"))
    checked = servers.check_nginx_config(conf)
    assert checked.returncode == 0, checked.stderr


def test_rate_limit_exemption_is_the_load_generator_address() -> None:
    geo = re.search(r"geo \$edge_rate_limited \{(.*?)\}", servers.NGINX_TEMPLATE.read_text(),
                    re.S)
    assert geo is not None
    exempt = re.findall(r"^\s*(\S+)\s+0;", geo.group(1), re.M)
    assert exempt == [servers.LOAD_GENERATOR_ADDRESS]


# --- limits shared with the app --------------------------------------------------------
UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}


def _bytes(size: str) -> int:
    """An NGINX size ("16k", "1m", "512") in bytes."""
    number, unit = re.fullmatch(r"(\d+)([km]?)", size.lower()).groups()
    return int(number) * UNITS[unit]


def _directives(block: str) -> dict[str, str]:
    """The simple `name value;` directives directly inside one block's text."""
    return dict(re.findall(r"^\s*([a-z_]+)\s+([^;{]+);", block, re.M))


def _server_and_locations() -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Directives of the server block itself, and of each location by its pattern."""
    server = servers.NGINX_TEMPLATE.read_text().split("server {", 1)[1]
    locations = dict(re.findall(r"location\s+([^{]+?)\s*\{(.*?)\n    \}", server, re.S))
    outside = re.sub(r"location\s+[^{]+\{.*?\n    \}", "", server, flags=re.S)
    outside = re.sub(r"if \([^)]*\) \{.*?\}", "", outside, flags=re.S)
    return _directives(outside), {pattern: _directives(body)
                                  for pattern, body in locations.items()}


@pytest.mark.parametrize(("location", "setting"), [
    (None, "MAX_CONTENT_LENGTH"),
    ("= /api/v1/predict", "MAX_PREDICT_BYTES"),
    ("/api/", "MAX_FEEDBACK_BYTES"),
])
def test_nginx_body_limits_are_the_apps_and_bodies_stay_in_memory(location: str | None,
                                                                  setting: str) -> None:
    server, locations = _server_and_locations()
    directives = locations[location] if location else server
    assert _bytes(directives["client_max_body_size"]) == DEFAULTS[setting]
    # Over the limit (a full buffer goes to a temp file), by at most a page.
    buffer = _bytes(directives["client_body_buffer_size"])
    assert DEFAULTS[setting] < buffer <= DEFAULTS[setting] + 4096


def test_limit_conn_is_on_the_same_key_as_limit_req() -> None:
    template = servers.NGINX_TEMPLATE.read_text()
    assert "limit_req_zone $edge_limit_key " in template
    assert "limit_conn_zone $edge_limit_key " in template
    server, _ = _server_and_locations()
    # Above what limit_req lets through at once, so it never cuts into the allowed burst.
    zone, connections = server["limit_conn"].split()
    burst = int(re.search(r"burst=(\d+)", template).group(1))
    assert zone == "credit_risk_conn" and int(connections) > burst + 1
    assert server["limit_conn_status"] == "429"


def test_nginx_buffers_hold_the_largest_responses_of_the_app(
        tmp_path: Path, trained_model_dir: Path) -> None:
    """Responses are buffered whole, never written to temp files, so each must fit."""
    server, _ = _server_and_locations()
    assert server["proxy_buffering"] == "on"
    count, size = server["proxy_buffers"].split()
    capacity = _bytes(server["proxy_buffer_size"]) + int(count) * _bytes(size)
    registry = Registry(tmp_path / "registry")
    registry.promote(registry.register(trained_model_dir), reason="buffer sizes")
    app = create_app({"TESTING": True, "MODEL_REGISTRY": str(registry.root),
                      "PREDICTION_LOG": str(tmp_path / "predictions.jsonl"),
                      "FEEDBACK_LOG": str(tmp_path / "feedback.jsonl")})
    client = app.test_client()
    full_batch = {"instances": applicants(DEFAULTS["MAX_BATCH_SIZE"])}
    answers = {
        "openapi": client.get("/api/v1/openapi.json"),
        "model card": client.get("/api/v1/model"),
        "form": client.get("/?example=1"),
        "full batch": client.post("/api/v1/predict", json=full_batch),
        "full batch of errors": client.post(
            "/api/v1/predict", json={"instances": [{}] * DEFAULTS["MAX_BATCH_SIZE"]}),
    }
    sizes = {name: len(response.data) for name, response in answers.items()}
    print(f"NGINX response buffers: {capacity} bytes; largest answers: {sizes}")
    assert answers["full batch"].status_code == 200
    assert max(sizes.values()) <= capacity, sizes


def test_swarm_site_config_resolves_the_app_per_request_and_passes_nginx_t(
        tmp_path: Path) -> None:
    """Under Swarm every proxy_pass goes to the app's name, resolved through Docker's DNS;
    the image's listen address and static root stay."""
    site = swarm.swarm_site_config()
    assert "set $credit_risk_backend app:8000;" in site
    assert site.count("proxy_pass http://$credit_risk_backend;") == 4
    assert "proxy_pass http://credit_risk_app" not in site
    assert "resolver 127.0.0.11 valid=2s" in site
    assert "alias /usr/share/nginx/credit-risk/static/;" in site
    (tmp_path / "credit-risk.conf").write_text(site.replace("listen 80 ", "listen 127.0.0.1:9 "))
    (tmp_path / "nginx.conf").write_text(servers.NGINX_MAIN.read_text())
    checked = servers.check_nginx_config(tmp_path / "nginx.conf")
    assert checked.returncode == 0, checked.stderr
