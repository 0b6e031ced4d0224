"""The MLflow Model Registry as the registry of record (called through training/tracking.py).

One registered model, named after the project. Every gated candidate is a model version whose
tags carry its registry name, artifact sha256, gate decision and holdout metrics; the
`production` alias says what serves, and promote and rollback move it. History is MLflow's:
each move is a run in the project's experiment (trigger promote or rollback), so the UI shows
who moved what and why, and rollback replays those runs.

The local file registry (training/registry.py) stays, as a cache of verified versions and
of the alias: models are loaded from it after their sha256 is checked, and the service,
which reads only that folder, keeps serving from it when the tracking store is unreachable.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.artifact import CARD_FILE, MODEL_FILE, LoadedModel
from training.canary_release import CANARY_ALIAS, CanaryRelease, ReleaseError
from training.config import TrainingConfig
from training.mlflow_tracking import (environment_tags, experiment_id, run_exists,
                                      safe_name, short, store_errors)
from training.registry import Registry, RegistryError, production_stack
from training.tracking import PRODUCTION_ALIAS, REGISTERED_MODEL, VERSION_TAG, tracking_uri

logger = logging.getLogger(__name__)

MOVED_ALIAS_TAG = "moved_alias"  # on the runs that record a move: the alias they moved
ARTIFACT_FOLDER = "registry"  # inside the run: registry/<version>/model.joblib, model.json
MISSING = "RESOURCE_DOES_NOT_EXIST"


class MlflowRegistry:
    """Versions in the MLflow Model Registry, the alias that serves, and a verified cache."""

    def __init__(self, config: TrainingConfig) -> None:
        self.uri = tracking_uri(config)
        self.config = config
        self.cache = Registry(config.registry_dir)
        self.client = MlflowClient(self.uri)
        self.root = self.cache.root  # where the verified copies are, for messages

    # --- reading -------------------------------------------------------------------------
    def production_version(self) -> str | None:
        """The version the production alias names, or None before the first promotion. A
        store without the registered model adopts what the local folder serves, if any."""
        with store_errors(self.uri, f"read the {PRODUCTION_ALIAS} alias"):
            registered = self._registered()
            serving = self._alias_version() if registered else None
        return serving if registered else self._adopt_cache()

    def canary_release(self) -> CanaryRelease | None:
        """The release the canary alias and its model version's tags describe, or None."""
        with store_errors(self.uri, f"read the {CANARY_ALIAS} alias"):
            model_version = self._by_alias(CANARY_ALIAS) if self._registered() else None
        if model_version is None:
            return None
        try:
            return CanaryRelease.from_tags(version_name(model_version), model_version.tags)
        except ReleaseError as error:
            raise RegistryError(f"{REGISTERED_MODEL} at {self.uri}: {error}") from None

    def versions(self) -> list[str]:
        """Registered versions, oldest first (names sort by creation time)."""
        return sorted(version_name(item) for item in self._model_versions())

    def card(self, version: str) -> dict[str, Any]:
        """The model card of one version (from the verified cache)."""
        return self._cached(version).card(version)

    def load(self, version: str) -> LoadedModel:
        """Load a version after verifying its sha256 against its card."""
        return self._cached(version).load(version)

    def load_verified(self, version: str) -> LoadedModel:
        """Load a version that can serve: sha256, library versions, card, a scoring check."""
        return self._cached(version).load_verified(version)

    def load_production(self) -> LoadedModel:
        """Load the production version; RegistryError when nothing was promoted yet."""
        version = self.production_version()
        if version is None:
            raise RegistryError(f"{REGISTERED_MODEL} at {self.uri}: no production model has "
                                "been promoted yet")
        return self.load(version)

    def history(self) -> list[dict[str, Any]]:
        """Every promotion and rollback, oldest first, from the runs that recorded them."""
        with store_errors(self.uri, "read the promotion history"):
            runs = self.client.search_runs(
                [experiment_id(self.config)],
                filter_string=f"tags.{MOVED_ALIAS_TAG} = '{PRODUCTION_ALIAS}'",
                order_by=["attributes.start_time ASC"], max_results=10000)
        return [{"time": datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc)
                 .isoformat(timespec="seconds"),
                 "action": run.data.tags["trigger"], "version": run.data.tags["version"],
                 "previous": run.data.tags.get("previous") or None,
                 "reason": run.data.tags.get("reason", "")}
                for run in runs if "version" in run.data.tags]

    # --- writing -------------------------------------------------------------------------
    def register(self, artifact_dir: Path, version: str | None = None,
                 card_updates: dict[str, Any] | None = None) -> str:
        """Verify and cache the artifact, then make it a model version (once per name)."""
        version = self.cache.register(artifact_dir, version, card_updates)
        if self._find(version) is not None:
            logger.info("version %s is already in the MLflow registry", version)
            return version
        card = self.cache.card(version)
        with store_errors(self.uri, f"register version {version} of {REGISTERED_MODEL}"):
            self._ensure_registered_model()
            run_id = self._run_for(card)
            for name in (MODEL_FILE, CARD_FILE):
                self.client.log_artifact(run_id, str(self.cache.root / version / name),
                                         artifact_path=f"{ARTIFACT_FOLDER}/{version}")
            source = f"{self.client.get_run(run_id).info.artifact_uri}/{ARTIFACT_FOLDER}/{version}"
            created = self.client.create_model_version(REGISTERED_MODEL, source, run_id=run_id,
                                                       tags=version_tags(version, card))
        logger.info("registered %s as version %s of %s at %s", version, created.version,
                    REGISTERED_MODEL, self.uri)
        return version

    def promote(self, version: str, reason: str = "") -> None:
        """Point the production alias at `version`, after it proved it can serve."""
        self._move(version, "promote", reason)

    def rollback(self, reason: str = "") -> str:
        """Point the production alias back at the version that served before this one."""
        current = self.production_version()
        if current is None:
            raise RegistryError("nothing to roll back: no production model yet")
        stack = production_stack(self.history())
        if len(stack) < 2 or stack[-1] != current:
            raise RegistryError(f"no earlier production version to roll back to from "
                                f"{current}")
        self._move(stack[-2], "rollback", reason)
        return stack[-2]

    def set_canary(self, release: CanaryRelease) -> None:
        """Tag the version with the release, record the move, point the canary alias at it."""
        model_version = self._find(release.version)
        if model_version is None:
            raise RegistryError(f"{REGISTERED_MODEL} at {self.uri}: no version "
                                f"{release.version}")
        self.load_verified(release.version)
        with store_errors(self.uri, f"release {release.version} as {CANARY_ALIAS}"):
            for key, value in release.to_tags().items():
                self.client.set_model_version_tag(REGISTERED_MODEL, model_version.version, key,
                                                  value)
            self._record_move("canary", CANARY_ALIAS, release.version, release.reason)
            self.client.set_registered_model_alias(REGISTERED_MODEL, CANARY_ALIAS,
                                                   model_version.version)
        self.cache.follow_canary(release)

    def clear_canary(self, action: str, reason: str = "") -> None:
        """Remove the canary alias (`action`: canary-promote or canary-abort), recorded."""
        release = self.canary_release()
        if release is None:
            raise RegistryError(f"{REGISTERED_MODEL} at {self.uri}: no canary release is "
                                "running")
        with store_errors(self.uri, f"{action} {release.version}"):
            self._record_move(action, CANARY_ALIAS, release.version, reason)
            self.client.delete_registered_model_alias(REGISTERED_MODEL, CANARY_ALIAS)
        self.cache.follow_canary(None)

    # --- internals -----------------------------------------------------------------------
    def _adopt_cache(self) -> str | None:
        """Register and promote the version the local folder serves: a registry kept as a
        folder before (or seeded from an image) carries on in MLflow instead of starting
        over without a champion."""
        serving = self.cache.production_version()
        if serving is None:
            return None
        logger.warning("%s has no %s model yet: adopting %s, which %s serves", self.uri,
                       REGISTERED_MODEL, serving, self.cache.root)
        self.register(self.cache.root / serving, version=serving)
        self._move(serving, "promote", f"adopted from the local registry {self.cache.root}")
        return serving

    def _move(self, version: str, action: str, reason: str) -> None:
        """Record the move as a run, then move the alias, then the cache's pointer."""
        model_version = self._find(version)
        if model_version is None:
            raise RegistryError(f"{REGISTERED_MODEL} at {self.uri}: no version {version}")
        self.load_verified(version)  # never point production at a model that cannot serve
        with store_errors(self.uri, f"{action} {version}"):
            previous = self._record_move(action, PRODUCTION_ALIAS, version, reason)
            self.client.set_registered_model_alias(REGISTERED_MODEL, PRODUCTION_ALIAS,
                                                   model_version.version)
        self.cache.follow(version)
        logger.info("%s: %s now serves as %s (previous: %s)", action, version,
                    PRODUCTION_ALIAS, previous or "none")

    def _record_move(self, action: str, alias: str, version: str, reason: str) -> str | None:
        """Record a move of `alias` as a finished run; return the production version then."""
        previous = self._alias_version()
        run = self.client.create_run(
            experiment_id(self.config), run_name=f"{action} {version}",
            tags={"trigger": action, MOVED_ALIAS_TAG: alias, "version": version,
                  "previous": previous or "", "reason": short(reason), **environment_tags()})
        self.client.set_terminated(run.info.run_id)
        return previous

    def _alias_version(self) -> str | None:
        """The version the production alias names now, without adopting anything."""
        model_version = self._by_alias(PRODUCTION_ALIAS)
        return version_name(model_version) if model_version is not None else None

    def _by_alias(self, alias: str) -> ModelVersion | None:
        """The model version an alias names, None when the alias is not set."""
        try:
            return self.client.get_model_version_by_alias(REGISTERED_MODEL, alias)
        except MlflowException as error:
            if error.error_code in (MISSING, "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def _cached(self, version: str) -> Registry:
        """The cache, holding `version` verified (downloaded on first use)."""
        if version in self.cache.versions():
            return self.cache
        model_version = self._find(version)
        if model_version is None:
            raise RegistryError(f"{REGISTERED_MODEL} at {self.uri}: no version {version}")
        with tempfile.TemporaryDirectory() as download:
            with store_errors(self.uri, f"download version {version}"):
                run_folder = f"{ARTIFACT_FOLDER}/{version}"
                local = Path(self.client.download_artifacts(model_version.run_id, run_folder,
                                                            download))
            self.cache.register(local, version)  # verifies the sha256 before keeping it
        return self.cache

    def _model_versions(self) -> list[ModelVersion]:
        with store_errors(self.uri, f"list the versions of {REGISTERED_MODEL}"):
            return list(self.client.search_model_versions(f"name = '{REGISTERED_MODEL}'"))

    def _find(self, version: str) -> ModelVersion | None:
        """The model version whose registry name is `version`."""
        matches = [item for item in self._model_versions() if version_name(item) == version]
        return matches[0] if matches else None

    def _registered(self) -> bool:
        """Whether the store holds the registered model."""
        try:
            self.client.get_registered_model(REGISTERED_MODEL)
        except MlflowException as error:
            if error.error_code != MISSING:
                raise
            return False
        return True

    def _ensure_registered_model(self) -> None:
        if not self._registered():
            self.client.create_registered_model(
                REGISTERED_MODEL, description="Credit-risk classifier; the production alias "
                                              "names the version that serves.")

    def _run_for(self, card: dict[str, Any]) -> str:
        """The candidate's training run when this store holds it, else a new register run."""
        run_id = card.get("tracking", {}).get("run_id")
        if run_id is not None and run_exists(self.client, run_id):
            return str(run_id)
        created = self.client.create_run(
            experiment_id(self.config), run_name=f"register {card['version']}",
            tags={"trigger": "register", "training_run_id": str(run_id),
                  "artifact_sha256": str(card.get("artifact_sha256")), **environment_tags()})
        self.client.set_terminated(created.info.run_id)
        return created.info.run_id


def version_name(model_version: ModelVersion) -> str:
    """The registry name a model version carries (its MLflow number if it has none)."""
    return model_version.tags.get(VERSION_TAG) or f"mlflow-{model_version.version}"


def version_tags(version: str, card: dict[str, Any]) -> dict[str, str]:
    """What a model version shows in the registry: name, sha256, gate and holdout metrics."""
    gate = card.get("gate", {})
    tags = {VERSION_TAG: version, "artifact_sha256": str(card.get("artifact_sha256")),
            "model_family": str(card.get("model_family")),
            "gate.decision": str(gate.get("decision", "")),
            "gate.reasons": short("; ".join(gate.get("reasons", [])))}
    for name, value in card.get("metrics", {}).items():
        if isinstance(value, (int, float)):
            tags[f"holdout.{safe_name(name)}"] = f"{value:.6g}"
    return tags
