#!/usr/bin/env bash
# Connect to the controller as the inbound agent JENKINS_AGENT_NAME. The controller writes
# this agent's connection secret into the volume shared with it (jenkins/init.groovy.d);
# it is passed to agent.jar as an argument, never exported, so no build step inherits it.
# JENKINS_URL, JENKINS_AGENT_NAME and JENKINS_WEB_SOCKET are read by the image's own
# jenkins-agent script.
set -euo pipefail

secret_file="${JENKINS_AGENT_SECRET_FILE:-/run/jenkins-agent/secret}"
wait_seconds="${JENKINS_AGENT_SECRET_WAIT:-300}"
deadline=$(( $(date +%s) + wait_seconds ))
until [ -s "$secret_file" ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "credit-risk agent: no secret in $secret_file after ${wait_seconds}s;" \
      "is the controller up (jenkins/docker-compose.yml)?" >&2
    exit 1
  fi
  sleep 2
done
exec /usr/local/bin/jenkins-agent -secret "$(cat "$secret_file")" "$@"
