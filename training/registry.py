"""A file-system model registry: immutable versions and an atomically switched pointer.

Layout::

    registry/
      <version>/model.joblib, model.json   written once, then read-only
      production                            the serving version's name, replaced atomically
      canary                                the canary release, while one runs (JSON)
      history.jsonl                         every promotion and rollback, appended

Readers (the web service) only read `production` and a version directory, so they need no
lock; writers take `registry/.lock` so that two pipelines cannot interleave a promotion.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.artifact import (CARD_FILE, MODEL_FILE, LoadedModel, atomic_write, load_artifact,
                               read_card, write_card)
from training.canary_release import CanaryRelease, ReleaseError
from training.jsonlines import append_lines, encode_lines, read_records
from training.model_check import check_servable

logger = logging.getLogger(__name__)

POINTER_FILE = "production"
CANARY_FILE = "canary"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RegistryError(Exception):
    """A registry operation that cannot be carried out, with the reason."""


def new_version_name(card: dict[str, Any]) -> str:
    """A sortable, unique version name: UTC time of creation and the artifact's short hash."""
    created = datetime.fromisoformat(card["created_at"]).astimezone(timezone.utc)
    return f"{created:%Y%m%dT%H%M%SZ}-{card['artifact_sha256'][:8]}"


def production_stack(history: list[dict[str, Any]]) -> list[str]:
    """Replay a promotion history: a promotion pushes a version, a rollback pops one. A
    promotion of the version already on top changes nothing (a rollback must not land on
    the version it leaves)."""
    stack: list[str] = []
    for event in history:
        if event["action"] == "promote":
            if not stack or stack[-1] != event["version"]:
                stack.append(event["version"])
        elif event["action"] == "rollback" and stack:
            stack.pop()
    return stack


