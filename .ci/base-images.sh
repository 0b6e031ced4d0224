#!/usr/bin/env bash
# Stand-ins for the official base images, built offline with debootstrap from the Debian
# mirror apt already uses, for machines that reach Debian and PyPI but no image registry.
# They are tagged with exactly the names the Dockerfiles use as defaults (read from the
# Dockerfiles, so the names live once), so `docker build` works unchanged. Idempotent: an
# image that exists is kept (BASE_IMAGES_REBUILD=1 rebuilds). Needs root and a running engine.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
DEBOOTSTRAP_LOG_DIR="${DEBOOTSTRAP_LOG_DIR:-/tmp}"

dockerfile_default() {  # dockerfile_default FILE ARG_NAME -> the ARG's default value
  local value
  value=$(sed -n "s/^ARG $2=\\(.*\\)$/\\1/p" "$1" | head -n 1)
  if [ -z "$value" ]; then
    echo "no 'ARG $2=...' default in $1" >&2
    return 1
  fi
  echo "$value"
}

# The mirror apt is configured with (one-line .list or deb822 .sources), serving $SUITE.
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local files=()
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] && files+=("$file")
  done
  local found=""
  if [ ${#files[@]} -gt 0 ]; then
    found=$(awk -v suite="$SUITE" '
      # one-line format: deb [options] URI SUITE COMPONENTS...
      $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) { print $i; exit } }
      # deb822 format: a stanza of "Key: value" lines, separated by blank lines
      /^URIs:/   { uri = $2 }
      /^Suites:/ { for (j = 2; j <= NF; j++) if ($j == suite) hit = 1 }
      /^[[:space:]]*$/ { if (hit && uri != "") { print uri; exit } uri = ""; hit = 0 }
      END { if (hit && uri != "") print uri }
    ' "${files[@]}" | head -n 1)
  fi
  echo "${found:-http://deb.debian.org/debian}"
}

workdir=""
cleanup() {
  [ -n "$workdir" ] && [ -d "$workdir" ] || return 0
  # debootstrap mounts /proc and /sys inside its target; never delete through a mount.
  grep -o " $workdir/[^ ]*" /proc/mounts | sort -r | xargs -r -n 1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$workdir"
}
trap cleanup EXIT

# build_image NAME PACKAGES SETUP_FUNCTION CHANGES...
build_image() {
  local name="$1" packages="$2" setup="$3"
  shift 3
  local root="$workdir/${name//[:\/]/_}"
  local log="$DEBOOTSTRAP_LOG_DIR/debootstrap-${name//[:\/]/_}.log"
  mkdir -p "$root"
  echo "debootstrap $SUITE ($packages) from $mirror for $name (log: $log)"
  if ! debootstrap --variant=minbase --include="$packages" "$SUITE" "$root" "$mirror" \
    >"$log" 2>&1; then
    echo "debootstrap failed for $name; last lines of $log:" >&2
    tail -n 25 "$log" >&2
    return 1
  fi
  # The machine's CA bundle (it may hold a proxy's CA) and pip settings, so that pip
  # inside `docker build --network host` reaches the same index the host reaches.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$root/etc/pip.conf"; fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
  "$setup" "$root"
  local change_args=()
  for change in "$@"; do change_args+=(--change "$change"); done
  tar --numeric-owner -C "$root" --exclude='./dev/*' --exclude='./proc/*' \
    --exclude='./sys/*' -c . | docker import "${change_args[@]}" \
    --message "stand-in for $name: debootstrap $SUITE from $mirror" - "$name" >/dev/null
  echo "built $name: $(docker image inspect --format '{{.Size}}' "$name" \
    | awk '{printf "%.0f MB", $1 / 1e6}')"
}

setup_python() {
  local root="$1"
  # Like the official image: the interpreter is `python` too, and pip may install into it
  # (the official image has no Debian EXTERNALLY-MANAGED marker).
  ln -sf python3 "$root/usr/bin/python"
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
}

setup_nginx() {
  local root="$1"
  # Like the official image: no default site, logs to the container's stdout/stderr.
  rm -f "$root/etc/nginx/sites-enabled/default"
  ln -sf /dev/stdout "$root/var/log/nginx/access.log"
  ln -sf /dev/stderr "$root/var/log/nginx/error.log"
}

python_image=$(dockerfile_default Dockerfile PYTHON_IMAGE)
nginx_image=$(dockerfile_default nginx/Dockerfile NGINX_IMAGE)
common_env='ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

wanted=()
for image in "$python_image" "$nginx_image"; do
  if [ "${BASE_IMAGES_REBUILD:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image exists: kept"
  else
    wanted+=("$image")
  fi
done
[ ${#wanted[@]} -eq 0 ] && exit 0

command -v debootstrap >/dev/null 2>&1 || { echo "debootstrap is not installed" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "building base images with debootstrap needs root" >&2; exit 1; }
mirror=$(debian_mirror)
workdir=$(mktemp -d /var/tmp/base-images.XXXXXX)

# The two debootstraps are independent and mostly wait on the network: run them together.
pids=()
for image in "${wanted[@]}"; do
  if [ "$image" = "$python_image" ]; then
    build_image "$image" python3,python3-venv,python3-pip,ca-certificates setup_python \
      "$common_env" 'CMD ["python3"]' &
  else
    # `docker import --change` knows no STOPSIGNAL: nginx/Dockerfile sets it.
    build_image "$image" nginx,ca-certificates setup_nginx "$common_env" 'EXPOSE 80' \
      'CMD ["nginx", "-g", "daemon off;"]' &
  fi
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit "$status"
