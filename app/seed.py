"""Seed an empty registry with a baked-in artifact (the Docker image's model).

Called by Gunicorn's `on_starting` hook, in the master, before any worker loads a model:
when MODEL_SEED_DIR names an artifact and the registry has no production model yet, the
artifact is registered (verified first) and promoted. An existing production model is
never replaced: the registry, not the image, decides what serves.
"""

from __future__ import annotations

import logging
from pathlib import Path

from training.registry import Registry

logger = logging.getLogger(__name__)

SEED_REASON = "seeded from image"


def seed_registry(registry_dir: Path, seed_dir: Path | None) -> str | None:
    """Register and promote `seed_dir` when the registry has no production model."""
    if seed_dir is None or not str(seed_dir):
        return None
    registry = Registry(Path(registry_dir))
    current = registry.production_version()
    if current is not None:
        logger.info("registry %s already serves %s; seed %s not used", registry.root,
                    current, seed_dir)
        return None
    version = registry.register(Path(seed_dir))
    registry.promote(version, reason=SEED_REASON)
    logger.info("seeded registry %s with %s from %s", registry.root, version, seed_dir)
    return version
