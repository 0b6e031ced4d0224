"""Experiment tracking on the embedded store: what a training run and the gate record."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import sklearn
from mlflow.entities import Run
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient

from tests.conftest import DATA_FILE, ROOT, fresh_store
from tests.helpers import free_port
from training import tracking
from training.artifact import load_artifact, read_card
from training.cli import main
from training.config import TrainingConfig
from training.data import file_sha256, load_split
from training.evaluate import evaluate_probabilities
from training.mlflow_tracking import input_example
from training.report_names import MLFLOW_RUN_FILE, RUN_FILE_KEYS
from training.schema import feature_names
from training.tracking import shown_uri
from training.workflows import run_gate

BUILD_URL = "https://jenkins.example.test/job/credit-risk/42/"
# Two families (two child runs) with one- and two-point grids: seconds, not minutes.
SMALL_TRAINING = {"TRAINING_MODEL_FAMILIES": "logistic_regression,gradient_boosting",
                  "TRAINING_LOGISTIC_C_GRID": "0.1,1.0",
                  "TRAINING_BOOSTING_LEARNING_RATES": "0.1",
                  "TRAINING_BOOSTING_MAX_LEAF_NODES": "7",
                  "TRAINING_BOOSTING_MAX_ITER": "30", "TRAINING_CV_FOLDS": "3"}
ONE_FAMILY = {"TRAINING_MODEL_FAMILIES": "logistic_regression",
              "TRAINING_LOGISTIC_C_GRID": "0.1", "TRAINING_CV_FOLDS": "3"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, empty_store: Path
            ) -> Iterator[dict[str, Any]]:
    """`train` then `gate` through the CLI, as `make train` runs them, on a Jenkins build."""
    base = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**SMALL_TRAINING, "BUILD_URL": BUILD_URL,
                            "TRAINING_TRACKING_DIR": str(fresh_store(empty_store,
                                                                     base / "mlruns")),
                            "REPORTS_DIR": str(base / "reports"),
                            "MODEL_REGISTRY": str(base / "registry")}.items():
            patch.setenv(name, value)
        output = base / "model"
        commit = checkout_commit()
        train_status = main(["train", "--data", str(DATA_FILE), "--output", str(output)])
        gate_status = main(["gate", "--candidate", str(output), "--data", str(DATA_FILE)])
        config = TrainingConfig.from_env()
        yield {"output": output, "config": config, "card": read_card(output), "commit": commit,
               "train_status": train_status, "gate_status": gate_status,
               "client": MlflowClient(tracking.tracking_uri(config))}


def checkout_commit() -> str:
    """The commit the training will see, read apart from it: GIT_COMMIT as Jenkins sets it,
    else git's answer, else "unknown" (a copy without git or .git, as on a bare machine)."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    if shutil.which("git") is None:
        return "unknown"
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip() or "unknown"


def the_run(trained: dict[str, Any]) -> Run:
    """The training run the model card names."""
    return trained["client"].get_run(trained["card"]["tracking"]["run_id"])


def read_run_file(config: TrainingConfig) -> dict[str, Any]:
    """reports/mlflow-run.json, which names the tracked run for the pipeline summary."""
    run_file = json.loads((config.reports_dir / MLFLOW_RUN_FILE).read_text())
    assert tuple(run_file) == RUN_FILE_KEYS
    return run_file


def runs_in_store(config: TrainingConfig) -> list[Run]:
    """Every run of the project's experiment in the configured store."""
    client = MlflowClient(tracking.tracking_uri(config))
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT_NAME)
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def test_train_is_one_finished_run_named_in_the_card(trained: dict[str, Any]) -> None:
    assert trained["train_status"] == 0 and trained["gate_status"] == 0
    run = the_run(trained)
    assert run.info.status == "FINISHED"
    assert run.data.tags["trigger"] == "train"
    assert trained["client"].get_experiment(run.info.experiment_id).name == "credit-risk"
    assert trained["card"]["tracking"]["tracking_uri"] == tracking.tracking_uri(
        trained["config"])


def test_the_run_is_named_in_the_reports_for_the_summary(trained: dict[str, Any]) -> None:
    run = the_run(trained)
    # A database has no web page: the summary shows the run id instead of a link.
    assert read_run_file(trained["config"]) == {
        "run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
        "tracking_uri": tracking.tracking_uri(trained["config"]), "run_url": None}


