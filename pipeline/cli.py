"""Command line: `python -m pipeline run|report|notify|clean|stages`.

Exit statuses of `run`: 0 SUCCESS, 1 FAILURE (a stage failed, or the summary could not be
written or sent), 4 UNSTABLE (the gate kept the champion; nothing was deployed), 2 usage.
`report` and `clean` exit 0 unless they cannot write; `notify` exits 1 when sending fails.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable

from pipeline import preflight, runner, system
from pipeline.notify import NotifyError, notify
from pipeline.report import write_summary
from pipeline.stages import MODES, STAGES

logger = logging.getLogger("pipeline")

EXIT_ERROR = 1


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status."""
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arguments = build_parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = arguments.command
    try:
        return command(arguments)
    except (runner.SettingsError, NotifyError, OSError) as error:
        logger.error("%s", error)
        return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per operation."""
    parser = argparse.ArgumentParser(prog="python -m pipeline",
                                     description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    sub = commands.add_parser("run", help="run every stage, then write the summary and notify")
    sub.add_argument("--mode", choices=MODES, help="default: docker when `docker info` "
                     "answers, else native (or PIPELINE_MODE)")
    sub.add_argument("--keep-reports", action="store_true",
                     help="do not clear reports/ from the previous run first")
    sub.add_argument("--system", action="store_true",
                     help="first install what the mode needs (root, apt) and check it: "
                     "the preflight, recorded as a stage (`make pipeline` sets this)")
    sub.set_defaults(command=cmd_run)
    sub = commands.add_parser("system", help="install and start what a job needs (`make system`)")
    sub.add_argument("job", nargs="?", default=preflight.TEST_JOB,
                     choices=[preflight.TEST_JOB, preflight.PIPELINE_JOB,
                              preflight.SETUP_JOB, preflight.LINT_JENKINSFILE_JOB,
                              preflight.NPM_JOB])
    sub.set_defaults(command=cmd_system)
    sub = commands.add_parser("report", help="write reports/summary.html and summary.txt")
    sub.set_defaults(command=cmd_report)
    sub = commands.add_parser("notify", help="e-mail the summary (or write reports/outbox/)")
    sub.set_defaults(command=cmd_notify)
    sub = commands.add_parser("clean", help="remove report files (keeps reports/outbox/)")
    sub.set_defaults(command=cmd_clean)
    sub = commands.add_parser("stages", help="list the stages and their make targets")
    sub.set_defaults(command=cmd_stages)
    return parser


def cmd_run(arguments: argparse.Namespace) -> int:
    """Run the pipeline; always write the summary and notify, whatever the stages did."""
    record_preflight = prepare_system(arguments.mode) if arguments.system else None
    settings = runner.Settings.from_env(mode=arguments.mode)
    if not arguments.keep_reports:
        runner.clean_reports(settings.reports_dir)
    checked = record_preflight(settings.mode) if record_preflight else None
    record = runner.run(settings, preflight=checked)
    status = runner.EXIT_STATUS[record.status]
    # The same targets Jenkins's post section uses: `make report` also combines coverage.
    if runner.run_make("report", os.environ) != 0:
        logger.error("`make report` failed; writing the summary without combined coverage")
        write_summary(settings.reports_dir)
    if runner.run_make("notify", os.environ) != 0:
        logger.error("`make notify` failed: the summary was not delivered")
        status = EXIT_ERROR
    return status


def prepare_system(mode: str | None) -> Callable[[str], runner.StageResult]:
    """Run the system step for `make pipeline`; return what records it once the mode is known.

    The system step runs before the mode is decided, because it may start the Docker engine
    that decides it."""
    started = time.monotonic()
    environ = dict(os.environ, **({"PIPELINE_MODE": mode} if mode else {}))
    try:
        system.ensure_for_pipeline(environ)
        problem = None
    except system.SetupError as error:
        problem = str(error)

    def record(chosen: str) -> runner.StageResult:
        # Checked again in the chosen mode: the system step's guess may differ when the
        # engine stopped answering in between.
        reason = problem or preflight.check(preflight.pipeline_job(chosen))
        result = runner.FAILED if reason else runner.PASSED
        job = preflight.JOBS[preflight.pipeline_job(chosen)]
        return runner.StageResult(runner.PREFLIGHT, chosen, result,
                                  seconds=time.monotonic() - started,
                                  reason=reason or ", ".join(c.name for c in job.components)
                                  + " present")
    return record


def cmd_system(arguments: argparse.Namespace) -> int:
    """Install and start what a job needs; exit 1 with one message when that is impossible."""
    try:
        if arguments.job == preflight.PIPELINE_JOB:
            system.ensure_for_pipeline(os.environ)
        else:
            system.ensure(arguments.job)
    except system.SetupError as error:
        logger.error("%s", error)
        return EXIT_ERROR
    return 0


def cmd_report(arguments: argparse.Namespace) -> int:
    """Write the summary files from reports/."""
    write_summary(runner.reports_dir())
    return 0


def cmd_notify(arguments: argparse.Namespace) -> int:
    """Send the summary, or write it to the outbox."""
    notify(runner.reports_dir())
    return 0


def cmd_clean(arguments: argparse.Namespace) -> int:
    """Remove the previous run's report files."""
    directory = runner.reports_dir()
    logger.info("removed %d entries from %s", runner.clean_reports(directory), directory)
    return 0


def cmd_stages(arguments: argparse.Namespace) -> int:
    """Print the stage list: name, then the target of each mode, without and with RETRAIN."""
    rows = [("stage", "docker", "native", "RETRAIN docker", "RETRAIN native")]
    rows += [(stage.name, stage.docker_target, stage.native_target or "(not applicable)",
              stage.docker_retrain_target or "", stage.native_retrain_target or "")
             for stage in STAGES]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths))
                         .rstrip() + "\n")
    return 0
