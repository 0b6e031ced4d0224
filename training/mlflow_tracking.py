"""Recording training runs and gate decisions in MLflow (called through training/tracking.py).

One run per training: parameters (family, hyper-parameters, threshold, seed, the whole
config), holdout and per-segment metrics, one child run per candidate family with its
cross-validation, tags (data sha256 and sources, git commit, Jenkins build URL, library
versions) and artifacts (the model in MLflow's sklearn flavour with a signature and an input
example built from the schema, the model card, the evaluation's plots, the gate reports).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import sklearn
import skops.io
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema, TensorSpec

from training import __version__
from training.artifact import CARD_FILE, load_artifact
from training.config import TrainingConfig
from training.gate import GateResult
from training.report_names import MLFLOW_RUN_FILE, PLOTS_DIR
from training.schema import FEATURES
from training.tracking import (EXPERIMENT_NAME, TRACKING_URI_VARIABLE, TrackingError,
                               artifact_location, embedded_dir, shown_uri, tracking_uri)
from training.train import git_commit
from training.workflows import snapshot_lineage

logger = logging.getLogger(__name__)

MODEL_NAME = "model"  # the logged model's name inside its run
# The logged model's requirements: the pipeline's libraries and skops, its file format.
MODEL_PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "skops")
TAG_LIMIT = 5000  # characters; MLflow refuses tag values over 8000
UNSAFE_NAME_CHARACTERS = re.compile(r"[^\w\-. :]")  # also "/", the metric path separator
# Jenkins' variables recorded as tags when a build runs the training.
JENKINS_VARIABLES = {"BUILD_URL": "jenkins.build_url", "JOB_NAME": "jenkins.job_name",
                     "BUILD_NUMBER": "jenkins.build_number"}


def experiment_id(config: TrainingConfig) -> str:
    """The project's experiment in the configured store, created on first use."""
    uri = tracking_uri(config)
    with store_errors(uri, "reach the tracking store"):
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
        if experiment is not None:
            return str(experiment.experiment_id)
        if artifact_location(config) is not None:
            embedded_dir(config).mkdir(parents=True, exist_ok=True)
        return str(client.create_experiment(EXPERIMENT_NAME,
                                            artifact_location=artifact_location(config)))


@contextmanager
def start_training_run(config: TrainingConfig, trigger: str) -> Iterator["MlflowTrainingRun"]:
    """An active MLflow run for one training command; FAILED if the command raises."""
    experiment = experiment_id(config)
    uri = tracking_uri(config)
    started = datetime.now(timezone.utc)
    with fluent_tracking_uri(uri):
        with store_errors(uri, "start a run"):
            active = mlflow.start_run(experiment_id=experiment,
                                      run_name=f"{trigger} {started:%Y-%m-%d %H:%M:%S}",
                                      tags={"trigger": trigger, **environment_tags()})
        run = MlflowTrainingRun(active.info.run_id, experiment, uri, config)
        write_run_file(run, config.reports_dir)
        logger.info("tracking this %s as MLflow run %s in experiment %r at %s", trigger,
                    run.run_id, EXPERIMENT_NAME, shown_uri(uri))
        try:
            yield run
        except BaseException:
            try:
                mlflow.end_run(status="FAILED")
            except Exception as error:  # the command's own error is the one to report
                logger.warning("could not mark MLflow run %s FAILED: %s", run.run_id,
                               first_line(error))
            raise
        with store_errors(uri, f"finish run {run.run_id}"):
            mlflow.end_run(status="FINISHED")


