"""The Helm chart, rendered by the pinned Helm and checked offline: every manifest against
Kubernetes' own schemas for each supported version, and what the chart promises (probes,
rolling updates, restrictions, limits, secrets) in the rendered objects themselves."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from flask import Flask

from app import api, web
from app.config import DEFAULTS
from pipeline import deployment
from tests.helpers import require_component

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "build" / "tools" / "helm"
CHART = ROOT / "deploy" / "helm" / "credit-risk"
PRODUCTION = CHART / "values-production.yaml"
NGINX_TEMPLATE = ROOT / "nginx" / "credit-risk.conf.template"
# The Kubernetes minor versions the chart supports: Chart.yaml's kubeVersion is the first.
SUPPORTED_VERSIONS = ("1.30", "1.31", "1.32", "1.33", "1.34", "1.35")
APP_CONTAINER = "app"
FEEDBACK_TOKEN = "t" * 24


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the pinned Helm (`make helm` unpacks it)."""
    require_component(HELM.is_file(), "needs Helm: `make helm` unpacks the pinned binary")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120,
                          check=False)


def render(*options: str) -> list[dict[str, Any]]:
    """The chart's manifests with the given `--set`/`--values` options."""
    completed = helm("template", "credit-risk", str(CHART), *options)
    assert completed.returncode == 0, completed.stderr
    return [document for document in yaml.safe_load_all(completed.stdout) if document]


def only(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one manifest of `kind`."""
    found = [document for document in documents if document["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} manifests"
    return found[0]


def containers(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Deployment's containers by name."""
    spec = only(documents, "Deployment")["spec"]["template"]["spec"]
    return {container["name"]: container for container in spec["containers"]}


VALUES = {"default": (), "production": ("--values", str(PRODUCTION)),
          "tracking": ("--set", "secret.mlflowTrackingUri=http://mlflow:5000",
                       "--set", "autoscaling.enabled=false", "--set", "replicaCount=1",
                       "--set", f"secret.feedbackToken={FEEDBACK_TOKEN}")}


@pytest.fixture(scope="module", params=list(VALUES))
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The chart rendered with each values set."""
    return render(*VALUES[request.param])


def test_the_chart_passes_helm_lint_strict_with_both_values_files() -> None:
    for options in ((), ("--values", str(PRODUCTION))):
        completed = helm("lint", "--strict", str(CHART), *options)
        assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_every_manifest_validates_strictly_against_the_kubernetes_schemas(
        manifests: list[dict[str, Any]], version: str) -> None:
    """Strict: a misspelt or misplaced field fails, as does a kind without a schema."""
    for document in manifests:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{document['kind']} {document['metadata']['name']}: "
                        f"{'.'.join(map(str, error.path))}: {error.message}")


def test_the_strict_validation_refuses_a_misplaced_field() -> None:
    deployment = only(render(), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, SUPPORTED_VERSIONS[0], strict=True)


def test_the_lowest_supported_version_is_the_charts_kube_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={SUPPORTED_VERSIONS[0]}.0-0"


def test_the_deployment_rolls_out_without_losing_a_ready_replica(
        manifests: list[dict[str, Any]]) -> None:
    deployment = only(manifests, "Deployment")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    app = containers(manifests)[APP_CONTAINER]
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(next(item["value"] for item in app["env"]
                            if item["name"] == "GUNICORN_GRACEFUL_TIMEOUT"))


def test_every_container_is_restricted_and_bounded(manifests: list[dict[str, Any]]) -> None:
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    for name, container in containers(manifests).items():
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert set(container["resources"]) == {"requests", "limits"}, name
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}, name


def test_autoscaling_disruption_budget_network_policy_and_service_target_the_pods(
        manifests: list[dict[str, Any]]) -> None:
    deployment = only(manifests, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    kinds = {document["kind"] for document in manifests}
    if "HorizontalPodAutoscaler" in kinds:
        autoscaler = only(manifests, "HorizontalPodAutoscaler")["spec"]
        assert autoscaler["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert autoscaler["metrics"][0]["resource"]["name"] == "cpu"
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    assert only(manifests, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == labels
    assert only(manifests, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == labels
    assert only(manifests, "Service")["spec"]["selector"] == labels


def public_routes() -> set[str]:
    """The paths the app answers, except the metrics NGINX keeps from the public."""
    flask = Flask(__name__)
    flask.register_blueprint(api.bp)
    flask.register_blueprint(web.bp)
    return {rule.rule for rule in flask.url_map.iter_rules()} - {"/metrics"}


def routed(ingresses: list[dict[str, Any]]) -> Callable[[str], dict[str, Any] | None]:
    """A function giving the Ingress that routes a path (Exact before Prefix), or None."""
    entries = [(path, ingress) for ingress in ingresses
               for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]

    def find(target: str) -> dict[str, Any] | None:
        for kind in ("Exact", "Prefix"):
            for path, ingress in entries:
                prefix = path["path"].rstrip("/") + "/"
                if path["pathType"] == kind and (target == path["path"] or (
                        kind == "Prefix" and target.startswith(prefix))):
                    return ingress
        return None
    return find


def nginx_limits() -> tuple[int, int]:
    """Requests per second and burst of NGINX's rate limit (nginx/credit-risk.conf.template)."""
    template = NGINX_TEMPLATE.read_text()
    rate = re.search(r"limit_req_zone .* rate=(\d+)r/s;", template)
    bursts = set(re.findall(r"limit_req zone=credit_risk_api burst=(\d+)", template))
    assert rate is not None and len(bursts) == 1
    return int(rate.group(1)), int(bursts.pop())


def test_the_ingress_routes_the_public_paths_with_nginx_limits_and_never_metrics() -> None:
    find = routed([d for d in render() if d["kind"] == "Ingress"])
    for path in public_routes() | {"/static/style.css"}:
        assert find(path.replace("<path:filename>", "x")) is not None, f"{path} is not routed"
    assert find("/metrics") is None, "/metrics must stay inside the cluster"
    sizes = {"/api/v1/predict": DEFAULTS["MAX_PREDICT_BYTES"],
             "/api/v1/feedback": DEFAULTS["MAX_FEEDBACK_BYTES"],
             "/": DEFAULTS["MAX_CONTENT_LENGTH"]}
    rate, burst = nginx_limits()
    for path, limit in sizes.items():
        annotations = find(path)["metadata"]["annotations"]  # type: ignore[index]
        assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == \
            f"{limit // 1024}k", path
        assert annotations["nginx.ingress.kubernetes.io/limit-rps"] == str(rate)
        assert int(annotations["nginx.ingress.kubernetes.io/limit-burst-multiplier"]) \
            * rate == burst
    health = find("/readyz")["metadata"]["annotations"]  # type: ignore[index]
    assert "nginx.ingress.kubernetes.io/limit-rps" not in health, "probes are never limited"


def test_the_tracking_uri_and_the_feedback_token_come_from_the_secret() -> None:
    documents = render(*VALUES["tracking"])
    secret = only(documents, "Secret")
    assert set(secret["stringData"]) == {"mlflow-tracking-uri", "feedback-token"}
    follower = containers(documents)["follower"]
    uri = next(item for item in follower["env"] if item["name"] == "MLFLOW_TRACKING_URI")
    assert uri["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"],
                                                "key": "mlflow-tracking-uri"}
    app = containers(documents)[APP_CONTAINER]
    token_file = next(item["value"] for item in app["env"]
                      if item["name"] == "FEEDBACK_TOKEN_FILE")
    mount = next(item for item in app["volumeMounts"] if item["name"] == "secret")
    assert token_file == f"{mount['mountPath']}/feedback-token"
    assert FEEDBACK_TOKEN not in str(app) and "mlflow:5000" not in str(follower)


