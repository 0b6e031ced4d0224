"""Plots of the holdout evaluation: ROC curve, calibration, confusion matrix, recall per segment.

`plot_data` computes every number a plot shows (pure, tested against scikit-learn and the
evaluation); `write_plots` only draws them, under the names of training/report_names.py.
Drawing needs matplotlib, which the training environment installs
(requirements-training.txt) and the runtime image does not: it is imported when plots are
drawn, and a model built without it (a retrain run inside the runtime image) gets no plots
and a warning, never a failed build.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import auc, roc_curve

from training.report_names import PLOT_FILES, PLOT_PIXELS, PLOTS_DIR

logger = logging.getLogger(__name__)

CALIBRATION_BINS = 10
DPI = 100
FIGURE_INCHES = (PLOT_PIXELS[0] / DPI, PLOT_PIXELS[1] / DPI)


@dataclass(frozen=True)
class SegmentRecall:
    """Recall on `bad` of one segment of a reporting dimension (age band, sex, ...)."""

    dimension: str
    segment: str
    recall_bad: float
    bad_rows: int


@dataclass(frozen=True)
class PlotData:
    """Every number the plots show, from one holdout evaluation."""

    false_positive_rate: list[float]
    true_positive_rate: list[float]
    roc_auc: float
    mean_predicted: list[float]  # per non-empty calibration bin
    fraction_bad: list[float]
    threshold: float
    confusion: dict[str, int]  # the evaluation's confusion matrix at the threshold
    segment_recall: list[SegmentRecall]


def plot_data(is_bad: np.ndarray, probability_bad: np.ndarray, threshold: float,
              evaluation: Mapping[str, Any]) -> PlotData:
    """The plotted numbers for scored holdout rows and their `evaluate_probabilities` result."""
    if len(np.unique(is_bad)) != 2:
        raise ValueError("plots need both good and bad rows in the holdout")
    false_positive_rate, true_positive_rate, _ = roc_curve(is_bad, probability_bad)
    fraction_bad, mean_predicted = calibration_curve(is_bad, probability_bad,
                                                     n_bins=CALIBRATION_BINS, strategy="uniform")
    # A segment without bad rows has no recall to show (scikit-learn would report 0).
    segments = [SegmentRecall(dimension, segment, float(metrics["recall_bad"]),
                              int(metrics["bad_rows"]))
                for dimension, by_segment in evaluation["segments"].items()
                for segment, metrics in by_segment.items() if metrics["bad_rows"] > 0]
    return PlotData(false_positive_rate=[float(v) for v in false_positive_rate],
                    true_positive_rate=[float(v) for v in true_positive_rate],
                    roc_auc=float(auc(false_positive_rate, true_positive_rate)),
                    mean_predicted=[float(v) for v in mean_predicted],
                    fraction_bad=[float(v) for v in fraction_bad],
                    threshold=float(threshold),
                    confusion=dict(evaluation["overall"]["confusion_matrix"]),
                    segment_recall=segments)


def write_plots(directory: Path, data: PlotData) -> list[Path]:
    """Draw the PNGs of PLOT_FILES into `directory`; none (a warning) without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("matplotlib is not installed (requirements-training.txt): "
                       "no plots written to %s", directory)
        return []
    directory.mkdir(parents=True, exist_ok=True)
    drawers = {"roc-curve.png": _draw_roc, "calibration-curve.png": _draw_calibration,
               "confusion-matrix.png": _draw_confusion,
               "segment-recall.png": _draw_segment_recall}
    written = []
    for name in PLOT_FILES:
        # A Figure with an explicit Agg canvas, not pyplot: no global state, no GUI backend.
        figure = Figure(figsize=FIGURE_INCHES, dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        drawers[name](figure, data)
        path = directory / name
        # No "Software" text chunk: the same data gives the same bytes on every build.
        figure.savefig(path, format="png", metadata={"Software": None})
        written.append(path)
    logger.info("wrote %d evaluation plots to %s", len(written), directory)
    return written


def publish(model_dir: Path, reports_dir: Path) -> list[Path]:
    """Copy a model's plots to reports/plots/ (the summary shows them), replacing the last
    run's, so that a run without plots never shows an older model's."""
    target = reports_dir / PLOTS_DIR
    shutil.rmtree(target, ignore_errors=True)
    sources = [model_dir / PLOTS_DIR / name for name in PLOT_FILES
               if (model_dir / PLOTS_DIR / name).is_file()]
    if not sources:
        return []
    target.mkdir(parents=True)
    return [Path(shutil.copy2(source, target / source.name)) for source in sources]


def _draw_roc(figure: Any, data: PlotData) -> None:
    axes = figure.subplots()
    axes.plot(data.false_positive_rate, data.true_positive_rate, color="#0969da",
              label=f"model (AUC {data.roc_auc:.3f})")
    axes.plot([0, 1], [0, 1], color="#8c959f", linestyle="--", label="chance (AUC 0.5)")
    axes.set(xlabel="false positive rate (good declined)",
             ylabel="true positive rate (bad declined)", xlim=(0, 1), ylim=(0, 1.01),
             title=PLOT_FILES["roc-curve.png"])
    axes.legend(loc="lower right")


def _draw_calibration(figure: Any, data: PlotData) -> None:
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="#8c959f", linestyle="--", label="perfectly calibrated")
    axes.plot(data.mean_predicted, data.fraction_bad, marker="o", color="#0969da",
              label="model")
    axes.axvline(data.threshold, color="#cf222e", linestyle=":",
                 label=f"threshold {data.threshold:.2f}")
    axes.set(xlabel="mean predicted probability of bad risk", ylabel="observed share of bad",
             xlim=(0, 1), ylim=(0, 1.02), title=PLOT_FILES["calibration-curve.png"])
    axes.legend(loc="upper left")