class Registry:
    """Versions of the model under one directory, and which of them serves."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- reading -------------------------------------------------------------------------
    def production_version(self) -> str | None:
        """The version the production pointer names, or None before the first promotion;
        RegistryError when the pointer holds anything but a version name."""
        try:
            raw = (self.root / POINTER_FILE).read_bytes()
        except FileNotFoundError:
            return None
        try:
            name = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise RegistryError(f"{self.root / POINTER_FILE}: not a version name "
                                f"({raw[:80]!r})") from None
        if name and not VERSION_PATTERN.match(name):
            raise RegistryError(f"{self.root / POINTER_FILE}: invalid version name {name!r}")
        return name or None

    def canary_release(self) -> CanaryRelease | None:
        """The canary release running now, or None; RegistryError when its file is unusable."""
        try:
            text = (self.root / CANARY_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise RegistryError(f"{self.root / CANARY_FILE}: {error}") from None
        try:
            release = CanaryRelease.from_json(text)
        except (ReleaseError, TypeError) as error:
            raise RegistryError(f"{self.root / CANARY_FILE}: {error}") from None
        if not VERSION_PATTERN.match(release.version):
            raise RegistryError(f"{self.root / CANARY_FILE}: invalid version name "
                                f"{release.version!r}")
        return release

    def versions(self) -> list[str]:
        """Registered versions, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / CARD_FILE).is_file())

    def card(self, version: str) -> dict[str, Any]:
        """The model card of one version."""
        return read_card(self._version_dir(version))

    def load(self, version: str) -> LoadedModel:
        """Load a version after verifying its sha256 against its card."""
        return load_artifact(self._version_dir(version))

    def load_verified(self, version: str) -> LoadedModel:
        """Load a version that can serve: sha256, library versions, card and a scoring check.

        The model answers under its registry name: a copy of a version under another name
        is served (and reported) as the name production points at.
        """
        loaded = self.load(version)
        check_servable(loaded)
        if loaded.version != version:
            logger.warning("%s: the card names version %s; serving it as %s",
                           self.root / version, loaded.version, version)
            loaded = dataclasses.replace(loaded, card={**loaded.card, "version": version})
        return loaded

    def load_production(self) -> LoadedModel:
        """Load the production version; RegistryError when nothing was promoted yet."""
        version = self.production_version()
        if version is None:
            raise RegistryError(f"{self.root}: no production model has been promoted yet")
        return self.load(version)

    def fingerprint(self, version: str) -> tuple[tuple[int, int, int] | None, ...]:
        """Identity of a version's files (inode, size, mtime; None when missing): it changes
        when a version that was still being copied, or was repaired, is complete."""
        directory = self.root / version
        stamps = []
        for name in (CARD_FILE, MODEL_FILE):
            try:
                stat = (directory / name).stat()
            except FileNotFoundError:
                stamps.append(None)
            else:
                stamps.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        return tuple(stamps)

    def history(self) -> list[dict[str, Any]]:
        """Every promotion and rollback, oldest first."""
        path = self.root / HISTORY_FILE
        if not path.is_file():
            return []
        # A torn line (a full disk in an older version) is skipped, not fatal: the pointer,
        # not the history, says what serves.
        return [event for event in read_records(path)
                if isinstance(event.get("action"), str) and isinstance(event.get("version"), str)]

    # --- writing -------------------------------------------------------------------------
    def register(self, artifact_dir: Path, version: str | None = None,
                 card_updates: dict[str, Any] | None = None) -> str:
        """Copy a verified artifact in as a new, read-only version and return its name."""
        loaded = load_artifact(artifact_dir)  # refuses a tampered artifact before copying
        card = {**loaded.card, **(card_updates or {})}
        version = version or new_version_name(card)
        if not VERSION_PATTERN.match(version):
            raise RegistryError(f"invalid version name {version!r}")
        with self._locked():
            target = self.root / version
            if target.exists():
                if read_card(target).get("artifact_sha256") == card["artifact_sha256"]:
                    # The same bytes again (a re-run of a cached build): nothing to add.
                    logger.info("version %s is already registered", version)
                    return version
                raise RegistryError(f"version {version} already exists; versions are immutable")
            staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".incoming-"))
            try:
                shutil.copy2(artifact_dir / MODEL_FILE, staging / MODEL_FILE)
                card["version"] = version
                write_card(staging, card)
                for path in (staging / MODEL_FILE, staging / CARD_FILE):
                    path.chmod(0o444)
                staging.chmod(0o755)
                os.rename(staging, target)  # a version appears whole or not at all
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        logger.info("registered model version %s in %s", version, self.root)
        return version

    def promote(self, version: str, reason: str = "") -> None:
        """Make `version` the production model (atomic pointer switch)."""
        self.load_verified(version)  # never point production at a model that cannot serve
        with self._locked():
            try:
                previous = self.production_version()
            except RegistryError as error:  # promoting a good version repairs the pointer
                logger.warning("replacing an unreadable production pointer: %s", error)
                previous = None
            self._switch(version, action="promote", previous=previous, reason=reason)
        logger.info("promoted %s to production (previous: %s)", version, previous or "none")

    def rollback(self, reason: str = "") -> str:
        """Point production back at the version that served before the current one."""
        with self._locked():
            current = self.production_version()
            if current is None:
                raise RegistryError("nothing to roll back: no production model yet")
            stack = production_stack(self.history())
            if len(stack) < 2 or stack[-1] != current:
                raise RegistryError(
                    f"no earlier production version to roll back to from {current}")
            target = stack[-2]
            self.load_verified(target)
            self._switch(target, action="rollback", previous=current, reason=reason)
        logger.info("rolled production back from %s to %s", current, target)
        return target

    def set_canary(self, release: CanaryRelease) -> None:
        """Release a registered version as the canary (it must be able to serve)."""
        self.load_verified(release.version)
        with self._locked():
            self._record("canary", release.version, previous=self.production_version(),
                         reason=release.reason)
            atomic_write(self.root / CANARY_FILE, release.to_json())
        logger.info("%s runs as canary (%s, share %g)", release.version, release.mode,
                    release.share)

    def clear_canary(self, action: str, reason: str = "") -> None:
        """End the canary release (`action`: canary-promote or canary-abort), recorded."""
        with self._locked():
            release = self.canary_release()
            if release is None:
                raise RegistryError(f"{self.root}: no canary release is running")
            self._record(action, release.version, previous=self.production_version(),
                         reason=reason)
            (self.root / CANARY_FILE).unlink(missing_ok=True)
        logger.info("%s: canary %s ended", action, release.version)

    def follow_canary(self, release: CanaryRelease | None) -> None:
        """Mirror the canary release of a registry of record kept elsewhere (no history)."""
        if release is not None:
            self.load_verified(release.version)
        with self._locked():
            if release is None:
                (self.root / CANARY_FILE).unlink(missing_ok=True)
            else:
                atomic_write(self.root / CANARY_FILE, release.to_json())

    def follow(self, version: str) -> None:
        """Point production at `version` as a cache of a registry of record kept elsewhere
        (training/mlflow_registry.py): the pointer moves, the history here does not."""
        self.load_verified(version)
        with self._locked():
            atomic_write(self.root / POINTER_FILE, version + "\n")

    # --- internals -----------------------------------------------------------------------
    def _version_dir(self, version: str) -> Path:
        if not VERSION_PATTERN.match(version):
            raise RegistryError(f"invalid version name {version!r}")
        path = self.root / version
        if not path.is_dir():
            raise RegistryError(f"{self.root}: no version {version}")
        return path

    def _switch(self, version: str, action: str, previous: str | None, reason: str) -> None:
        # Recorded first: a full disk stops the switch here, with the history unchanged.
        self._record(action, version, previous, reason)
        atomic_write(self.root / POINTER_FILE, version + "\n")

    def _record(self, action: str, version: str, previous: str | None, reason: str) -> None:
        """Append one event to the history."""
        event = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "action": action, "version": version, "previous": previous, "reason": reason}
        append_lines(self.root / HISTORY_FILE, encode_lines([event]))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
