"""A canary release: which version runs beside production, how, and when it must stop.

The release is one small record, kept in the registry of record (the `canary` alias and its
model version's tags in MLflow) and mirrored into the local registry folder as the file
`canary`, which is all a service replica reads. It carries its own limits (error rate and
latency), so every worker and replica, and `canary-report`, judge the canary by the same
numbers without a second copy of them in the service's settings.

Routing is a pure function of the request's trace id (the client's X-Request-ID, else
NGINX's): the same request retried with its id gets the same arm in every worker and
replica, and a share of 0.2 sends a fifth of distinct ids to the canary.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

CANARY_ALIAS = "canary"
CANARY = "canary"  # mode: the canary answers its share of requests
SHADOW = "shadow"  # mode: the canary scores every request; production answers all of them
MODES = (CANARY, SHADOW)
PRODUCTION_ARM = "production"
CANARY_ARM = "canary"
ARMS = (PRODUCTION_ARM, CANARY_ARM)  # the arms that answer; shadow scores without answering
TAG_PREFIX = "canary."  # the release's fields as tags of the canary's MLflow model version
_NUMBERS = ("share", "max_error_rate", "max_latency_ms")
# A canary is judged on its error rate from this many scorings on, and only once this many
# failed (one transient failure is not a verdict); on its p95 scoring time from this many.
MIN_SCORINGS = 20
MIN_ERRORS = 3
# Where the two arms' answers are routed from: 8 bytes of a sha256 are uniform enough for
# shares down to 1e-6 and cost a microsecond.
_HASH_SPACE = float(1 << 64)


class ReleaseError(ValueError):
    """A canary release that cannot be started or read, naming the field."""


@dataclass(frozen=True)
class CanaryRelease:
    """The canary's version, mode and share, and the limits that abort it."""

    version: str
    mode: str
    share: float
    max_error_rate: float
    max_latency_ms: float
    started_at: str
    reason: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ReleaseError(f"mode {self.mode!r} is not one of {list(MODES)}")
        for name in ("share", "max_error_rate", "max_latency_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ReleaseError(f"{name} {value!r} is not a number")
        if not 0.0 < self.share < 1.0:
            raise ReleaseError(f"share {self.share!r} must be above 0 and below 1 (a canary "
                               "that takes all traffic is a promotion)")
        if not 0.0 <= self.max_error_rate < 1.0:
            raise ReleaseError(f"max_error_rate {self.max_error_rate!r} must be in [0, 1)")
        if self.max_latency_ms <= 0:
            raise ReleaseError(f"max_latency_ms {self.max_latency_ms!r} must be above 0")

    @property
    def answers(self) -> bool:
        """Whether the canary answers its share of requests (False: shadow only)."""
        return self.mode == CANARY

    def routes_to_canary(self, trace_id: str) -> bool:
        """Whether the request with this trace id belongs to the canary's share."""
        return arm_position(trace_id) < self.share

    def to_json(self) -> str:
        """The record as one JSON line (the registry folder's `canary` file)."""
        return json.dumps(asdict(self), sort_keys=True) + "\n"

    def to_tags(self) -> dict[str, str]:
        """The release's fields (but the version, which the alias names) as MLflow tags."""
        return {TAG_PREFIX + name: str(value) for name, value in asdict(self).items()
                if name != "version"}

    @classmethod
    def from_tags(cls, version: str, tags: dict[str, str]) -> "CanaryRelease":
        """The release recorded on the model version that the canary alias names."""
        payload: dict[str, Any] = {"version": version}
        for name, value in tags.items():
            if name.startswith(TAG_PREFIX):
                payload[name[len(TAG_PREFIX):]] = value
        try:
            for name in _NUMBERS:
                if name in payload:
                    payload[name] = float(payload[name])
        except ValueError as error:
            raise ReleaseError(f"version {version}: canary tag {name}: {error}") from None
        return cls.from_dict(payload)

    @classmethod
    def from_dict(cls, payload: Any) -> "CanaryRelease":
        """The release a stored record describes; ReleaseError naming what is wrong."""
        if not isinstance(payload, dict):
            raise ReleaseError("a canary release is a JSON object")
        fields = ("version", "mode", *_NUMBERS, "started_at")
        missing = [name for name in fields if name not in payload]
        if missing:
            raise ReleaseError(f"the canary release lacks {', '.join(missing)}")
        return cls(**{name: payload[name] for name in (*fields, "reason") if name in payload})

    @classmethod
    def from_json(cls, text: str) -> "CanaryRelease":
        """Parse the registry folder's `canary` file."""
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as error:
            raise ReleaseError(f"the canary release is not JSON: {error}") from None


def new_release(version: str, mode: str, share: float, max_error_rate: float,
                max_latency_ms: float, reason: str = "") -> CanaryRelease:
    """A release starting now (UTC)."""
    started = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    # Shadow scores every request; its share is kept only to say so in reports.
    return CanaryRelease(version, mode, share, max_error_rate, max_latency_ms, started, reason)


def arm_position(trace_id: str) -> float:
    """Where a trace id falls in [0, 1): the same id always falls in the same place."""
    digest = hashlib.sha256(trace_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPACE


def limit_breach(release: CanaryRelease, scorings: int, errors: int,
                 latencies_ms: Sequence[float]) -> str:
    """Which of its limits the canary broke, in words ("" for none): the service's guard
    and canary-report judge by this one rule."""
    limit = release.max_error_rate
    if errors >= MIN_ERRORS and scorings >= MIN_SCORINGS and errors / scorings > limit:
        return f"{errors} of {scorings} scorings failed (more than {limit:.1%})"
    if len(latencies_ms) >= MIN_SCORINGS:
        p95 = nearest_rank_p95(latencies_ms)
        if p95 > release.max_latency_ms:
            return (f"p95 scoring time {p95:.1f} ms over {len(latencies_ms)} scorings exceeds "
                    f"{release.max_latency_ms:g} ms")
    return ""


def nearest_rank_p95(values: Sequence[float]) -> float:
    """The nearest-rank 95th percentile: a value that was observed, whatever the sample's
    size (ValueError for no values)."""
    if not values:
        raise ValueError("no values to take a percentile of")
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]