def test_run_parameters_are_family_hyperparameters_threshold_seed_and_config(
        trained: dict[str, Any]) -> None:
    params, card = the_run(trained).data.params, trained["card"]
    assert params["model_family"] == card["model_family"]
    assert float(params["threshold"]) == card["threshold"]
    assert params["seed"] == "42" == params["config.seed"]
    for name, value in card["hyperparameters"].items():
        assert params[f"hyperparameter.{name}"] == str(value)
    assert json.loads(params["config.logistic_c_grid"]) == [0.1, 1.0]
    assert params["config.tracking"] == "on"


def test_holdout_and_segment_metrics_match_a_recomputation(trained: dict[str, Any]) -> None:
    metrics, config = the_run(trained).data.metrics, trained["config"]
    model = load_artifact(trained["output"])
    holdout = load_split(DATA_FILE, config)[2]
    evaluation = evaluate_probabilities(holdout, model.predict_proba_bad(holdout),
                                        model.threshold, config)
    assert metrics["holdout/roc_auc"] == pytest.approx(evaluation["overall"]["roc_auc"])
    assert metrics["holdout/recall_bad"] == pytest.approx(evaluation["overall"]["recall_bad"])
    assert metrics["holdout/confusion_matrix/true_bad_approved"] == (
        evaluation["overall"]["confusion_matrix"]["true_bad_approved"])
    young = evaluation["segments"]["age_band"]["18-25"]
    assert metrics["segment/age_band/18-25/recall_bad"] == pytest.approx(young["recall_bad"])
    assert metrics["segment/age_band/18-25/rows"] == young["rows"]
    # A protected attribute's value with a "/" in it, made a single metric path part.
    divorced = evaluation["segments"]["personal_status_sex"]["male: divorced/separated"]
    assert metrics["segment/personal_status_sex/male: divorced_separated/rows"] == (
        divorced["rows"])


def test_each_candidate_family_is_a_child_run_with_its_folds(trained: dict[str, Any]) -> None:
    run, client = the_run(trained), trained["client"]
    children = client.search_runs([run.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    by_family = {child.data.params["model_family"]: child for child in children}
    assert sorted(by_family) == ["gradient_boosting", "logistic_regression"]
    selected = [family for family, child in by_family.items()
                if child.data.tags["selected"] == "true"]
    assert selected == [trained["card"]["model_family"]]
    logistic = by_family["logistic_regression"]
    assert json.loads(logistic.data.params["grid.C"]) == [0.1, 1.0]
    folds = client.get_metric_history(logistic.info.run_id, "cv_roc_auc_fold")
    assert sorted(point.step for point in folds) == [0, 1, 2]
    assert logistic.data.metrics["cv_roc_auc_mean"] == pytest.approx(
        np.mean([point.value for point in folds]))
    assert run.data.metrics["cv/logistic_regression/roc_auc"] == pytest.approx(
        logistic.data.metrics["cv_roc_auc_mean"])


def test_tags_name_data_commit_build_and_library_versions(trained: dict[str, Any]) -> None:
    tags = the_run(trained).data.tags
    assert tags["data.sha256"] == file_sha256(DATA_FILE)
    assert tags["data.sources"] == str(DATA_FILE)
    assert tags["git_commit"] == tags["mlflow.source.git.commit"] == trained["commit"]
    assert tags["jenkins.build_url"] == BUILD_URL
    assert tags["version.scikit_learn"] == sklearn.__version__
    assert tags["version.mlflow"] == mlflow.__version__
    assert tags["artifact_sha256"] == trained["card"]["artifact_sha256"]


def test_artifacts_hold_the_card_the_floor_gate_and_the_sources(
        trained: dict[str, Any]) -> None:
    run_id, client = the_run(trained).info.run_id, trained["client"]
    listed = {item.path for folder in ("model_card", "gate/floor", "data")
              for item in client.list_artifacts(run_id, folder)}
    assert listed == {"model_card/model.json", "gate/floor/gate.json",
                      "gate/floor/junit-gate.xml", "data/sources.json"}
    card = json.loads(Path(client.download_artifacts(run_id, "model_card/model.json"))
                      .read_text())
    assert card["artifact_sha256"] == trained["card"]["artifact_sha256"]
    assert the_run(trained).data.tags["gate.floor.decision"] == "floor_passed"


def logged_model(uri: str, run: Run, card: dict[str, Any]
                 ) -> tuple[ModelInfo, np.ndarray, list[str]]:
    """The model a run logged: its info, its scores of the card's input example, and its
    requirements."""
    mlflow.set_tracking_uri(uri)
    try:
        [logged] = mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id], output_format="list",
            filter_string=f"source_run_id = '{run.info.run_id}'")
        info = mlflow.models.get_model_info(logged.model_uri)
        scored = mlflow.pyfunc.load_model(logged.model_uri).predict(input_example(card))
        requirements = Path(mlflow.pyfunc.get_model_dependencies(logged.model_uri)
                            ).read_text().split()
    finally:
        mlflow.set_tracking_uri(None)
    return info, np.asarray(scored), requirements


