"""Evaluation plots: the numbers they show are recomputed here, and the PNGs are checked."""

from __future__ import annotations

import logging
import struct
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from training import plots
from training.artifact import LoadedModel
from training.config import TrainingConfig
from training.data import load_split
from training.evaluate import evaluate_probabilities, segment_labels
from training.report_names import PLOT_FILES, PLOT_PIXELS, PLOTS_DIR
from training.train import is_bad

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def holdout_scores(trained_model: LoadedModel, training_config: TrainingConfig
                   ) -> tuple[np.ndarray, np.ndarray, dict, pd.DataFrame]:
    """The trained model's holdout: truth, probabilities of bad, its evaluation, the rows."""
    holdout = load_split(training_config.data_path, training_config)[2]
    probabilities = trained_model.predict_proba_bad(holdout[trained_model.card["features"]])
    evaluation = evaluate_probabilities(holdout, probabilities, trained_model.threshold,
                                        training_config)
    return is_bad(holdout), probabilities, evaluation, holdout


@pytest.fixture(scope="module")
def data(holdout_scores: tuple, trained_model: LoadedModel) -> plots.PlotData:
    """What the plots of the trained model show."""
    truth, probabilities, evaluation, _ = holdout_scores
    return plots.plot_data(truth, probabilities, trained_model.threshold, evaluation)


def test_roc_auc_plotted_is_scikit_learns(data: plots.PlotData, holdout_scores: tuple,
                                          trained_model: LoadedModel) -> None:
    truth, probabilities, _, _ = holdout_scores
    assert data.roc_auc == pytest.approx(roc_auc_score(truth, probabilities), abs=1e-12)
    assert data.roc_auc == pytest.approx(trained_model.card["metrics"]["roc_auc"], abs=1e-12)
    assert (data.false_positive_rate[0], data.true_positive_rate[0]) == (0.0, 0.0)
    assert (data.false_positive_rate[-1], data.true_positive_rate[-1]) == (1.0, 1.0)
    assert np.all(np.diff(data.false_positive_rate) >= 0)


def test_confusion_counts_cover_the_holdout_at_the_threshold(
        data: plots.PlotData, holdout_scores: tuple, trained_model: LoadedModel) -> None:
    truth, probabilities, _, _ = holdout_scores
    declined = probabilities >= trained_model.threshold
    assert sum(data.confusion.values()) == len(truth)
    assert data.confusion == {"true_good_approved": int(np.sum(~truth & ~declined)),
                              "true_good_declined": int(np.sum(~truth & declined)),
                              "true_bad_approved": int(np.sum(truth & ~declined)),
                              "true_bad_declined": int(np.sum(truth & declined))}
    assert data.threshold == trained_model.threshold


def test_calibration_points_are_bin_means(data: plots.PlotData, holdout_scores: tuple) -> None:
    truth, probabilities, _, _ = holdout_scores
    edges = np.linspace(0, 1, plots.CALIBRATION_BINS + 1)
    bins = np.clip(np.digitize(probabilities, edges[1:-1]), 0, plots.CALIBRATION_BINS - 1)
    filled = [b for b in range(plots.CALIBRATION_BINS) if np.any(bins == b)]
    assert data.mean_predicted == pytest.approx(
        [probabilities[bins == b].mean() for b in filled])
    assert data.fraction_bad == pytest.approx([truth[bins == b].mean() for b in filled])


def test_segment_recall_is_recomputed_per_segment(data: plots.PlotData, holdout_scores: tuple,
                                                  training_config: TrainingConfig,
                                                  trained_model: LoadedModel) -> None:
    truth, probabilities, _, holdout = holdout_scores
    labels = segment_labels(holdout, training_config)
    declined = probabilities >= trained_model.threshold
    expected = {}
    for dimension, membership in labels.items():
        for segment in sorted(membership.unique()):
            mask = (membership == segment).to_numpy()
            if truth[mask].any():  # no bad rows: no recall to plot
                expected[(dimension, segment)] = recall_score(truth[mask], declined[mask])
    shown = {(s.dimension, s.segment): s.recall_bad for s in data.segment_recall}
    assert shown == pytest.approx(expected)
    assert {"age_band", "personal_status_sex"} <= {s.dimension for s in data.segment_recall}


def test_a_holdout_of_one_class_is_refused(holdout_scores: tuple) -> None:
    _, probabilities, evaluation, _ = holdout_scores
    with pytest.raises(ValueError, match="both good and bad rows"):
        plots.plot_data(np.zeros(len(probabilities), dtype=bool), probabilities, 0.5,
                        evaluation)


def test_the_build_writes_every_plot_as_a_png(trained_model_dir: Path) -> None:
    directory = trained_model_dir / PLOTS_DIR
    assert sorted(p.name for p in directory.iterdir()) == sorted(PLOT_FILES)
    for name in PLOT_FILES:
        assert png_size(directory / name) == PLOT_PIXELS
        assert 5_000 < (directory / name).stat().st_size < 200_000, name


def test_the_same_data_draws_the_same_bytes(data: plots.PlotData, tmp_path: Path) -> None:
    first = plots.write_plots(tmp_path / "first", data)
    second = plots.write_plots(tmp_path / "second", data)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert len({p.read_bytes() for p in first}) == len(PLOT_FILES)


def test_without_matplotlib_no_plots_and_a_warning(data: plots.PlotData, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # What a retrain inside the runtime image meets: the module cannot be imported.
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)
    with caplog.at_level(logging.WARNING, logger="training.plots"):
        assert plots.write_plots(tmp_path / "plots", data) == []
    assert "matplotlib is not installed" in caplog.text
    assert not (tmp_path / "plots").exists()


def test_publishing_replaces_the_last_runs_plots(trained_model_dir: Path,
                                                 tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / PLOTS_DIR).mkdir(parents=True)
    (reports / PLOTS_DIR / "stale.png").write_bytes(PNG_SIGNATURE)
    copied = plots.publish(trained_model_dir, reports)
    assert sorted(p.name for p in (reports / PLOTS_DIR).iterdir()) == sorted(
        PLOT_FILES)
    assert [p.read_bytes() for p in copied] == [
        (trained_model_dir / PLOTS_DIR / p.name).read_bytes() for p in copied]
    # A model without plots leaves none behind: an older model's would mislead.
    assert plots.publish(tmp_path / "no-plots-model", reports) == []
    assert not (reports / PLOTS_DIR).exists()
