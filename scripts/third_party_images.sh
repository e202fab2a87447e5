#!/usr/bin/env bash
# Makes every image the stack uses but does not build present: PostgreSQL, Redis, Jaeger,
# Prometheus, Mailpit (docker-compose.yml) and the Python base (Dockerfile). An image already here
# is kept; a missing one is pulled; once a pull fails (no registry answers), the rest that are
# missing are built as stand-ins from Debian packages (scripts/build_standin_images.sh), under the
# same names, so docker-compose.yml runs unchanged. Ends by saying which images are stand-ins.
#
#   scripts/third_party_images.sh
#
# Needs a Docker engine; building stand-ins also needs root and Debian's package mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

registry=1
standins=()
while read -r name image; do
    if docker image inspect "$image" >/dev/null 2>&1; then
        continue
    fi
    if [ "$registry" = 1 ]; then
        echo "third-party: pulling $image"
        if timeout 300 docker pull -q "$image"; then
            continue
        fi
        echo "third-party: no registry answers: stand-ins for what is missing"
        registry=0
    fi
    standins+=("$name")
done < <(scripts/build_standin_images.sh --list)

if [ "${#standins[@]}" -gt 0 ]; then
    scripts/build_standin_images.sh "${standins[@]}"
fi

# Said every time, also of stand-ins an earlier run built: the label marks them.
while read -r _ image; do
    label="$(docker image inspect -f '{{index .Config.Labels "org.zoptal.standin"}}' "$image")"
    if [ -n "$label" ]; then
        echo "third-party: $image is a STAND-IN (deploy/standins/$label, not the real image)"
    else
        echo "third-party: $image"
    fi
done < <(scripts/build_standin_images.sh --list)
