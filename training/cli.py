"""Command line: `python -m training validate|train|evaluate|gate|promote|rollback|list`.

A thin layer: it reads arguments and files, calls the pure modules, writes reports and
sets the exit status. Exit statuses: 0 success (or model promoted), 1 error (bad path,
invalid data, broken model), 2 usage, 3 gate failed (under the floor), 4 champion kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from training import gate
from training.artifact import LoadedModel, ModelIntegrityError, load_artifact
from training.config import ConfigError, TrainingConfig
from training.data import DataValidationError, load_dataset, read_csv, split, validate
from training.evaluate import evaluate_probabilities
from training.registry import Registry, RegistryError
from training.train import build_model

logger = logging.getLogger("training")

EXIT_ERROR = 1
EXIT_USAGE = 2


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
            ModelIntegrityError) as error:
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
    return parser


def cmd_validate(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Validate a data file; print the report; exit 1 naming each failed check."""
    report = validate(read_csv(config.data_path), config, source=str(config.data_path),
                      labelled=not arguments.unlabelled)
    _write_report(config, "validation.json", report.to_dict())
    sys.stdout.write(report.to_text() + "\n")
    return 0 if report.passed else EXIT_ERROR


def cmd_train(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Train into an artifact directory, then apply the build-time floor."""
    card = build_model(config.data_path, arguments.output, config)
    _write_report(config, "model-card.json", card)
    result = gate.floor_only(_summary(card, "candidate"), config)
    gate.write_reports(result, config.reports_dir)
    _log_decision(result)
    return result.exit_status


def cmd_evaluate(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Score a model (default: production) on the holdout and print the metrics."""
    model = (load_artifact(arguments.model) if arguments.model
             else Registry(config.registry_dir).load_production())
    metrics = _holdout_metrics(model, config)
    _write_report(config, "evaluation.json", {"version": model.version, "metrics": metrics})
    sys.stdout.write(json.dumps({"version": model.version, "metrics": metrics}, indent=2)
                     + "\n")
    return 0


def cmd_gate(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Score challenger and champion on the same holdout; register, then promote or keep."""
    registry = Registry(config.registry_dir)
    challenger = load_artifact(arguments.candidate)
    holdout = split(load_dataset(config.data_path, config), config)[1]
    challenger_summary = {**_summary(challenger.card, "candidate"),
                          "metrics": _scores(challenger, holdout, config)}
    champion_summary, note = None, ""
    champion_version = registry.production_version()
    if champion_version is not None:
        try:
            champion = registry.load(champion_version)
            champion_summary = {**_summary(champion.card, champion_version),
                                "metrics": _scores(champion, holdout, config)}
        except ModelIntegrityError as error:
            # A champion that cannot be verified cannot be compared with; say so loudly.
            logger.warning("production model %s cannot be loaded: %s", champion_version, error)
            note = f"production model {champion_version} is unusable ({error})"
    result = gate.decide(challenger_summary, champion_summary, config, champion_note=note)
    if result.decision != gate.FAILED:
        version = registry.register(arguments.candidate, card_updates={"gate": {
            "decision": result.decision, "reasons": result.reasons,
            "champion": champion_version}})
        result.challenger["version"] = version
        if result.decision == gate.PROMOTED:
            registry.promote(version, reason="; ".join(result.reasons))
    gate.write_reports(result, config.reports_dir)
    _log_decision(result)
    return result.exit_status


def cmd_promote(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Promote a registered version by hand."""
    Registry(config.registry_dir).promote(arguments.version, reason=arguments.reason)
    return 0


def cmd_rollback(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Move production back to the version that served before."""
    Registry(config.registry_dir).rollback(reason=arguments.reason)
    return 0


def cmd_list(arguments: argparse.Namespace, config: TrainingConfig) -> int:
    """Print one line per version: production marker, name, family, ROC AUC, gate."""
    registry = Registry(config.registry_dir)
    production = registry.production_version()
    lines = []
    for version in registry.versions():
        card = registry.card(version)
        lines.append(f"{'*' if version == production else ' '} {version}  "
                     f"{card.get('model_family', '?'):<20} "
                     f"roc_auc={card['metrics']['roc_auc']:.4f}  "
                     f"gate={card.get('gate', {}).get('decision', '-')}")
    sys.stdout.write("\n".join(lines or [f"no versions in {registry.root}"]) + "\n")
    return 0


# --- helpers -------------------------------------------------------------------------------
def _holdout_metrics(model: LoadedModel, config: TrainingConfig) -> dict[str, Any]:
    holdout = split(load_dataset(config.data_path, config), config)[1]
    return _scores(model, holdout, config)


def _scores(model: LoadedModel, holdout: Any, config: TrainingConfig) -> dict[str, Any]:
    probabilities = model.predict_proba_bad(holdout[model.card["features"]])
    return evaluate_probabilities(holdout, probabilities, model.threshold, config)["overall"]


def _summary(card: dict[str, Any], version: str) -> dict[str, Any]:
    return {"version": card.get("version", version), "model_family": card.get("model_family"),
            "artifact_sha256": card.get("artifact_sha256"), "metrics": card["metrics"]}


def _write_report(config: TrainingConfig, name: str, payload: dict[str, Any]) -> None:
    config.reports_dir.mkdir(parents=True, exist_ok=True)
    (config.reports_dir / name).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _log_decision(result: gate.GateResult) -> None:
    log = logger.info if result.decision != gate.FAILED else logger.error
    log("gate decision: %s (exit status %d)", result.decision, result.exit_status)
    for reason in result.reasons:
        log("  %s", reason)
