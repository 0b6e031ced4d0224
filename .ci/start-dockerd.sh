#!/usr/bin/env bash
# Make sure a Docker engine answers. Starts dockerd in the background when `docker info`
# fails (a fresh CI machine has the package but no running daemon), then waits, bounded.
# With CI=true the container tests are mandatory, so an engine that cannot start fails the
# run here, with the reason from the daemon's log; locally it only warns (tests then skip).
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"
in_ci=false
case "${CI:-}" in 1 | true | TRUE | True | yes) in_ci=true ;; esac

give_up() {  # give_up REASON [show-log]
  echo "Docker engine: $1" >&2
  if [ "${2:-}" = show-log ] && [ -f "$DOCKERD_LOG" ]; then
    echo "--- last lines of $DOCKERD_LOG" >&2
    tail -n 25 "$DOCKERD_LOG" >&2
  fi
  if $in_ci; then exit 1; fi
  echo "(not CI: the container tests will skip)" >&2
  exit 0
}

if docker info >/dev/null 2>&1; then
  echo "Docker engine already running: $(docker version --format '{{.Server.Version}}')"
  exit 0
fi
command -v docker >/dev/null 2>&1 || give_up "the docker client is not installed"
command -v dockerd >/dev/null 2>&1 || give_up "dockerd is not installed (package docker.io)"
if [ "$(id -u)" -ne 0 ]; then
  give_up "dockerd is not running and starting it needs root"
fi

echo "starting dockerd (log: $DOCKERD_LOG)"
# setsid: the daemon must outlive this script and not share the CI job's process group.
setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
pid=$!
for _ in $(seq "$DOCKERD_WAIT_SECONDS"); do
  if docker info >/dev/null 2>&1; then
    echo "Docker engine up: $(docker version --format '{{.Server.Version}}') (pid $pid)"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || give_up "dockerd exited during start-up" show-log
  sleep 1
done
give_up "dockerd did not answer within ${DOCKERD_WAIT_SECONDS}s" show-log
