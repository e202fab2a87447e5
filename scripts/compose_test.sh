#!/usr/bin/env bash
# make compose-test: docker-compose.yml run for real, as written (tests/deploy/compose_up/).
# Installs what is missing first (scripts/ci_docker.sh: Debian's Docker engine, Compose v2, the
# third-party images or their stand-ins; installing and starting an engine needs root), builds our
# images once (make images), then the test: `up --build --wait`, the journey over the published
# ports, mTLS evidence, rotation, a restarted and a crashed service, data kept across down/up,
# `down -v`.
#
# Bounded: the test is stopped after $COMPOSE_TEST_TIMEOUT seconds (default 600). Whatever way it
# ends, the stack is taken down with its volumes, and a Docker engine this run started is stopped.
# Our images stay, tagged (no dangling copies), as the next run's build cache.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"

PROJECT=zoptal-e2e # the Compose project of tests/deploy/compose_up/stack.py
started=$(date +%s)
pidfile="${ZOPTAL_DOCKERD_PIDFILE:-/run/zoptal-dockerd.pid}"
engine_was_running=0
docker info >/dev/null 2>&1 && engine_was_running=1

cleanup() {
    status=$?
    trap - EXIT INT TERM
    if docker info >/dev/null 2>&1; then
        docker compose -p "$PROJECT" -f docker-compose.yml down -v --remove-orphans --timeout 10 \
            >/dev/null 2>&1 || true
        echo "compose-test: project $PROJECT removed with its volumes"
        echo "compose-test: dangling images: $(docker images -q -f dangling=true | wc -l)"
    fi
    if [ "$engine_was_running" = 0 ] && [ -s "$pidfile" ]; then
        pid="$(cat "$pidfile")"
        echo "compose-test: stopping the Docker engine it started (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        rm -f "$pidfile"
    fi
    echo "compose-test: $(($(date +%s) - started)) s, exit $status"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/ci_docker.sh
# Behind a proxy that re-signs TLS the builds need the host's CA bundle (Debian's holds the
# proxy's CA where one is installed); elsewhere it is only the public CAs again.
if [ -z "${ZOPTAL_BUILD_CA_BUNDLE:-}" ] && [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    export ZOPTAL_BUILD_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
fi
# Under the test's project name: Compose labels each image it builds with the project, so images
# built under another name would be rebuilt by the test's `up --build`, and left dangling.
COMPOSE_PROJECT_NAME="$PROJECT" scripts/images.sh build

# CI=true: a missing requirement fails instead of skipping, so this target cannot pass untested.
CI=true timeout -k 30 "${COMPOSE_TEST_TIMEOUT:-600}" \
    uv run --frozen pytest tests/deploy/compose_up -p no:cacheprovider -ra --durations=0
