#!/usr/bin/env bash
# The Kubernetes Secrets of one Zoptal install, made on this machine: nothing secret is in k8s/.
#
#   scripts/k8s_secrets.sh                        generate what is missing, apply every Secret
#   scripts/k8s_secrets.sh --render               generate what is missing, print the Secrets
#   scripts/k8s_secrets.sh --rotate-signing-key   add a new Auth signing key: published at once,
#                                                 signing after PUBLISH_SECONDS (default 1800);
#                                                 the old one stays published until you delete it
#   scripts/k8s_secrets.sh --rotate-credential SVC
#                                                 a new credential for SVC, applied and registered
#
# Options: --dir DIR (default .secrets/k8s, git-ignored), --namespace NS (default zoptal).
# KUBECTL overrides the kubectl command; PUBLISH_SECONDS the signing-key publish delay.
#
# What it keeps in DIR (folders 0700, files 0600; keep DIR as safe as the cluster's Secrets):
#   auth-jwt-keys/<unix time>-<hex>.pem      Secret auth-jwt-keys: Auth's ES256 keys (P-256,
#                                            PKCS#8); every file is published, the newest whose
#                                            time (the name's prefix) has come signs
#   postgres-password/password               Secret postgres-password (key `password`): 256 bits;
#                                            for a managed database, write its password here first
#   identities/<svc>/credentials.json        Secret <svc>-identity (key credentials.json), for the
#                                            services that call peers: {"service", "client_id":
#                                            "sa_" + 24 hex, "client_secret": 256 bits, base64url}
# Auth's init container service-identity registers the credentials in Auth's database (hashes).
# Generation is idempotent: an existing file is never overwritten except by a --rotate-* option.
set -euo pipefail
umask 077

CALLERS=(project billing notification analytics)
KUBECTL=${KUBECTL:-kubectl}
repo=$(cd "$(dirname "$0")/.." && pwd)
dir="$repo/.secrets/k8s"
namespace=zoptal
mode=apply
rotate_service=""

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir=$2; shift 2 ;;
        --namespace) namespace=$2; shift 2 ;;
        --render) mode=render; shift ;;
        --rotate-signing-key) mode=rotate-key; shift ;;
        --rotate-credential) mode=rotate-credential; rotate_service=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "k8s_secrets.sh: unknown argument $1" >&2; usage ;;
    esac
done

# 256 random bits, base64url without padding (43 characters).
random_secret() { openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n'; }

# $1: seconds the key is only published before it signs (zoptal_auth.keys): 0 for a first key,
# else longer than every verifier's JWKS cache (istiod refetches a jwksUri every 20 min).
new_signing_key() {
    mkdir -p "$dir/auth-jwt-keys"
    # The name's time is when Auth starts signing with the key; it also sorts the keys.
    local file
    file="$dir/auth-jwt-keys/$(( $(date -u +%s) + ${1:-0} ))-$(openssl rand -hex 6).pem"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$file" 2>/dev/null
    echo "k8s_secrets.sh: new signing key $(basename "$file")" >&2
}

new_credential() {
    local svc=$1 folder="$dir/identities/$1"
    mkdir -p "$folder"
    # Written beside and renamed, so an interrupted run never leaves half a file.
    printf '{"service": "%s", "client_id": "sa_%s", "client_secret": "%s"}\n' \
        "$svc" "$(openssl rand -hex 12)" "$(random_secret)" >"$folder/.credentials.json.new"
    mv "$folder/.credentials.json.new" "$folder/credentials.json"
    echo "k8s_secrets.sh: new credential for $svc" >&2
}

generate_missing() {
    mkdir -p "$dir"
    if ! ls "$dir"/auth-jwt-keys/*.pem >/dev/null 2>&1; then new_signing_key; fi
    if [ ! -s "$dir/postgres-password/password" ]; then
        mkdir -p "$dir/postgres-password"
        random_secret >"$dir/postgres-password/password"
    fi
    for svc in "${CALLERS[@]}"; do
        if [ ! -s "$dir/identities/$svc/credentials.json" ]; then new_credential "$svc"; fi
    done
}

# Every Secret as YAML documents, built offline by kubectl (--dry-run=client).
render() {
    local create=("$KUBECTL" create secret generic --namespace "$namespace" --dry-run=client -o yaml)
    "${create[@]}" auth-jwt-keys --from-file="$dir/auth-jwt-keys"
    echo "---"
    "${create[@]}" postgres-password --from-file=password="$dir/postgres-password/password"
    for svc in "${CALLERS[@]}"; do
        echo "---"
        "${create[@]}" "$svc-identity" \
            --from-file=credentials.json="$dir/identities/$svc/credentials.json"
    done
}

apply() {
    "$KUBECTL" create namespace "$namespace" --dry-run=client -o yaml | "$KUBECTL" apply -f -
    render | "$KUBECTL" apply -f -
}

# Register a new credential: every Auth pod runs `service-identity ensure` as an init container,
# so a rolling restart registers it (no Job: its immutable pod template would break re-applies).
register() {
    "$KUBECTL" -n "$namespace" rollout restart deployment/auth
    "$KUBECTL" -n "$namespace" rollout status deployment/auth --timeout=300s
}

case "$mode" in
    render)
        generate_missing
        render
        ;;
    apply)
        generate_missing
        apply
        ;;
    rotate-key)
        generate_missing
        new_signing_key "${PUBLISH_SECONDS:-1800}"
        apply
        # Every replica publishes the key after the rollout; each starts signing with it at the
        # time in its name, on its own clock, with no further restart.
        "$KUBECTL" -n "$namespace" rollout restart deployment/auth
        ;;
    rotate-credential)
        case " ${CALLERS[*]} " in
            *" $rotate_service "*) ;;
            *) echo "k8s_secrets.sh: $rotate_service holds no credential (${CALLERS[*]})" >&2; exit 2 ;;
        esac
        generate_missing
        new_credential "$rotate_service"
        apply
        register
        ;;
esac
