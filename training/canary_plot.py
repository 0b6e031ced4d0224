"""The canary report's plot: both arms' prediction distributions, and their live metrics.

Drawn with matplotlib (the training environment's, as training/plots.py); without it the
report is written without its plot and a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from training.report_names import CANARY_PLOT_CAPTION, PLOT_PIXELS

logger = logging.getLogger(__name__)

DPI = 100
ARM_COLOURS = {"production": "#0969da", "canary": "#bf8700"}
METRICS = (("roc_auc", "ROC AUC"), ("recall_bad", "recall on bad"))


def write_canary_plot(path: Path, distributions: Mapping[str, Sequence[float]],
                      arms: Mapping[str, Mapping[str, Any]]) -> Path | None:
    """Draw the arms side by side into `path`; None (and a warning) without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.warning("matplotlib is not installed: the canary report has no plot")
        return None
    figure = Figure(figsize=(PLOT_PIXELS[0] * 1.5 / DPI, PLOT_PIXELS[1] / DPI), dpi=DPI,
                    layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(CANARY_PLOT_CAPTION)
    left, right = figure.subplots(1, 2)
    for arm, values in distributions.items():
        if values:
            left.hist(values, bins=20, range=(0, 1), density=True, histtype="step",
                      linewidth=2, color=ARM_COLOURS.get(arm),
                      label=f"{arm} {arms[arm]['version']} ({len(values)} rows)")
    left.set(xlabel="probability of bad risk", ylabel="density",
             title="Prediction distributions")
    left.legend(loc="upper right", fontsize="small")
    width = 0.38
    for offset, arm in enumerate(arms):
        values = [arms[arm].get(name) for name, _ in METRICS]
        positions = [n + (offset - 0.5) * width for n in range(len(METRICS))]
        bars = right.bar(positions, [v if v is not None else 0 for v in values], width,
                         color=ARM_COLOURS.get(arm), label=f"{arm} "
                         f"({arms[arm]['labelled']} labelled)")
        right.bar_label(bars, labels=["-" if v is None else f"{v:.3f}" for v in values],
                        fontsize="small")
    right.set_xticks(range(len(METRICS)), [label for _, label in METRICS])
    right.set(ylim=(0, 1.1), title="On the outcomes fed back")
    right.legend(loc="lower right", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path
