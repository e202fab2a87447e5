#!/usr/bin/env bash
# The six images of the Dockerfile (one per target), each built once and tagged
# zoptal/<target>:$ZOPTAL_TAG (default dev): the names docker-compose.yml runs and k8s/ deploys.
#
#   scripts/images.sh build                                 # make images
#   REGISTRY=registry.example.com/team scripts/images.sh push   # make push: build, tag, push
#
# `push` tags each image $REGISTRY/zoptal/<target>:$ZOPTAL_TAG and pushes it (log in to the
# registry first). It builds through docker-compose.yml (`docker compose build`), where each image
# has one building service, so the Dockerfile's shared stages are built once. Behind a proxy that
# re-signs TLS, set ZOPTAL_BUILD_CA_BUNDLE to its CA bundle (the BuildKit secret build_ca).
set -euo pipefail
cd "$(dirname "$0")/.."

action="${1:-}"
case "$action" in
    build | push) ;;
    *) echo "usage: $0 build|push" >&2; exit 2 ;;
esac
export ZOPTAL_TAG="${ZOPTAL_TAG:-dev}"
# Engines before 23.0 build with the classic builder unless asked; the Dockerfile needs BuildKit.
export DOCKER_BUILDKIT=1
if ! docker compose version >/dev/null 2>&1; then
    echo "images: needs Docker with Compose v2 (\`docker compose version\` fails)" >&2
    exit 1
fi
registry="${REGISTRY:-}"
registry="${registry%/}"
if [ "$action" = push ] && [ -z "$registry" ]; then
    echo "images: push needs REGISTRY, e.g. REGISTRY=registry.example.com/team make push" >&2
    exit 2
fi

targets=$(sed -n 's/^FROM runtime AS \([a-z-]*\)$/\1/p' Dockerfile)
docker compose -f docker-compose.yml build
for target in $targets; do
    # Compose names the images; this says so if it ever stops naming one per target.
    image="zoptal/$target:$ZOPTAL_TAG"
    docker image inspect "$image" >/dev/null 2>&1 || {
        echo "images: docker compose build made no $image" >&2
        exit 1
    }
    if [ "$action" = push ]; then
        docker tag "$image" "$registry/$image"
        docker push "$registry/$image"
    fi
    echo "images: $image${registry:+ -> $registry/$image}"
done
if [ "$action" = push ]; then
    echo "images: for k8s/, in k8s/base: kustomize edit set image zoptal/<target>=$registry/zoptal/<target>:$ZOPTAL_TAG"
fi
