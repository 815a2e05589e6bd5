#!/usr/bin/env bash
# CI: build the container image on a Debian bookworm base made here, then smoke-test it (tests/image/).
#
# No image registry is reachable from CI machines, so this starts its own dockerd (no bridge, no iptables:
# every container runs with --network host and talks to 127.0.0.1 only), makes the base with debootstrap
# and `docker import`, and builds with the machine's CA bundle as a build secret and its package index
# (PIP_INDEX_URL / UV_INDEX_URL, when set) as build arguments. dockerd is stopped by its pid file on exit.
#
#   .ci/image.sh            build + smoke tests          XGATE_CI_CACHE  where the base tarball is kept
#   .ci/image.sh build      build only                   (default /var/tmp/xgate-ci; 7 days)
#   XGATE_CI_DOCKER_ROOT=DIR  keep dockerd's data (images, build cache) in DIR between runs (default: a
#                             temporary folder, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
started=$(date +%s)

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's client (docker.io) drives the daemon's own BuildKit; a newer client elsewhere on PATH may want
# the buildx plugin instead
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker)
export XGATE_TEST_DOCKER=$DOCKER

cache=${XGATE_CI_CACHE:-/var/tmp/xgate-ci}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca=${XGATE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
mkdir -p "$cache"
run=$(mktemp -d /tmp/xgate-docker.XXXXXX)
export DOCKER_HOST="unix://$run/docker.sock"

stop_dockerd() {
  if [ -f "$run/dockerd.pid" ]; then
    pid=$(cat "$run/dockerd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  if [ -f "$run/dockerd.pid" ] && kill -0 "$(cat "$run/dockerd.pid")" 2>/dev/null; then
    echo "dockerd did not stop; its files stay in $run" >&2
    return
  fi
  # what dockerd leaves mounted (its network namespace file), innermost first
  awk -v run="$run/" 'index($2, run) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount
  rm -rf "$run"
}
trap stop_dockerd EXIT

dockerd --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
  --data-root "${XGATE_CI_DOCKER_ROOT:-$run/data}" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
  --host "$DOCKER_HOST" >"$run/dockerd.log" 2>&1 &
for _ in $(seq 120); do "$DOCKER" version >/dev/null 2>&1 && break; sleep 0.5; done
"$DOCKER" version --format 'dockerd {{.Server.Version}}' || { tail -20 "$run/dockerd.log"; exit 1; }

# the base: Debian bookworm, minbase variant, kept as a tarball between local runs
base_tar="$cache/bookworm-minbase.tar"
if [ -z "$(find "$base_tar" -mtime -7 2>/dev/null)" ]; then
  debootstrap --variant=minbase bookworm "$run/rootfs" "$mirror" >"$run/debootstrap.log" 2>&1 \
    || { tail -20 "$run/debootstrap.log"; exit 1; }
  rm -rf "$run/rootfs/var/cache/apt/archives/"*.deb "$run/rootfs/var/lib/apt/lists/"*
  tar -C "$run/rootfs" -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
  rm -rf "$run/rootfs"
fi
"$DOCKER" import "$base_tar" xgate-ci/bookworm:base >/dev/null

build_args=()
for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL UV_INDEX_URL UV_EXTRA_INDEX_URL; do
  # a file:// index on this machine means nothing inside the build
  if [ -n "${!name:-}" ] && [[ "${!name}" != file:* ]]; then build_args+=(--build-arg "$name"); fi
done
build_started=$(date +%s)
# PostgreSQL for compose.yaml's test, from the same base (no registry to pull postgres from), meanwhile
DOCKER_BUILDKIT=1 "$DOCKER" build -q --network host --build-arg BASE_IMAGE=xgate-ci/bookworm:base \
  -t xgate-ci/postgres tests/image/postgres >"$run/postgres-build.log" 2>&1 &
pg_build=$!
DOCKER_BUILDKIT=1 "$DOCKER" build -q --network host \
  --build-arg BASE_IMAGE=xgate-ci/bookworm:base "${build_args[@]}" \
  --secret id=ca,src="$ca" -t xgate:ci . >/dev/null
wait "$pg_build" || { cat "$run/postgres-build.log"; exit 1; }
echo "image xgate:ci built in $(( $(date +%s) - build_started )) s ($("$DOCKER" image inspect -f '{{.Size}}' xgate:ci | numfmt --to=iec))"

if [ "${1:-}" != build ]; then
  XGATE_TEST_IMAGE=xgate:ci XGATE_TEST_POSTGRES_IMAGE=xgate-ci/postgres .venv/bin/python -m pytest -q -p no:cacheprovider tests/image
fi
echo "image step took $(( $(date +%s) - started )) s"
