#!/usr/bin/env bash
# Builds STAND-IN images for a machine that cannot reach an image registry (deploy/standins/):
# local images tagged exactly as docker-compose.yml and the Dockerfile name their third-party and
# base images, made from Debian packages, so `docker compose up --build --wait` runs unchanged.
# They are not the real images; with a registry, do not run this (scripts/third_party_images.sh
# pulls what it can and builds stand-ins only for the rest).
#
#   scripts/build_standin_images.sh [--force] [NAME...]   # NAME: python postgres redis jaeger
#                                                         # prometheus mailpit (default: all)
#   scripts/build_standin_images.sh --list                # "NAME IMAGE" for each, nothing built
#
# Needs root (debootstrap), a Docker engine, and Debian's package mirror. The two root
# filesystems are cached under $STANDIN_CACHE (default /var/tmp/zoptal-standins); the mirror is
# $DEBIAN_MIRROR, else the first bookworm mirror in /etc/apt/sources.list*, else deb.debian.org.
# A tag that exists and is not a stand-in (no org.zoptal.standin label) is left alone unless
# --force is given.
set -euo pipefail
cd "$(dirname "$0")/.."

force=0
list=0
names=()
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --list) list=1 ;;
        python | postgres | redis | jaeger | prometheus | mailpit) names+=("$arg") ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done
[ "${#names[@]}" -gt 0 ] || names=(python postgres redis jaeger prometheus mailpit)
cache="${STANDIN_CACHE:-/var/tmp/zoptal-standins}"
suite=bookworm

mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    mirror="$(grep -hs -E '^(URIs:|deb) ' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list.d/*.list | sed -E 's/^(URIs:|deb( \[[^]]*\])?) *//; s/ .*//' \
        | grep -E '/debian/?$' | head -n 1 || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

# The tags to build, read from the files that use them.
compose_image() { sed -n "s#^ *image: *\($1:[^ ]*\) *\$#\1#p" docker-compose.yml | head -n 1; }
python_image="$(sed -n 's/^ARG PYTHON_IMAGE=\(.*\)$/\1/p' Dockerfile | head -n 1)"
declare -A tags=(
    [python]="$python_image"
    [postgres]="$(compose_image postgres)"
    [redis]="$(compose_image redis)"
    [jaeger]="$(compose_image jaegertracing/jaeger)"
    [prometheus]="$(compose_image prom/prometheus)"
    [mailpit]="$(compose_image axllent/mailpit)"
)
for name in "${!tags[@]}"; do
    [ -n "${tags[$name]}" ] || { echo "no image name found for $name" >&2; exit 1; }
done
if [ "$list" = 1 ]; then
    for name in python postgres redis jaeger prometheus mailpit; do echo "$name ${tags[$name]}"; done
    exit 0
fi

if ! command -v debootstrap >/dev/null; then
    apt-get install -y debootstrap
fi

# rootfs NAME PACKAGES: a minimal bookworm with those packages, imported as
# zoptal-standin/NAME-base:bookworm (both cached).
rootfs() {
    local name="$1" packages="$2" dir="$cache/$1"
    if [ ! -e "$dir/.complete" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        echo "debootstrap $suite ($packages) from $mirror into $dir"
        debootstrap --variant=minbase --include="$packages" "$suite" "$dir" "$mirror"
        rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
        touch "$dir/.complete"
        docker image rm "zoptal-standin/$name-base:$suite" >/dev/null 2>&1 || true
    fi
    if ! docker image inspect "zoptal-standin/$name-base:$suite" >/dev/null 2>&1; then
        tar -C "$dir" --exclude=./.complete -c . | docker import - "zoptal-standin/$name-base:$suite"
    fi
}

wanted() { [[ " ${names[*]} " == *" $1 "* ]]; }
if wanted python; then
    rootfs python "python3,python3-pip,python-is-python3,ca-certificates,netbase,tzdata"
fi
if [ "${#names[@]}" -gt 1 ] || ! wanted python; then
    rootfs services "python3,python3-grpcio,python3-yaml,ca-certificates,netbase,tzdata,wget,procps,postgresql-15,postgresql-client-15,redis-server,redis-tools"
fi

for name in "${names[@]}"; do
    tag="${tags[$name]}"
    label="$(docker image inspect -f '{{index .Config.Labels "org.zoptal.standin"}}' "$tag" 2>/dev/null || true)"
    if docker image inspect "$tag" >/dev/null 2>&1 && [ -z "$label" ] && [ "$force" = 0 ]; then
        echo "$tag exists and is not a stand-in: kept (--force replaces it)"
        continue
    fi
    base="zoptal-standin/services-base:$suite"
    [ "$name" = python ] && base="zoptal-standin/python-base:$suite"
    # The classic builder: no frontend image to pull and only local images in FROM.
    DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" -t "$tag" "deploy/standins/$name"
    echo "stand-in $tag built"
done
