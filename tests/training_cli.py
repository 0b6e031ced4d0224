"""`python -m training` run inside the test process.

A subprocess would hide the code it runs from coverage and from mutation testing (mutmut
activates a mutant in the test process only), so the CLI tests call `training.cli.main` here
with the arguments, environment and output capture a subprocess would have. One test per
file that needs it still starts the real entry point.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from unittest import mock

from training.cli import main

# The format main() gives the root logger when it is the first to configure it.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def _logging_to(stream: io.StringIO) -> Iterator[None]:
    """The root logger writes INFO and above to `stream` while the block runs; main()'s own
    basicConfig then leaves it alone, as in a process where something configured it first."""
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def run_training(*arguments: str,
                 env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """What `python -m training ARGUMENTS` exits with and prints (log lines go to stdout, as
    main() configures them); `env` replaces the whole environment, as a subprocess's would."""
    stdout, stderr = io.StringIO(), io.StringIO()
    environment = mock.patch.dict(os.environ, dict(env), clear=True) if env is not None \
        else contextlib.nullcontext()
    with environment, contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
            _logging_to(stdout):
        try:
            status = main(list(arguments))
        except SystemExit as exit_:  # argparse on a usage error
            status = exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess(["python", "-m", "training", *arguments], status,
                                       stdout.getvalue(), stderr.getvalue())
