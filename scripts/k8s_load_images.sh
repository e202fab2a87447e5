#!/usr/bin/env bash
# Gets the six Zoptal images to a cluster without a registry, or prints the kustomize override
# for a registry:
#
#   scripts/k8s_load_images.sh kind [--cluster NAME] [--tag T] [--no-build]
#   scripts/k8s_load_images.sh minikube [--cluster PROFILE] [--tag T] [--no-build]
#   REGISTRY=registry.example.com/team scripts/k8s_load_images.sh registry [--tag T]
#
# kind/minikube: loads zoptal/<name>:T (T defaults to the tag k8s/base/kustomization.yaml pins)
# from the local Docker into the cluster's nodes; an image missing locally is built first
# (`docker build --target <name>`, the Dockerfile's stage of that name) unless --no-build.
# The manifests' imagePullPolicy: IfNotPresent then runs them without pulling.
# registry: prints the `images:` block of an overlay that points k8s/ at $REGISTRY (after
# `REGISTRY=... make push`); see docs/deployment.md.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGES=(auth project billing notification notification-worker analytics)
target=${1:-}
[ $# -gt 0 ] && shift
cluster=""
build=1
# The tag the manifests pin (every image has the same one).
tag=$(awk '/newTag:/ {print $2; exit}' k8s/base/kustomization.yaml)

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --cluster) cluster=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) usage ;;
        *) echo "k8s_load_images.sh: unknown argument $1" >&2; usage ;;
    esac
done

ensure_built() {
    local image=$1 name=$2
    if docker image inspect "$image" >/dev/null 2>&1; then return; fi
    if [ "$build" = 0 ]; then
        echo "k8s_load_images.sh: $image is not in the local Docker (make images, or drop --no-build)" >&2
        exit 1
    fi
    docker build --target "$name" -t "$image" .
}

case "$target" in
    kind|minikube)
        for name in "${IMAGES[@]}"; do
            image="zoptal/$name:$tag"
            ensure_built "$image" "$name"
            if [ "$target" = kind ]; then
                kind load docker-image "$image" ${cluster:+--name "$cluster"}
            else
                minikube image load "$image" ${cluster:+--profile "$cluster"}
            fi
            echo "k8s_load_images.sh: $image loaded into $target${cluster:+ ($cluster)}" >&2
        done
        ;;
    registry)
        : "${REGISTRY:?set REGISTRY, e.g. REGISTRY=registry.example.com/team}"
        echo "images:"
        for name in "${IMAGES[@]}"; do
            echo "  - name: zoptal/$name"
            echo "    newName: ${REGISTRY%/}/zoptal/$name"
            echo "    newTag: \"$tag\""
        done
        ;;
    *) usage ;;
esac
