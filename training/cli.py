"""Command line: `python -m training validate|train|evaluate|gate|promote|rollback|list|canary…`.

A thin layer: it reads arguments and files, calls the pure modules, writes reports and
sets the exit status. Exit statuses: 0 success (or model promoted), 1 error (bad path,
invalid data, broken model), 2 usage, 3 gate failed (under the floor), 4 champion kept,
5 no new data (`pending`; `monitor --action retrain` when no labelled batch waits;
`canary-report` when the canary needs more outcomes before its test can decide).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from training import canary, canary_report, gate, monitor, plots, tracking, workflows
from training.alias_follower import AliasFollower, FollowError
from training.artifact import ModelIntegrityError, load_artifact
from training.canary_plot import write_canary_plot
from training.canary_release import CANARY_ARM, MODES, PRODUCTION_ARM, ReleaseError
from training.canary_stats import ABORT, PROMOTE, WAIT
from training.config import ConfigError, TrainingConfig
from training.data import DataValidationError, load_dataset, load_split, read_csv, validate
from training.intake import pending_batches
from training.jsonlines import read_json_lines
from training.registry import Registry, RegistryError
from training.report_names import CANARY_PLOT_FILE, CANARY_REPORT_FILE
from training.simulate import KINDS, simulate_batch
from training.train import build_model

logger = logging.getLogger("training")

EXIT_ERROR = 1
EXIT_NO_NEW_DATA = 5
NOTHING_TO_DECIDE = "none"  # canary-report's recommendation when no canary runs


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status."""
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        config = TrainingConfig.from_env()
        if getattr(arguments, "data", None) is not None:
            config = TrainingConfig.from_env(data_path=Path(arguments.data))
        command: Callable[[argparse.Namespace, TrainingConfig], int] = arguments.command
        return command(arguments, config)
    except DataValidationError as error:
        logger.error("%s\n%s", error, error.report.to_text())
    except (FileNotFoundError, ValueError, ConfigError, RegistryError,
            ModelIntegrityError, tracking.TrackingError, FollowError, ReleaseError) as error:
        logger.error("%s", error)
    return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per operation."""
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split(
        "\n")[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[..., int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(command=handler)
        return sub

    sub = add("validate", cmd_validate, "check a data file against the schema")
    sub.add_argument("--data", type=Path, help="CSV file (default: data/credit.csv)")
    sub.add_argument("--unlabelled", action="store_true",
                     help="the file has no credit_risk column (scoring data)")
    sub = add("train", cmd_train, "train and evaluate a model; apply the absolute floor")
    sub.add_argument("--data", type=Path)
    sub.add_argument("--output", type=Path, default=Path("build/model"),
                     help="artifact directory to write (default: build/model)")
    sub = add("evaluate", cmd_evaluate, "score a model on the holdout rows")
    sub.add_argument("--data", type=Path)
    sub.add_argument("--model", type=Path, help="artifact directory (default: production)")
    sub = add("gate", cmd_gate, "champion/challenger gate; register and maybe promote")
    sub.add_argument("--data", type=Path)
    sub.add_argument("--candidate", type=Path, required=True, help="artifact directory")
    sub = add("promote", cmd_promote, "make a registered version the production model")
    sub.add_argument("version")
    sub.add_argument("--reason", default="manual promotion")
    sub = add("rollback", cmd_rollback, "point production back at the previous version")
    sub.add_argument("--reason", default="manual rollback")
    add("list", cmd_list, "list registered versions and the production pointer")
    sub = add("follow", cmd_follow, "keep MODEL_REGISTRY on the production alias of the "
                                    "MLflow server at MLFLOW_TRACKING_URI")
    sub.add_argument("--interval", type=float, default=10.0, help="seconds between checks")
    sub.add_argument("--once", action="store_true", help="check once and exit")
    add("pending", cmd_pending, "exit 0 only when unprocessed batches are waiting")
    sub = add("retrain", cmd_retrain, "intake new batches, train a challenger, gate it")
    sub.add_argument("--output", type=Path, default=Path("build/challenger"))
    sub = add("simulate", cmd_simulate, "write a SIMULATED labelled batch with drift")
    sub.add_argument("--kind", choices=KINDS, default="covariate")
    sub.add_argument("--amount", type=float, default=0.5, help="drift strength, 0 to 1")
    sub.add_argument("--rows", type=int, default=200)
    sub.add_argument("--seed", type=int, default=1)
    sub.add_argument("--output", type=Path, help="default: data/incoming/simulated-*.csv")
    sub = add("canary", cmd_canary, "release a gated version beside production")
    sub.add_argument("version")
    sub.add_argument("--share", type=float, default=None,
                     help="share of requests it answers (default: TRAINING_CANARY_SHARE)")
    sub.add_argument("--mode", choices=MODES, default=MODES[0],
                     help="canary: answers its share; shadow: scores every request, "
                          "answers none")
    sub.add_argument("--reason", default="")
    for name, handler, help_text in (
            ("canary-promote", cmd_canary_promote, "make the canary production"),
            ("canary-abort", cmd_canary_abort, "end the canary; production answers all")):
        add(name, handler, help_text).add_argument("--reason", default=f"manual {name}")
    add("canary-status", cmd_canary_status, "print production and the canary release")
    sub = add("canary-report", cmd_canary_report, "compare the canary with production on "
                                                  "live traffic; recommend or act")
    _add_log_arguments(sub)
    sub.add_argument("--act", action="store_true",
                     help="carry out a promote or abort recommendation")
    sub = add("monitor", cmd_monitor, "decide from production logs whether to retrain")
    _add_log_arguments(sub)
    sub.add_argument("--action", choices=("none", "retrain", "trigger"), default="none",
                     help="when retraining is needed: nothing, retrain here, or call Jenkins")
    sub.add_argument("--output", type=Path, default=Path("build/challenger"))
    return parser


def _add_log_arguments(sub: argparse.ArgumentParser) -> None:
    """--log and --feedback: the service's two JSON-lines logs."""
    sub.add_argument("--log", type=Path, default=Path(os.environ.get(
        "PREDICTION_LOG", "run/predictions.jsonl")), help="prediction log (JSON lines)")
    sub.add_argument("--feedback", type=Path, default=Path(os.environ.get(
        "FEEDBACK_LOG", "run/feedback.jsonl")), help="feedback log (JSON lines)")