def assert_scores_like_the_artifact(scored: np.ndarray, model_dir: Path,
                                    card: dict[str, Any]) -> None:
    """The logged model's P(bad) column equals the artifact's, row by row."""
    model = load_artifact(model_dir)
    bad = list(model.pipeline.classes_).index("bad")
    assert scored[:, bad] == pytest.approx(model.predict_proba_bad(input_example(card)))


def test_logged_model_has_the_schema_signature_and_scores_like_the_artifact(
        trained: dict[str, Any]) -> None:
    info, scored, requirements = logged_model(tracking.tracking_uri(trained["config"]),
                                              the_run(trained), trained["card"])
    assert info.signature.inputs.input_names() == feature_names()
    assert info.saved_input_example_info is not None
    assert f"scikit-learn=={sklearn.__version__}" in requirements
    assert_scores_like_the_artifact(scored, trained["output"], trained["card"])


def test_a_gradient_boosting_model_is_logged_with_the_types_skops_must_trust(
        tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """skops refuses the boosting's TreePredictor unless the logging names it as trusted:
    a retrain that picked this family once failed to record its run."""
    for name, value in {**SMALL_TRAINING, "TRAINING_MODEL_FAMILIES": "gradient_boosting",
                        "TRAINING_TRACKING_DIR": str(fresh_store(empty_store,
                                                                 tmp_path / "mlruns")),
                        "REPORTS_DIR": str(tmp_path / "reports")}.items():
        monkeypatch.setenv(name, value)
    output = tmp_path / "model"
    assert main(["train", "--data", str(DATA_FILE), "--output", str(output)]) == 0
    card = read_card(output)
    config = TrainingConfig.from_env()
    run = MlflowClient(tracking.tracking_uri(config)).get_run(card["tracking"]["run_id"])
    _, scored, _ = logged_model(tracking.tracking_uri(config), run, card)
    assert_scores_like_the_artifact(scored, output, card)


def test_gate_writes_its_decision_and_both_models_metrics_to_the_challengers_run(
        trained: dict[str, Any]) -> None:
    run, client = the_run(trained), trained["client"]
    assert run.data.tags["gate.decision"] == "promoted"
    gate_report = json.loads((trained["config"].reports_dir / "gate.json").read_text())
    assert run.data.tags["gate.challenger_version"] == gate_report["challenger"]["version"]
    assert run.data.metrics["gate/challenger/roc_auc"] == pytest.approx(
        gate_report["challenger"]["metrics"]["roc_auc"])
    assert {item.path for item in client.list_artifacts(run.info.run_id, "gate")} >= {
        "gate/gate.json", "gate/junit-gate.xml"}


def test_gate_against_a_champion_records_the_champions_metrics(
        trained: dict[str, Any], tmp_path: Path) -> None:
    config = trained["config"]
    second = Path(shutil.copytree(trained["output"], tmp_path / "again"))
    result = run_gate(second, config)  # the same model again: a tie promotes
    run = the_run(trained)
    assert result.decision == run.data.tags["gate.decision"] == "promoted"
    assert run.data.metrics["gate/champion/roc_auc"] == pytest.approx(
        result.champion["metrics"]["roc_auc"])
    assert run.data.tags["gate.champion_version"] == result.champion["version"]


def test_gate_of_a_model_whose_run_is_elsewhere_gets_a_gate_run(
        trained_model_dir: Path, tmp_path: Path, tracking_dir: Path) -> None:
    config = TrainingConfig(data_path=DATA_FILE, registry_dir=tmp_path / "registry",
                            reports_dir=tmp_path / "reports", tracking_dir=tracking_dir)
    before = {run.info.run_id for run in runs_in_store(config)}
    run_gate(trained_model_dir, config)  # its card names no run (built without tracking)
    runs = {run.data.tags["trigger"]: run for run in runs_in_store(config)
            if run.info.run_id not in before}
    # Registering keeps the artifact in a run of its own; the promotion is a run too.
    assert sorted(runs) == ["gate", "promote", "register"]
    new = runs["gate"]
    assert new.data.tags["artifact_sha256"] == read_card(trained_model_dir)["artifact_sha256"]
    assert new.data.tags["gate.decision"] == "promoted"
    assert new.info.status == "FINISHED"


def test_every_png_of_the_plots_folder_is_logged(
        artifact_copy: Path, tracking_dir: Path, tmp_path: Path) -> None:
    # The training drew its plots into the artifact; a file that is no PNG stays out.
    plots = artifact_copy / "plots"
    drawn = sorted(path.name for path in plots.glob("*.png"))
    assert len(drawn) == 4, drawn
    (plots / "notes.txt").write_text("not a plot")
    config = TrainingConfig(data_path=DATA_FILE, tracking_dir=tracking_dir,
                            reports_dir=tmp_path / "reports")
    with tracking.training_run(config, "train") as run:
        run.record_training(read_card(artifact_copy), artifact_copy)
    client = MlflowClient(tracking.tracking_uri(config))
    run_id = run.card_fields()["tracking"]["run_id"]
    assert sorted(item.path for item in client.list_artifacts(run_id, "plots")) == [
        f"plots/{name}" for name in drawn]
    assert Path(client.download_artifacts(run_id, f"plots/{drawn[0]}")).read_bytes() == (
        (plots / drawn[0]).read_bytes())


def test_a_failing_command_leaves_a_failed_run_named_in_the_reports(
        tracking_dir: Path, tmp_path: Path) -> None:
    config = TrainingConfig(data_path=DATA_FILE, tracking_dir=tracking_dir,
                            reports_dir=tmp_path / "reports")
    with pytest.raises(ValueError, match="broken on purpose"):
        with tracking.training_run(config, "train") as run:
            raise ValueError("broken on purpose")
    run_id = run.card_fields()["tracking"]["run_id"]
    assert MlflowClient(tracking.tracking_uri(config)).get_run(run_id).info.status == "FAILED"
    # Written at the start: the summary of a build whose training failed links the run.
    assert read_run_file(config)["run_id"] == run_id


def test_unreachable_server_stops_train_before_training_naming_the_uri(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "reports"))
    caplog.set_level(logging.ERROR, logger="training")
    output = tmp_path / "model"
    status = main(["train", "--data", str(DATA_FILE), "--output", str(output)])
    assert status == 1
    assert f"MLflow tracking at {uri}: could not reach the tracking store" in caplog.text
    assert "TRAINING_TRACKING=off" in caplog.text
    assert not output.exists()  # refused before any training


