"""Render nginx/credit-risk.conf.template, the one NGINX site config of every environment.

The template's header lists its tokens; this module is the Python renderer (the tests' NGINX
and the Swarm stack's site config use it; `make serve` and the NGINX image build use sed on
the same four tokens). Standard library only (see pipeline/__init__.py).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pipeline.commands import ROOT

TEMPLATE = ROOT / "nginx" / "credit-risk.conf.template"
# The template's upstream group: where NGINX sends requests unless told to resolve a name.
UPSTREAM_GROUP = "credit_risk_app"
TOKEN = re.compile(r"\$\{(NGINX_[A-Z_]+)\}")


class SiteValues(NamedTuple):
    """The values of the template's tokens for one environment."""

    upstream: str
    listen: str
    static_root: str
    backend: str = UPSTREAM_GROUP

    def tokens(self) -> dict[str, str]:
        """The values by token name, as the template spells them."""
        return {"NGINX_UPSTREAM": self.upstream, "NGINX_LISTEN": self.listen,
                "NGINX_STATIC_ROOT": self.static_root, "NGINX_BACKEND": self.backend}


def render(values: SiteValues, template: str | None = None) -> str:
    """The site config with every token replaced; ValueError names a token the template
    lacks or holds without a value."""
    text = TEMPLATE.read_text() if template is None else template
    wanted = values.tokens()
    found = set(TOKEN.findall(text))
    if found != set(wanted):
        raise ValueError(f"{TEMPLATE.name}: tokens {sorted(found)} are not the expected "
                         f"{sorted(wanted)}")
    return TOKEN.sub(lambda match: wanted[match.group(1)], text)