def cmd_validate(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Validate a data file; print the report; exit 1 naming each failed check."""
    report = validate(read_csv(config.data_path), config, source=str(config.data_path),
                      labelled=not arguments.unlabelled)
    _write_report(config, "validation.json", report.to_dict())
    sys.stdout.write(report.to_text() + "\n")
    return 0 if report.passed else EXIT_ERROR


def cmd_train(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Train into an artifact directory, then apply the build-time floor; one tracked run."""
    with tracking.training_run(config, "train") as run:
        card = build_model(config.data_path, arguments.output, config,
                           card_extras=run.card_fields())
        _write_report(config, "model-card.json", card)
        plots.publish(arguments.output, config.reports_dir)
        result = gate.floor_only(workflows.summary(card, "candidate"), config)
        gate.write_reports(result, config.reports_dir)
        _log_decision(result)
        run.record_training(card, arguments.output)
        run.record_floor(result, config.reports_dir)
    return result.exit_status


def cmd_evaluate(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Score a model (default: production) on the holdout and print the metrics."""
    model = (load_artifact(arguments.model) if arguments.model
             else tracking.open_registry(config).load_production())
    metrics = workflows.score(model, load_split(config.data_path, config)[2], config)
    _write_report(config, "evaluation.json", {"version": model.version, "metrics": metrics})
    sys.stdout.write(json.dumps({"version": model.version, "metrics": metrics}, indent=2)
                     + "\n")
    return 0


def cmd_gate(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Score challenger and champion on the same holdout; register, then promote or keep."""
    result = workflows.run_gate(arguments.candidate, config)
    _log_decision(result)
    return result.exit_status


def cmd_pending(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Exit 0 when unprocessed batches wait in the incoming directory, 5 otherwise."""
    batches = pending_batches(config)
    for path in batches:
        logger.info("pending batch: %s", path)
    if not batches:
        logger.info("no unprocessed batches in %s", config.incoming_dir)
    return 0 if batches else EXIT_NO_NEW_DATA


def cmd_retrain(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Intake new batches, train a challenger on the new snapshot, gate it."""
    outcome = workflows.retrain(config, arguments.output)
    plots.publish(arguments.output, config.reports_dir)
    quarantined = [b.name for b in outcome.batches if not b.accepted]
    logger.info("retraining took in %d batches (%d quarantined%s); snapshot %s",
                len(outcome.batches), len(quarantined),
                f": {', '.join(quarantined)}" if quarantined else "", outcome.snapshot)
    _write_report(config, "retrain.json", outcome.to_dict())
    _log_decision(outcome.gate)
    return outcome.gate.exit_status


def cmd_simulate(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Write a simulated labelled batch (resampled real rows) into the incoming directory."""
    frame = load_dataset(config.data_path, config)
    batch = simulate_batch(frame, arguments.kind, arguments.amount, arguments.rows,
                           arguments.seed)
    output = arguments.output or config.incoming_dir / (
        f"simulated-{arguments.kind}-{arguments.amount:g}-seed{arguments.seed}.csv")
    output.parent.mkdir(parents=True, exist_ok=True)
    # Written under a hidden name, then renamed: intake never sees half a batch.
    partial = output.with_name(f".{output.name}.partial")
    batch.to_csv(partial, index=False)
    os.replace(partial, output)
    logger.info("wrote SIMULATED batch %s: %d rows, drift %s x %.2f (seed %d)", output,
                len(batch), arguments.kind, arguments.amount, arguments.seed)
    return 0


def cmd_monitor(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Decide from the prediction and feedback logs whether to retrain; act on it.

    Exit status: 0 nothing needed (or done), else that of the action: the retraining's
    (0, 3, 4), 5 when retraining is needed but no labelled batch waits, 1 on errors."""
    registry = tracking.open_registry(config)
    production = registry.production_version()
    if production is None:
        raise RegistryError(f"{registry.root}: no production model has been promoted yet")
    decision = monitor.assess(arguments.log, arguments.feedback, registry.card(production),
                              config)
    logger.info("monitor of production model %s: %s", production,
                "RETRAINING NEEDED" if decision.retrain else "no retraining needed")
    for reason in decision.reasons:
        logger.info("  %s", reason)
    _write_report(config, "monitor.json", decision.to_dict())  # even if the action fails
    status = 0
    if decision.retrain and arguments.action == "retrain":
        if pending_batches(config):
            status = cmd_retrain(arguments, config)
            decision.actions.append(f"retrained in process: exit status {status}")
        else:
            # Retraining on the same data would reproduce the same model: drift is only
            # learnt from new labelled rows.
            status = EXIT_NO_NEW_DATA
            decision.actions.append("not retrained: no labelled batch waits")
            logger.warning("not retraining: no labelled batch waits in %s (exit status %d)",
                           config.incoming_dir, status)
    elif decision.retrain and arguments.action == "trigger":
        location = monitor.trigger_jenkins("; ".join(decision.reasons))
        decision.actions.append(f"triggered Jenkins: {location}")
        logger.info("triggered the Jenkins job with RETRAIN=true: %s", location)
    _write_report(config, "monitor.json", decision.to_dict())
    return status


def cmd_promote(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Promote a registered version by hand."""
    tracking.open_registry(config).promote(arguments.version, reason=arguments.reason)
    return 0


def cmd_rollback(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Move production back to the version that served before."""
    tracking.open_registry(config).rollback(reason=arguments.reason)
    return 0


def cmd_canary(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Release a gated version as the canary (or its shadow)."""
    release = canary.start(tracking.open_registry(config), arguments.version, config,
                           mode=arguments.mode, share=arguments.share, reason=arguments.reason)
    logger.info("%s runs as %s%s", release.version, release.mode,
                f" on {release.share:.0%} of requests" if release.answers else
                " on every request (answers none)")
    return 0


def cmd_canary_promote(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Promote the canary to production."""
    canary.promote(tracking.open_registry(config), arguments.reason)
    return 0


def cmd_canary_abort(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Abort the canary."""
    canary.abort(tracking.open_registry(config), arguments.reason)
    return 0


def cmd_canary_status(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Print production and the running canary release as JSON."""
    sys.stdout.write(json.dumps(canary.status(tracking.open_registry(config)), indent=2)
                     + "\n")
    return 0


def cmd_canary_report(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Compare the arms; with --act, promote or abort as recommended. Exit 0 when decided,
    5 when there is nothing to decide yet (no canary runs, or its test needs more outcomes)."""
    registry = tracking.open_registry(config)
    release = registry.canary_release()
    production = registry.production_version()
    if release is None or production is None:
        # A scheduled job asks whether or not a canary runs: nothing to decide is no error.
        _write_report(config, CANARY_REPORT_FILE, {"recommendation": NOTHING_TO_DECIDE,
                                                   "reasons": ["no canary release is running"]})
        logger.info("no canary release is running: nothing to decide")
        return EXIT_NO_NEW_DATA
    report = canary_report.build_report(
        read_json_lines(arguments.log, config.canary_window_rows),
        read_json_lines(arguments.feedback, config.monitor_window_feedback), release,
        production, {PRODUCTION_ARM: float(registry.card(production)["threshold"]),
                     CANARY_ARM: float(registry.card(release.version)["threshold"])}, config)
    _write_report(config, CANARY_REPORT_FILE, report.to_dict())  # even if acting fails
    write_canary_plot(config.reports_dir / CANARY_PLOT_FILE, report.distributions,
                      report.arms)
    if arguments.act and report.recommendation in (PROMOTE, ABORT):
        reason = f"canary-report: {report.test_result}"
        if report.recommendation == PROMOTE:
            canary.promote(registry, reason)
            report.actions.append(f"promoted {release.version} to production")
        else:
            canary.abort(registry, reason)
            report.actions.append(f"aborted {release.version}; production answers all")
        _write_report(config, CANARY_REPORT_FILE, report.to_dict())
    sys.stdout.write(report.to_text() + "\n")
    return EXIT_NO_NEW_DATA if report.recommendation == WAIT else 0


def cmd_follow(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Follow the server's production alias into the local folder (once, or until SIGTERM)."""
    server = os.environ.get(tracking.TRACKING_URI_VARIABLE, "").strip()
    if not server:
        raise FollowError(f"set {tracking.TRACKING_URI_VARIABLE} to the MLflow server to follow")
    follower = AliasFollower(server, Registry(config.registry_dir))
    if arguments.once:
        version = follower.sync()
        sys.stdout.write(f"{version or 'nothing promoted yet'}\n")
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logger.info("following %s every %.0f s into %s", server, arguments.interval,
                config.registry_dir)
    follower.run(arguments.interval, stop)
    return 0


def cmd_list(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Print one line per version: production (*) or canary (c) marker, name, family,
    ROC AUC, gate."""
    registry = tracking.open_registry(config)
    production = registry.production_version()
    release = registry.canary_release()
    markers = {production: "*", **({release.version: "c"} if release else {})}
    lines = []
    for version in registry.versions():
        card = registry.card(version)
        lines.append(f"{markers.get(version, ' ')} {version}  "
                     f"{card.get('model_family', '?'):<20} "
                     f"roc_auc={card['metrics']['roc_auc']:.4f}  "
                     f"gate={card.get('gate', {}).get('decision', '-')}")
    sys.stdout.write("\n".join(lines or [f"no versions in {registry.root}"]) + "\n")
    return 0


# --- helpers -------------------------------------------------------------------------------
def _write_report(config: TrainingConfig, name: str, payload: dict[str, Any]) -> None:
    config.reports_dir.mkdir(parents=True, exist_ok=True)
    (config.reports_dir / name).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _log_decision(result: gate.GateResult) -> None:
    log = logger.info if result.decision != gate.FAILED else logger.error
    log("gate decision: %s (exit status %d)", result.decision, result.exit_status)
    for reason in result.reasons:
        log("  %s", reason)
