"""What the pipeline's command-line modules share: the checkout's root, running a CLI for its
output, and a `main` that logs and turns a known error into exit status 1. Standard library
only (see pipeline/__init__.py)."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# The checkout: pipeline/ is one of its top-level folders.
ROOT = Path(__file__).resolve().parent.parent
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CommandError(Exception):
    """A command that could not run, or exited non-zero; says which and why."""


def output(command: Sequence[str], timeout: float, environ: Mapping[str, str] | None = None,
           error: type[CommandError] = CommandError) -> str:
    """Run `command` and return its stdout; `error` naming the command and its stderr when
    it cannot start, times out or exits non-zero."""
    shown = " ".join(command[:4])
    try:
        answer = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout,
                                env=None if environ is None else dict(environ), check=False)
    except (OSError, subprocess.TimeoutExpired) as problem:
        raise error(f"{shown}: {problem}") from None
    if answer.returncode != 0:
        detail = answer.stderr.strip() or answer.stdout.strip()
        raise error(f"{shown} failed ({answer.returncode}): {detail[-500:]}")
    return answer.stdout


def cli_main(parser: argparse.ArgumentParser, action: Callable[[argparse.Namespace], None],
             argv: list[str] | None, logger: logging.Logger) -> int:
    """Log to stdout, parse `argv`, run `action`; 0, or 1 with a CommandError logged."""
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format=LOG_FORMAT)
    arguments = parser.parse_args(argv)
    try:
        action(arguments)
    except CommandError as error:
        logger.error("%s", error)
        return 1
    return 0
