"""Canary releases: start one, end it (promote or abort), and say where it stands.

A gated version runs beside production, on a share of the live requests (`canary`) or on
all of them without answering (`shadow`), until `canary-report` has seen enough outcomes to
decide. Only a version the gate registered (promoted or champion kept) and whose holdout
metrics clear the floor may run as a canary: live traffic is never a test bed for a model
the build already judged unfit.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Protocol

from training import gate
from training.canary_release import CANARY, MODES, CanaryRelease, new_release
from training.config import ConfigError, TrainingConfig
from training.registry import RegistryError

logger = logging.getLogger(__name__)

DIRECT = "direct"
PROMOTIONS = (DIRECT, CANARY)  # TrainingConfig.promotion; Jenkins's PROMOTION parameter
GATED_DECISIONS = (gate.PROMOTED, gate.CHAMPION_KEPT)
PROMOTE_ACTION = "canary-promote"
ABORT_ACTION = "canary-abort"


class CanaryRegistry(Protocol):
    """What canary operations need of a registry (the file one or MLflow's)."""

    def production_version(self) -> str | None:
        """The version production names."""

    def card(self, version: str) -> dict[str, Any]:
        """A version's model card."""

    def canary_release(self) -> CanaryRelease | None:
        """The running canary release, if any."""

    def set_canary(self, release: CanaryRelease) -> None:
        """Start a canary release."""

    def clear_canary(self, action: str, reason: str = "") -> None:
        """End the canary release."""

    def promote(self, version: str, reason: str = "") -> None:
        """Make a version production."""


def promotion_mode(config: TrainingConfig) -> str:
    """The configured promotion, checked against the known ones."""
    if config.promotion not in PROMOTIONS:
        raise ConfigError(f"TRAINING_PROMOTION={config.promotion!r} is not one of "
                          f"{list(PROMOTIONS)}")
    return config.promotion


def eligibility_problems(card: dict[str, Any], config: TrainingConfig) -> list[str]:
    """Why a version may not run as a canary (empty: it may)."""
    problems = []
    decision = card.get("gate", {}).get("decision")
    if decision not in GATED_DECISIONS:
        problems.append(f"it was not gated (gate decision {decision!r}, needs one of "
                        f"{list(GATED_DECISIONS)})")
    metrics = card.get("metrics", {})
    for name, floor in (("roc_auc", config.floor_roc_auc),
                        ("recall_bad", config.floor_recall_bad)):
        value = metrics.get(name)
        if not isinstance(value, (int, float)) or value < floor:
            problems.append(f"its holdout {name} {value!r} is under the floor {floor}")
    return problems


def start(registry: CanaryRegistry, version: str, config: TrainingConfig, mode: str = CANARY,
          share: float | None = None, reason: str = "") -> CanaryRelease:
    """Release a gated version as the canary; RegistryError naming why it may not."""
    if mode not in MODES:
        raise RegistryError(f"mode {mode!r} is not one of {list(MODES)}")
    production = registry.production_version()
    if production is None:
        raise RegistryError("no production model to run a canary beside")
    if version == production:
        raise RegistryError(f"{version} already serves as production")
    running = registry.canary_release()
    if running is not None:
        raise RegistryError(f"canary {running.version} is running; promote or abort it first")
    problems = eligibility_problems(registry.card(version), config)
    if problems:
        raise RegistryError(f"{version} may not run as a canary: {'; '.join(problems)}")
    release = new_release(version, mode, config.canary_share if share is None else share,
                          config.canary_max_error_rate, config.canary_max_latency_ms,
                          reason or f"canary beside {production}")
    registry.set_canary(release)
    return release


def running(registry: CanaryRegistry) -> CanaryRelease:
    """The running canary release; RegistryError when there is none."""
    release = registry.canary_release()
    if release is None:
        raise RegistryError("no canary release is running")
    return release


def promote(registry: CanaryRegistry, reason: str) -> str:
    """Make the canary production, then end the release; returns its version."""
    release = running(registry)
    registry.promote(release.version, reason=f"canary promoted: {reason}")
    registry.clear_canary(PROMOTE_ACTION, reason)
    logger.info("canary %s promoted to production: %s", release.version, reason)
    return release.version


def abort(registry: CanaryRegistry, reason: str) -> str:
    """End the release; production answers every request again. Returns the version."""
    release = running(registry)
    registry.clear_canary(ABORT_ACTION, reason)
    logger.warning("canary %s aborted: %s", release.version, reason)
    return release.version


def status(registry: CanaryRegistry) -> dict[str, Any]:
    """Production and the canary release, JSON-ready."""
    release = registry.canary_release()
    return {"production": registry.production_version(),
            "canary": None if release is None else dataclasses.asdict(release)}


def release_challenger(registry: CanaryRegistry, version: str, config: TrainingConfig,
                       reason: str) -> CanaryRelease:
    """The gate's way to promote under PROMOTION=canary: a running canary is superseded."""
    previous = registry.canary_release()
    if previous is not None:
        abort(registry, f"superseded by challenger {version}")
    return start(registry, version, config, reason=reason)