def test_an_existing_secret_is_used_and_none_is_made() -> None:
    documents = render("--values", str(PRODUCTION))
    assert not [document for document in documents if document["kind"] == "Secret"]
    egress = only(documents, "NetworkPolicy")["spec"]["egress"]
    assert {"port": 443, "protocol": "TCP"} in egress[-1]["ports"], "HTTPS to MLflow"
    follower = containers(documents)["follower"]
    uri = next(item for item in follower["env"] if item["name"] == "MLFLOW_TRACKING_URI")
    assert uri["valueFrom"]["secretKeyRef"]["name"] == "credit-risk"


def test_without_a_tracking_uri_the_pods_serve_the_image_model_without_a_follower() -> None:
    assert set(containers(render())) == {APP_CONTAINER}


def test_feedback_with_several_replicas_needs_one_shared_log_volume() -> None:
    completed = helm("template", "credit-risk", str(CHART),
                     "--set", f"secret.feedbackToken={FEEDBACK_TOKEN}")
    assert completed.returncode != 0 and "logs.existingClaim" in completed.stderr
    shared = render("--set", f"secret.feedbackToken={FEEDBACK_TOKEN}",
                    "--set", "logs.existingClaim=credit-risk-logs")
    volumes = only(shared, "Deployment")["spec"]["template"]["spec"]["volumes"]
    logs = next(volume for volume in volumes if volume["name"] == "logs")
    assert logs["persistentVolumeClaim"]["claimName"] == "credit-risk-logs"


@pytest.mark.parametrize(("option", "named"), [
    ("strategy.maxUnavailable=1", "maxUnavailable"),
    ("replicaCount=three", "replicaCount"),
    ("ingress.bodySizes.predict=lots", "predict"),
    ("unknownSetting=1", "unknownSetting"),
], ids=["unavailable-during-rollout", "not-a-number", "bad-body-size", "unknown-key"])
def test_the_values_schema_refuses_bad_values_naming_them(option: str, named: str) -> None:
    completed = helm("template", "credit-risk", str(CHART), "--set", option)
    assert completed.returncode != 0 and named in completed.stderr, completed.stderr


# --- what `make deploy DEPLOY_TARGET=kubernetes` runs ------------------------------------
def test_helm_up_uses_only_flags_the_pinned_helm_knows() -> None:
    """Helm 4 renamed --atomic; the recipe's flags must be the pinned Helm's own."""
    recipe = re.search(r"^helm-up:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe is not None
    flags = set(re.findall(r"(--[a-z-]+)", recipe.group(1)))
    assert {"--install", "--rollback-on-failure", "--wait", "--timeout"} <= flags
    known = set(re.findall(r"(--[a-z-]+)", helm("upgrade", "--help").stdout))
    assert flags <= known, flags - known


def test_the_replica_check_selects_the_charts_pods() -> None:
    """pipeline/deployment.py finds the pods by the chart's selector labels."""
    selector = only(render(), "Deployment")["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": deployment.CHART,
                        "app.kubernetes.io/instance": "credit-risk"}
    assert APP_CONTAINER in containers(render())
