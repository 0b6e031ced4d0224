"""Smoke test of a deployed service, through NGINX: `python -m pipeline.smoke`.

Checks, in order: /readyz answers 200 (retried for a bounded time while the stack starts),
the OpenAPI document's example applicant is scored by POST /api/v1/predict, the served model
version (from /readyz and from the prediction) equals the expected one, and /metrics is not
public. The expected version is EXPECTED_MODEL_VERSION (or --expected-version) when set,
else the image's model version label (`--expected-from-image`, Docker mode) or the
registry's production version (`--expected-from-registry`, native mode).

Standard library only (see pipeline/__init__.py), except `--expected-from-registry`, which
reads the registry with `training`. Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("pipeline.smoke")

DEFAULT_URL = "http://127.0.0.1:8005"
# The Dockerfile's label naming the model version the registry gives the baked-in model.
MODEL_VERSION_LABEL = "io.credit-risk.model.version"
DECISIONS = ("approve", "decline")
# The arm that answers outside a canary's share (training.canary_release.PRODUCTION_ARM; this
# file runs piped into a bare container, so it imports nothing of the repository's).
PRODUCTION_ARM = "production"


class SmokeError(Exception):
    """A failed smoke check, with what was expected and what came back."""


@dataclass
class Answer:
    """One HTTP answer: status and parsed JSON body (None when the body is not JSON)."""

    status: int
    body: Any
    text: str


def request(url: str, payload: Any = None, timeout: float = 5.0) -> Answer:
    """GET `url`, or POST `payload` as JSON; HTTP errors are answers, not exceptions."""
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"Accept": "application/json", "User-Agent": "credit-risk-smoke"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers,
                                 method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    text = raw.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    return Answer(status, body, text)


def wait_ready(base_url: str, deadline: float, timeout: float,
               expected: str | None = None) -> str:
    """Poll /readyz until it answers 200 (naming `expected`, when given) or the monotonic
    `deadline` passes; return the model version it names."""
    attempt = 0
    while True:
        attempt += 1
        try:
            answer = request(f"{base_url}/readyz", timeout=timeout)
            if answer.status == 200 and isinstance(answer.body, dict):
                version = answer.body.get("model_version")
                if not version:
                    raise SmokeError(f"/readyz answered 200 without a model_version: "
                                     f"{answer.text[:200]}")
                if expected is None or version == expected:
                    logger.info("ok   /readyz: ready, model %s (attempt %d)", version,
                                attempt)
                    return str(version)
                # A running service follows a promotion within MODEL_RELOAD_SECONDS.
                last = f"serves model {version}, expected {expected}"
            else:
                last = f"HTTP {answer.status}: {answer.text[:200]}"
        except (urllib.error.URLError, OSError) as error:
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() >= deadline:
            raise SmokeError(f"/readyz at {base_url} not as expected after {attempt} attempts; "
                             f"last answer: {last}")
        logger.info("wait /readyz: %s", last)
        time.sleep(2.0)


def example_applicant(base_url: str, timeout: float) -> dict[str, Any]:
    """The example applicant of the served OpenAPI document (valid by construction)."""
    answer = request(f"{base_url}/api/v1/openapi.json", timeout=timeout)
    try:
        example = answer.body["components"]["schemas"]["Applicant"]["example"]
    except (TypeError, KeyError) as error:
        raise SmokeError(f"/api/v1/openapi.json (HTTP {answer.status}) has no Applicant "
                         f"example ({error!r}): {answer.text[:200]}") from None
    logger.info("ok   /api/v1/openapi.json: example applicant with %d fields", len(example))
    return dict(example)


def check_prediction(base_url: str, applicant: dict[str, Any], timeout: float
                     ) -> tuple[str, str]:
    """Score one applicant; check the answer's shape; return the model version and the arm
    (production, or a canary while one runs) it names."""
    answer = request(f"{base_url}/api/v1/predict", applicant, timeout=timeout)
    if answer.status != 200 or not isinstance(answer.body, dict):
        raise SmokeError(f"POST /api/v1/predict: HTTP {answer.status}: {answer.text[:300]}")
    predictions = answer.body.get("predictions") or []
    if len(predictions) != 1:
        raise SmokeError(f"POST /api/v1/predict: expected 1 prediction, got {answer.text[:300]}")
    prediction = predictions[0]
    probability = prediction.get("probability_bad")
    if not isinstance(probability, (int, float)) or not 0.0 <= probability <= 1.0:
        raise SmokeError(f"POST /api/v1/predict: probability_bad {probability!r} is not in "
                         f"[0, 1]")
    if prediction.get("decision") not in DECISIONS:
        raise SmokeError(f"POST /api/v1/predict: decision {prediction.get('decision')!r} is "
                         f"not one of {DECISIONS}")
    version = str(answer.body.get("model_version"))
    arm = str(answer.body.get("arm", PRODUCTION_ARM))
    logger.info("ok   /api/v1/predict: probability_bad=%.3f decision=%s model %s (%s)",
                probability, prediction["decision"], version, arm)
    return version, arm


def check_metrics_not_public(base_url: str, timeout: float) -> None:
    """/metrics is for the internal scraper: NGINX must not serve it."""
    answer = request(f"{base_url}/metrics", timeout=timeout)
    if answer.status == 200:
        raise SmokeError("/metrics answered 200 through the public URL; it must not be public")
    logger.info("ok   /metrics: not public (HTTP %d)", answer.status)


def version_from_image(image: str) -> str:
    """The model version label of a local Docker image."""
    template = "{{ index .Config.Labels \"%s\" }}" % MODEL_VERSION_LABEL
    try:
        result = subprocess.run(["docker", "image", "inspect", "--format", template, image],
                                capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SmokeError(f"cannot inspect image {image}: {error}") from None
    version = result.stdout.strip()
    if result.returncode != 0 or not version or version == "<no value>":
        raise SmokeError(f"image {image} has no {MODEL_VERSION_LABEL} label "
                         f"({result.stderr.strip() or 'empty'}); build it with `make image`")
    return version


def version_from_registry(registry: Path) -> str:
    """The production version of a model registry directory."""
    from training.registry import Registry  # needs the project's venv; only in native mode

    version = Registry(registry).production_version()
    if version is None:
        raise SmokeError(f"registry {registry} has no production model")
    return version


def expected_version(arguments: argparse.Namespace) -> str | None:
    """The version the service must serve, from the first source given, or None."""
    if arguments.expected_version:
        return str(arguments.expected_version)
    if arguments.expected_from_image:
        return version_from_image(arguments.expected_from_image)
    if arguments.expected_from_registry:
        return version_from_registry(arguments.expected_from_registry)
    return None


def run(arguments: argparse.Namespace) -> None:
    """Every smoke check in order; raises SmokeError at the first that fails."""
    base_url = arguments.url.rstrip("/")
    expected = expected_version(arguments)
    logger.info("smoke test of %s (expected model version: %s)", base_url,
                expected or "any")
    deadline = time.monotonic() + arguments.wait
    ready_version = wait_ready(base_url, deadline, arguments.timeout, expected)
    applicant = example_applicant(base_url, arguments.timeout)
    predicted_version, arm = check_prediction(base_url, applicant, arguments.timeout)
    while (arm != PRODUCTION_ARM or predicted_version != ready_version) \
            and time.monotonic() < deadline:
        if arm != PRODUCTION_ARM:
            # A canary answers its share of requests; each new request id is routed afresh.
            logger.info("wait /api/v1/predict: answered by the %s (model %s); asking again",
                        arm, predicted_version)
        else:
            # Another worker has not followed the promotion yet (MODEL_RELOAD_SECONDS).
            logger.info("wait /api/v1/predict: model %s, /readyz names %s", predicted_version,
                        ready_version)
        time.sleep(1.0)
        predicted_version, arm = check_prediction(base_url, applicant, arguments.timeout)
    if arm != PRODUCTION_ARM:
        raise SmokeError(f"every prediction until the deadline came from the {arm} "
                         f"({predicted_version}), none from production")
    if predicted_version != ready_version:
        raise SmokeError(f"/readyz names model {ready_version} but the prediction came from "
                         f"{predicted_version}")
    if expected is not None:
        # wait_ready returns once /readyz names the expected version; checked again here so
        # that the success line can only ever report what the service served.
        if predicted_version != expected:
            raise SmokeError(f"the service serves model {predicted_version}, "
                             f"expected {expected}")
        logger.info("ok   model version %s is the expected one", predicted_version)
    check_metrics_not_public(base_url, arguments.timeout)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options; defaults come from SMOKE_URL and EXPECTED_MODEL_VERSION."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.smoke",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("SMOKE_URL") or DEFAULT_URL,
                        help=f"the service's public URL (NGINX; default {DEFAULT_URL})")
    parser.add_argument("--expected-version",
                        default=os.environ.get("EXPECTED_MODEL_VERSION") or None,
                        help="model version the service must serve")
    parser.add_argument("--expected-from-image", metavar="IMAGE",
                        help=f"expect the {MODEL_VERSION_LABEL} label of this image")
    parser.add_argument("--expected-from-registry", metavar="DIR", type=Path,
                        help="expect the production version of this registry")
    parser.add_argument("--wait", type=float, default=60.0,
                        help="seconds to wait until /readyz and a prediction name the "
                             "expected model (default 60)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds per HTTP request (default 5)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the smoke test; 0 when every check passed, 1 with the reason otherwise."""
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arguments = build_parser().parse_args(argv)
    try:
        run(arguments)
    except SmokeError as error:
        logger.error("SMOKE TEST FAILED: %s", error)
        return 1
    logger.info("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
