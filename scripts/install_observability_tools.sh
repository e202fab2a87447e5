#!/usr/bin/env bash
# Installs Prometheus and promtool for tests/observability and the dashboard query test: Debian's
# `prometheus` package (both binaries; no recommended exporters, no service started: the tests
# run their own Prometheus in a temporary folder). Needs root and Debian's package mirror.
#
#   scripts/install_observability_tools.sh     # idempotent; the tests run it when needed
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    echo "install_observability_tools: using $(command -v prometheus) and $(command -v promtool)"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_observability_tools: need root and apt-get (Debian: apt-get install prometheus)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends prometheus >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends prometheus >/dev/null; }
# The package's postinst may start its own server where an init system runs: the tests do not
# use it, and it would hold port 9090.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi
promtool --version | head -n 1
