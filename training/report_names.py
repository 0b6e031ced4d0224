"""The names of what a training leaves in reports/ for the pipeline summary: the contract
between the training that writes them (training/plots.py, the MLflow tracking) and the
summary that reads them (pipeline/inputs.py). Standard library only: the summary runs on the
system Python, without numpy.
"""

from __future__ import annotations

PLOTS_DIR = "plots"  # <model output dir>/plots/ and reports/plots/
# File name of each plot, in the order the summary shows them, with its caption.
PLOT_FILES: dict[str, str] = {
    "roc-curve.png": "ROC curve on the holdout",
    "calibration-curve.png": "Calibration on the holdout",
    "confusion-matrix.png": "Confusion matrix at the decision threshold",
    "segment-recall.png": "Recall on bad risks per segment",
}
PLOT_PIXELS = (640, 480)  # width, height: legible in a mail client, about 40 KB per plot

# The tracked training run (keys RUN_FILE_KEYS), written when the run starts, so a training
# that fails afterwards still links its FAILED run.
MLFLOW_RUN_FILE = "mlflow-run.json"
RUN_FILE_KEYS = ("run_id", "experiment_id", "tracking_uri", "run_url")

# canary-report's outcome (training/canary_report.py) and its plot of the two arms side by
# side, both at the top of reports/ (reports/plots/ is replaced by every training run).
CANARY_REPORT_FILE = "canary-report.json"
CANARY_PLOT_FILE = "canary-arms.png"
CANARY_PLOT_CAPTION = "Production and canary on live traffic"
