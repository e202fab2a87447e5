#!/usr/bin/env bash
# Node.js 18+ and npm for the tests that run JavaScript: the Node.js client example
# (tests/e2e/test_node_client.py, examples/node) and the Istio CRD check (tests/deploy). Those
# tests fail under CI=true without them, so CI installs them first: Debian's nodejs and npm, only
# the ones missing, and nothing at all when both are present (the usual case: seconds).
#
#   scripts/ci_node.sh
set -euo pipefail

NODE_MAJOR_MIN=18

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "ci-node: installing Debian's ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt "$NODE_MAJOR_MIN" ]; then
    echo "ci-node: node $(node --version) is older than $NODE_MAJOR_MIN (examples/node needs it)" >&2
    exit 1
fi
echo "ci-node: node $(node --version), npm $(npm --version)"