def test_tracking_off_trains_without_a_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_dir: Path) -> None:
    for name, value in {**ONE_FAMILY, "TRAINING_TRACKING": "off",
                        "REPORTS_DIR": str(tmp_path / "reports")}.items():
        monkeypatch.setenv(name, value)
    config = TrainingConfig(tracking_dir=tracking_dir)
    before = len(runs_in_store(config))
    assert main(["train", "--data", str(DATA_FILE), "--output", str(tmp_path / "m")]) == 0
    assert read_card(tmp_path / "m")["tracking"] == {"enabled": False}
    assert len(runs_in_store(config)) == before


@pytest.mark.parametrize("setting", ["yes", "OFF", ""])
def test_a_tracking_setting_other_than_on_or_off_is_refused(
        setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("TRAINING_TRACKING", setting)
    status = main(["train", "--data", str(DATA_FILE), "--output", str(tmp_path / "m")])
    assert status == 1 and f"TRAINING_TRACKING={setting!r}" in caplog.text


def test_embedded_store_unless_a_tracking_uri_is_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = TrainingConfig(tracking_dir=tmp_path / "store")
    assert tracking.tracking_uri(config) == f"sqlite:///{tmp_path}/store/mlflow.db"
    assert tracking.artifact_location(config) == (tmp_path / "store" / "artifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert tracking.tracking_uri(config) == "http://mlflow:5000"
    assert tracking.artifact_location(config) is None  # the server's choice


def test_the_embedded_default_survives_a_run_in_the_same_process(
        tracking_dir: Path, tmp_path: Path) -> None:
    """MLflow's set_tracking_uri writes MLFLOW_TRACKING_URI; a run must not leave it set."""
    config = TrainingConfig(data_path=DATA_FILE, tracking_dir=tracking_dir,
                            reports_dir=tmp_path / "reports")
    with tracking.training_run(config, "train"):
        pass
    assert tracking.artifact_location(config) is not None


def test_a_password_in_the_tracking_uri_is_never_shown() -> None:
    assert shown_uri("https://ci:s3cret@mlflow.example.test:5000/x") == (
        "https://ci:***@mlflow.example.test:5000/x")
    assert shown_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_input_example_is_one_valid_applicant_from_the_schema(
        trained_model_dir: Path) -> None:
    example = input_example(read_card(trained_model_dir))
    assert list(example.columns) == feature_names() and len(example) == 1
    assert pd.api.types.is_integer_dtype(example["amount"])
    assert load_artifact(trained_model_dir).predict_proba_bad(example).shape == (1,)