def _draw_confusion(figure: Any, data: PlotData) -> None:
    axes = figure.subplots()
    counts = np.array([[data.confusion["true_good_approved"],
                        data.confusion["true_good_declined"]],
                       [data.confusion["true_bad_approved"],
                        data.confusion["true_bad_declined"]]])
    axes.imshow(counts, cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        dark = count > counts.max() / 2
        axes.text(column, row, str(count), ha="center", va="center", fontsize=16,
                  color="#ffffff" if dark else "#1f2328")
    axes.set_xticks([0, 1], labels=["approved", "declined"])
    axes.set_yticks([0, 1], labels=["good", "bad"])
    axes.set(xlabel="decision", ylabel="true outcome",
             title=f"Confusion matrix at threshold {data.threshold:.2f}")


def _draw_segment_recall(figure: Any, data: PlotData) -> None:
    from matplotlib.patches import Patch  # drawing only: see the module docstring

    axes = figure.subplots()
    palette = ["#0969da", "#bf8700", "#8250df", "#1a7f37", "#cf222e"]
    dimensions = list(dict.fromkeys(s.dimension for s in data.segment_recall))
    positions = np.arange(len(data.segment_recall))
    bars = axes.barh(positions, [s.recall_bad for s in data.segment_recall],
                     color=[palette[dimensions.index(s.dimension) % len(palette)]
                            for s in data.segment_recall])
    # The value at each bar's end: a recall of 0 draws no bar at all.
    axes.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
    axes.set_yticks(positions, fontsize=8,
                    labels=[f"{s.segment} (bad={s.bad_rows})" for s in data.segment_recall])
    axes.invert_yaxis()  # first segment on top, in the evaluation's order
    figure.legend(handles=[Patch(color=palette[i % len(palette)], label=name)
                           for i, name in enumerate(dimensions)],
                  loc="outside lower center", ncols=len(dimensions), fontsize=8)
    axes.set(xlabel="recall on bad risks", xlim=(0, 1.12),
             title=PLOT_FILES["segment-recall.png"])
