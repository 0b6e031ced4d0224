#!/usr/bin/env bash
# Refuse to start Jenkins with an unusable configuration, fill in the defaults casc.yaml
# cannot (JCasC uses an empty variable as is), then run the command: the image's start
# script (the Dockerfile's CMD). The SMTP settings mean what they mean for `make notify`
# (pipeline/notify.py). SECRETS is JCasC's own name for the secrets directory.
set -euo pipefail

fail() { echo "credit-risk Jenkins: $*; see .env.example and README.md, Jenkins" >&2; exit 1; }

# Secrets are files (Docker secrets), read by casc.yaml; these must not be empty.
secrets_dir="${SECRETS:-/run/secrets}"
for name in JENKINS_ADMIN_PASSWORD GITHUB_WEBHOOK_SECRET JENKINS_TRIGGER_TOKEN; do
  [ -s "$secrets_dir/$name" ] || fail "the secret file $name is missing or empty"
done
for name in SMTP_PASSWORD GITHUB_TOKEN; do  # optional: may be empty files
  [ -f "$secrets_dir/$name" ] || fail "the secret file $name is missing (it may be empty)"
done
for name in PIPELINE_REPO_URL JENKINS_AGENT_NAME; do
  [ -n "${!name:-}" ] || fail "set $name"
done

# Defaults for settings that are unset or empty.
export JENKINS_ADMIN_ID="${JENKINS_ADMIN_ID:-admin}"
export JENKINS_URL="${JENKINS_URL:-http://localhost:8080/}"
export PIPELINE_BRANCH="${PIPELINE_BRANCH:-main}"
export PIPELINE_REPO_CREDENTIALS="${PIPELINE_REPO_CREDENTIALS:-}"
export GITHUB_USER="${GITHUB_USER:-}"
export SMTP_HOST="${SMTP_HOST:-localhost}"
export SMTP_USER="${SMTP_USER:-}"
export NOTIFY_FROM="${NOTIFY_FROM:-jenkins@localhost}"
export NOTIFY_TO="${NOTIFY_TO:-}"

# SMTP_TLS (starttls|ssl|none) -> the e-mail plugin's two booleans and the default port.
case "${SMTP_TLS:-starttls}" in
  starttls) export SMTP_USE_TLS=true SMTP_USE_SSL=false; port=587 ;;
  ssl) export SMTP_USE_TLS=false SMTP_USE_SSL=true; port=465 ;;
  none) export SMTP_USE_TLS=false SMTP_USE_SSL=false; port=25 ;;
  *) fail "SMTP_TLS must be starttls, ssl or none" ;;
esac
export SMTP_PORT="${SMTP_PORT:-$port}"
# Log in to SMTP only when there is a user, as `make notify` does.
export SMTP_CREDENTIALS_ID=""
[ -z "$SMTP_USER" ] || SMTP_CREDENTIALS_ID=smtp

exec "$@"
