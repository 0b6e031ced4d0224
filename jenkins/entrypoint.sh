#!/usr/bin/env bash
# Refuse to start Jenkins with an unusable configuration, then hand over to the image's own
# start script. casc.yaml reads these variables; SMTP_TLS (starttls|ssl|none, the same
# setting `make notify` uses) is turned into the two booleans the e-mail plugin wants.
set -euo pipefail

missing=()
for name in JENKINS_ADMIN_PASSWORD PIPELINE_REPO_URL; do
  [ -n "${!name:-}" ] || missing+=("$name")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "credit-risk Jenkins: set ${missing[*]} (see .env.example and README.md, Jenkins)" >&2
  exit 1
fi

case "${SMTP_TLS:-starttls}" in
  starttls) export SMTP_USE_TLS=true SMTP_USE_SSL=false ;;
  ssl) export SMTP_USE_TLS=false SMTP_USE_SSL=true ;;
  none) export SMTP_USE_TLS=false SMTP_USE_SSL=false ;;
  *) echo "credit-risk Jenkins: SMTP_TLS must be starttls, ssl or none" >&2; exit 1 ;;
esac

exec /usr/local/bin/jenkins.sh "$@"
