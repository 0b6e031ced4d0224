"""The NGINX configuration itself: what may differ per environment, and `nginx -t`."""

from __future__ import annotations

import re
from pathlib import Path

from tests import servers

PLACEHOLDERS = {"${NGINX_UPSTREAM}", "${NGINX_LISTEN}", "${NGINX_STATIC_ROOT}"}


def test_template_has_exactly_the_three_environment_placeholders() -> None:
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