def write_run_file(run: "MlflowTrainingRun", reports_dir: Path) -> None:
    """Name the run in reports/ for the pipeline summary, which links it."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    payload = {"run_id": run.run_id, "experiment_id": run.experiment,
               "tracking_uri": shown_uri(run.uri), "run_url": run_url(run)}
    (reports_dir / MLFLOW_RUN_FILE).write_text(json.dumps(payload, indent=2) + "\n")


def run_url(run: "MlflowTrainingRun") -> str | None:
    """The run's page in the MLflow UI of an HTTP tracking server; None for a database
    (`make mlflow-ui` serves that one on a port of the reader's choosing)."""
    if urlsplit(run.uri).scheme not in ("http", "https"):
        return None
    return (f"{shown_uri(run.uri).rstrip('/')}/#/experiments/{run.experiment}"
            f"/runs/{run.run_id}")


@contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (runs, logged models) pointed at `uri` for this block only.

    mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into the environment, which
    would turn the embedded default into a configured URI for every later command of the
    process; the environment is put back afterwards."""
    before = os.environ.get(TRACKING_URI_VARIABLE)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None unsets the variable again


class MlflowTrainingRun:
    """The active run of a training command (the fluent API's current run)."""

    def __init__(self, run_id: str, experiment: str, uri: str, config: TrainingConfig) -> None:
        self.run_id = run_id
        self.experiment = experiment
        self.uri = uri
        self.config = config

    def card_fields(self) -> dict[str, Any]:
        """Fields for the model card naming this run."""
        return {"tracking": {"enabled": True, "run_id": self.run_id,
                             "experiment": EXPERIMENT_NAME, "tracking_uri": shown_uri(self.uri)}}

    def record_training(self, card: dict[str, Any], model_dir: Path) -> None:
        """Parameters, metrics, CV child runs, data tags and artifacts of the trained model."""
        with store_errors(self.uri, f"record run {self.run_id}; the model is saved in "
                                    f"{model_dir} all the same"):
            mlflow.log_params(training_params(card))
            mlflow.log_metrics(training_metrics(card))
            mlflow.set_tags(data_tags(card))
            for family, search in card.get("cv_search", {}).items():
                record_search(family, search, selected=family == card["model_family"],
                              experiment=self.experiment)
            log_model(model_dir, card)
            mlflow.log_artifact(str(model_dir / CARD_FILE), artifact_path="model_card")
            for plot in sorted((model_dir / PLOTS_DIR).glob("*.png")):
                mlflow.log_artifact(str(plot), artifact_path=PLOTS_DIR)
            log_json(data_sources(card), "data/sources.json")

    def record_floor(self, result: GateResult, reports_dir: Path) -> None:
        """The build-time floor gate's decision, checks and reports."""
        with store_errors(self.uri, f"record the floor gate in run {self.run_id}"):
            mlflow.set_tags({"gate.floor.decision": result.decision,
                             "gate.floor.reasons": short("; ".join(result.reasons))})
            for report in ("gate.json", "junit-gate.xml"):
                mlflow.log_artifact(str(reports_dir / report), artifact_path="gate/floor")


def record_gate(card: dict[str, Any], result: GateResult, reports_dir: Path,
                config: TrainingConfig) -> None:
    """The champion/challenger decision and both models' metrics, on the challenger's run."""
    experiment = experiment_id(config)
    uri = tracking_uri(config)
    client = MlflowClient(uri)
    run_id = card.get("tracking", {}).get("run_id")
    with store_errors(uri, "record the gate decision"):
        known = run_id is not None and run_exists(client, run_id)
        if not known:
            # Trained with tracking off or against another store (the image build's
            # embedded one): the decision still gets a run, tied to the artifact's hash.
            logger.warning("the challenger's training run %s is not in %s: recording the "
                           "gate decision in a new run", run_id, shown_uri(uri))
            run_id = client.create_run(experiment, run_name="gate", tags={
                "trigger": "gate", "training_run_id": str(run_id),
                "artifact_sha256": str(card.get("artifact_sha256")),
                **environment_tags()}).info.run_id
        metrics = {**prefixed_metrics("gate/challenger", result.challenger["metrics"]),
                   **prefixed_metrics("gate/champion",
                                      (result.champion or {}).get("metrics", {}))}
        for name, value in metrics.items():
            client.log_metric(run_id, name, value)
        tags = {"gate.decision": result.decision,
                "gate.reasons": short("; ".join(result.reasons)),
                "gate.challenger_version": str(result.challenger.get("version", "")),
                "gate.champion_version": str((result.champion or {}).get("version", ""))}
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        for report in ("gate.json", "junit-gate.xml"):
            client.log_artifact(run_id, str(reports_dir / report), artifact_path="gate")
        if not known:
            client.set_terminated(run_id)
    logger.info("gate decision %s recorded in MLflow run %s", result.decision, run_id)


# --- what a run holds ----------------------------------------------------------------------
def training_params(card: dict[str, Any]) -> dict[str, Any]:
    """Family, hyper-parameters, threshold, seed and every config setting."""
    params: dict[str, Any] = {"model_family": card["model_family"],
                              "threshold": card["threshold"],
                              "seed": card["config"]["seed"]}
    params.update({f"hyperparameter.{name}": value
                   for name, value in card["hyperparameters"].items()})
    params.update({f"config.{name}": json.dumps(value) if isinstance(value, list) else value
                   for name, value in card["config"].items()})
    return params


def training_metrics(card: dict[str, Any]) -> dict[str, float]:
    """Holdout metrics, per-segment metrics and every family's best CV ROC AUC."""
    metrics = prefixed_metrics("holdout", card["metrics"])
    for dimension, segments in card.get("segment_metrics", {}).items():
        for segment, values in segments.items():
            metrics.update(prefixed_metrics(
                f"segment/{safe_name(dimension)}/{safe_name(segment)}", values))
    metrics.update({f"cv/{family}/roc_auc": float(score)
                    for family, score in card.get("cv_roc_auc", {}).items()})
    return metrics


def prefixed_metrics(prefix: str, values: Mapping[str, Any]) -> dict[str, float]:
    """Numeric entries (nested ones flattened) as `prefix/name`; None and text left out."""
    result: dict[str, float] = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            result.update(prefixed_metrics(f"{prefix}/{safe_name(name)}", value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            result[f"{prefix}/{safe_name(name)}"] = float(value)
    return result


def record_search(family: str, search: dict[str, Any], selected: bool,
                  experiment: str) -> None:
    """One candidate family's cross-validation as a child run of the active run."""
    with mlflow.start_run(run_name=f"cv {family}", nested=True, experiment_id=experiment):
        mlflow.log_params({"model_family": family, "grid_points": search["grid_points"],
                           **{f"grid.{name}": json.dumps(values)
                              for name, values in search["grid"].items()},
                           **{f"best.{name}": value
                              for name, value in search["best_params"].items()}})
        mlflow.log_metrics({"cv_roc_auc_mean": search["roc_auc_mean"],
                            "cv_roc_auc_std": search["roc_auc_std"]})
        for fold, score in enumerate(search["fold_roc_auc"]):
            mlflow.log_metric("cv_roc_auc_fold", score, step=fold)
        mlflow.set_tag("selected", str(selected).lower())


def data_tags(card: dict[str, Any]) -> dict[str, str]:
    """The data snapshot's hash, path, size and sources, and the artifact's hash."""
    sources = data_sources(card)
    return {"data.sha256": card["data"]["sha256"], "data.path": card["data"]["path"],
            "data.rows": str(card["data"]["rows"]),
            "data.sources": short(", ".join(str(source["name"]) for source in sources)),
            "artifact_sha256": card["artifact_sha256"]}


def data_sources(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The files a snapshot was built from (name, rows, sha256), or the data file itself."""
    lineage = snapshot_lineage(Path(card["data"]["path"]))
    return lineage.get("data_sources") or [
        {"name": card["data"]["path"], "rows": card["data"]["rows"],
         "sha256": card["data"]["sha256"]}]


def environment_tags() -> dict[str, str]:
    """Git commit, Jenkins build (when there is one) and library versions."""
    commit = git_commit()
    tags = {"mlflow.source.git.commit": commit, "git_commit": commit,
            "version.credit_risk": __version__, "version.python": platform.python_version(),
            "version.scikit_learn": sklearn.__version__, "version.numpy": np.__version__,
            "version.pandas": pd.__version__, "version.mlflow": mlflow.__version__}
    tags.update({tag: os.environ[variable] for variable, tag in JENKINS_VARIABLES.items()
                 if os.environ.get(variable)})
    return tags


def log_model(model_dir: Path, card: dict[str, Any]) -> None:
    """The verified pipeline in MLflow's sklearn flavour, scoring P(bad) per row."""
    pipeline = load_artifact(model_dir).pipeline
    example = input_example(card)
    # Output: predict_proba's two columns, P(good) and P(bad) in the order of `classes_`.
    signature = ModelSignature(inputs=input_schema(), outputs=Schema(
        [TensorSpec(np.dtype("float64"), (-1, len(pipeline.classes_)))]))
    # skops, not pickle: the logged model can be inspected before anything executes. MLflow
    # checks the saved file loads, and skops refuses types outside its default list (the
    # gradient boosting's TreePredictor): the ones this model holds are named as trusted,
    # since the model is the one just trained and verified here.
    mlflow.sklearn.log_model(pipeline, name=MODEL_NAME, signature=signature,
                             input_example=example, serialization_format="skops",
                             skops_trusted_types=skops_types(pipeline),
                             pyfunc_predict_fn="predict_proba",
                             pip_requirements=model_requirements())


def skops_types(model: Any) -> list[str]:
    """The types in `model` that skops does not trust by default, so loading may name them."""
    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def model_requirements() -> list[str]:
    """What loading the logged model needs, at this environment's versions. Given, so that
    MLflow does not load the model in a subprocess to guess them (seconds per run)."""
    return [f"{package}=={metadata.version(package)}" for package in MODEL_PACKAGES]


def input_schema() -> Schema:
    """The model's inputs as MLflow columns, from training/schema.py."""
    return Schema([ColSpec(DataType.long if column.is_numeric else DataType.string,
                           column.name) for column in FEATURES])


def input_example(card: dict[str, Any]) -> pd.DataFrame:
    """One typical applicant: each input's training median or most frequent category."""
    reference = card["reference"]
    row = {column.name: (int(round(reference[column.name]["median"])) if column.is_numeric
                         else reference[column.name]["mode"]) for column in FEATURES}
    return pd.DataFrame([row]).astype({column.name: "int64" for column in FEATURES
                                       if column.is_numeric})


def log_json(payload: Any, artifact_file: str) -> None:
    """A JSON document as an artifact of the active run."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(artifact_file).name
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        mlflow.log_artifact(str(path), artifact_path=str(Path(artifact_file).parent))


# --- helpers -------------------------------------------------------------------------------
@contextmanager
def store_errors(uri: str, doing: str) -> Iterator[None]:
    """Turn any failure of the tracking store into a TrackingError naming the URI."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as error:  # the store's errors come from many libraries (HTTP, SQL)
        raise TrackingError(f"MLflow tracking at {shown_uri(uri)}: could not {doing}: "
                            f"{first_line(error)} (set MLFLOW_TRACKING_URI to a reachable "
                            f"server, or TRAINING_TRACKING=off to train without a run)"
                            ) from error


def run_exists(client: MlflowClient, run_id: str) -> bool:
    """Whether this store holds the run (a run id from another store is unknown here)."""
    try:
        client.get_run(run_id)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def safe_name(name: str) -> str:
    """A metric name part: characters MLflow refuses, and "/", become "_"."""
    return UNSAFE_NAME_CHARACTERS.sub("_", str(name))


def short(text: str) -> str:
    """A tag value within MLflow's limit."""
    return text if len(text) <= TAG_LIMIT else text[:TAG_LIMIT - 3] + "..."


def first_line(error: BaseException) -> str:
    """The first line of an error's message (MLflow's can run to pages)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:500]
