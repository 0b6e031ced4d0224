"""The alias follower's status file: what /api/v1/model and the container's health check read.

Standard library only, so that the health check (`python -m training.follower_status 30`) does
not import the training stack: under the follower's CPU limit that import alone takes longer
than a health check may.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STATUS_FILE = ".follower.json"  # in the registry folder: the last check's outcome
STATUS_FIELDS = ("server", "in_step", "checked_at", "error")
REGISTRY_VARIABLE = "MODEL_REGISTRY"


def registry_status(registry_dir: Path) -> dict[str, Any]:
    """Where the folder's versions come from, for /api/v1/model: the local folder alone,
    or a followed server, whether the last check brought the folder in step, and when."""
    try:
        status = json.loads((Path(registry_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):  # no follower, or a torn file
        status = None
    if not isinstance(status, dict):  # the folder alone is the source
        return dict.fromkeys(STATUS_FIELDS)
    return {name: status.get(name) for name in STATUS_FIELDS}


def seconds_since_check(registry_dir: Path) -> float | None:
    """How long ago a follower last asked the server (None: never, or unreadable)."""
    checked_at = registry_status(registry_dir)["checked_at"]
    try:
        checked = datetime.fromisoformat(checked_at)
    except (TypeError, ValueError):
        return None
    return (datetime.now(timezone.utc) - checked).total_seconds()


def main(argv: list[str] | None = None) -> int:
    """Exit 0 only if a follower checked its server, whatever the outcome, within the given
    seconds: its loop is alive (an unreachable server is /api/v1/model's news, not a reason
    to restart the follower)."""
    parser = argparse.ArgumentParser(prog="python -m training.follower_status",
                                     description=main.__doc__)
    parser.add_argument("within", type=float, metavar="SECONDS")
    parser.add_argument("--registry", type=Path,
                        default=Path(os.environ.get(REGISTRY_VARIABLE, "registry")),
                        help=f"the followed folder (default: ${REGISTRY_VARIABLE})")
    arguments = parser.parse_args(argv)
    age = seconds_since_check(arguments.registry)
    if age is None or age > arguments.within:
        last = "never" if age is None else f"{age:.0f} s ago"
        sys.stderr.write(f"no follower checked its server within {arguments.within:.0f} s "
                         f"(last check: {last})\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
