"""Follow the production alias of an MLflow server into a local registry folder.

A service replica reads only its local folder (training/registry.py), so it keeps serving,
and can start, when the server is unreachable. On another machine than the training, that
folder must be kept in step with the registry of record: this follower asks the server
which version the `production` alias names, downloads a version it does not hold through
the server's artifact proxy, keeps it only once its sha256 matches its card, and moves the
folder's pointer; every Gunicorn worker then swaps it in as for any promotion.

Only MLflow's REST API is used (requests, already a runtime dependency): the runtime image
does not install MLflow. The server must serve artifacts (`mlflow server`'s default), so
that a version's files are reachable at `mlflow-artifacts:` URIs.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from training.artifact import CARD_FILE, MODEL_FILE, ModelIntegrityError, atomic_write
from training.canary_release import CANARY_ALIAS, CanaryRelease, ReleaseError
from training.follower_status import STATUS_FILE
from training.registry import Registry
from training.tracking import PRODUCTION_ALIAS, REGISTERED_MODEL, VERSION_TAG, shown_uri

logger = logging.getLogger(__name__)

ALIAS_ENDPOINT = "/api/2.0/mlflow/registered-models/alias"
ARTIFACTS_ENDPOINT = "/api/2.0/mlflow-artifacts/artifacts/"
SERVED_ARTIFACTS_SCHEME = "mlflow-artifacts"


class FollowError(Exception):
    """The server could not be asked, or its answer cannot be followed; names the URL."""


class AliasFollower:
    """Keeps one local registry folder on the version a server's production alias names."""

    def __init__(self, server_url: str, cache: Registry, timeout: float = 30) -> None:
        if urlsplit(server_url).scheme not in ("http", "https"):
            raise FollowError(f"{server_url}: following the alias needs an http(s) MLflow "
                              "server (a database URI is read by the training commands)")
        self.server_url = server_url.rstrip("/")
        self.cache = cache
        self.timeout = timeout
        self.session = requests.Session()

    def sync(self) -> str | None:
        """Bring the folder to the alias's version and return it (None: nothing promoted);
        the outcome is written beside the folder for the service's /api/v1/model."""
        try:
            version = self._sync()
        except FollowError as error:
            self._write_status(error=str(error))
            raise
        self._write_status(error=None)
        return version

    def _sync(self) -> str | None:
        model_version = self._alias(PRODUCTION_ALIAS)
        if model_version is None:
            return None
        version = self._fetched(model_version)
        if self.cache.production_version() != version:
            self.cache.follow(version)
            logger.info("following %s at %s: %s now serves", PRODUCTION_ALIAS,
                        self.server_url, version)
        self._sync_canary()
        return version

    def _sync_canary(self) -> None:
        """Mirror the canary alias and its release, or its absence, into the folder."""
        model_version = self._alias(CANARY_ALIAS)
        release = None
        if model_version is not None:
            version = self._fetched(model_version)
            try:
                release = CanaryRelease.from_tags(version, _tags(model_version))
            except ReleaseError as error:
                raise FollowError(f"{self.server_url}: {error}") from None
        if self.cache.canary_release() != release:
            self.cache.follow_canary(release)
            logger.info("following %s at %s: %s", CANARY_ALIAS, self.server_url,
                        f"{release.version} runs as canary" if release else "no canary")

    def _fetched(self, model_version: dict[str, Any]) -> str:
        """The registry name of an alias's model version, held verified in the folder."""
        version = _tags(model_version).get(VERSION_TAG)
        if not version:
            raise FollowError(f"{self.server_url}: version {model_version.get('version')} of "
                              f"{REGISTERED_MODEL} has no {VERSION_TAG} tag")
        if version not in self.cache.versions():
            self._download(version, str(model_version.get("source", "")))
        return version

    def run(self, interval: float, stop: threading.Event) -> None:
        """Sync every `interval` seconds until `stop` is set; a failure is logged, and the
        folder keeps serving what it has."""
        while not stop.is_set():
            try:
                self.sync()
            except FollowError as error:
                logger.warning("%s (the folder keeps serving %s)", error,
                               self.cache.production_version() or "nothing")
            stop.wait(interval)

    def _write_status(self, error: str | None) -> None:
        status = {"server": shown_uri(self.server_url), "in_step": error is None,
                  "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "error": error}
        self.cache.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.cache.root / STATUS_FILE, json.dumps(status) + "\n")

    def _alias(self, alias: str) -> dict[str, Any] | None:
        response = self._get(ALIAS_ENDPOINT, params={"name": REGISTERED_MODEL, "alias": alias})
        if response.status_code == 404 or (
                response.status_code == 400 and "not found" in response.text.lower()):
            return None  # no registered model, or no alias on it yet
        self._check(response, f"read the {alias} alias")
        return response.json()["model_version"]

    def _download(self, version: str, source: str) -> None:
        """Fetch a version's two files through the artifact proxy and keep them verified."""
        scheme, _, path = source.partition(":")
        if scheme != SERVED_ARTIFACTS_SCHEME:
            raise FollowError(f"{self.server_url}: version {version} is stored at {source}, "
                              f"which only an {SERVED_ARTIFACTS_SCHEME}: URI (a server that "
                              "serves artifacts) makes reachable here")
        with tempfile.TemporaryDirectory() as download:
            for name in (MODEL_FILE, CARD_FILE):
                url_path = ARTIFACTS_ENDPOINT + quote(f"{path.lstrip('/')}/{name}")
                response = self._get(url_path)
                self._check(response, f"download {name} of version {version}")
                (Path(download) / name).write_bytes(response.content)
            try:  # register() verifies the sha256 against the card before keeping it
                self.cache.register(Path(download), version)
            except ModelIntegrityError as error:
                raise FollowError(f"{self.server_url}: version {version} refused: "
                                  f"{error}") from None
        logger.info("downloaded and verified version %s from %s", version, self.server_url)

    def _get(self, path: str, params: dict[str, str] | None = None) -> requests.Response:
        try:
            return self.session.get(self.server_url + path, params=params,
                                    timeout=self.timeout)
        except requests.RequestException as error:
            raise FollowError(f"{self.server_url}: unreachable ({error})") from None

    def _check(self, response: requests.Response, doing: str) -> None:
        if response.status_code != 200:
            raise FollowError(f"{self.server_url}: could not {doing}: HTTP "
                              f"{response.status_code} {response.text[:300]}")


def _tags(model_version: dict[str, Any]) -> dict[str, str]:
    """A REST model version's tags as a dict."""
    return {tag["key"]: tag["value"] for tag in model_version.get("tags", [])}
