#!/usr/bin/env bash
# Builds the runtime virtualenv exactly as the Dockerfile does, so CI can replay the image's
# build steps without a Docker engine (tests/deploy/test_image_build.py runs it).
#
#   deploy/build_runtime_env.sh VENV_DIR [--deps-only]
#
# --deps-only installs the locked third-party dependencies only (the Dockerfile's cached layer);
# without it the workspace packages are installed too, non-editable, so VENV_DIR is
# self-contained and the runtime image needs nothing but it and the Python interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:?usage: build_runtime_env.sh VENV_DIR [--deps-only]}"
mode="${2:-}"

export UV_PROJECT_ENVIRONMENT="$venv"
export UV_COMPILE_BYTECODE=1     # the root filesystem is read-only at run time: no .pyc writes
export UV_LINK_MODE=copy         # the venv is copied to another stage; no hard links to a cache
export UV_PYTHON_DOWNLOADS=never # use the interpreter of the base image

if [ "$mode" = "--deps-only" ]; then
    uv sync --frozen --no-dev --all-packages --no-install-workspace
else
    # uv keys its cached wheels of local packages on their pyproject.toml, not their sources: a
    # changed module would ship stale (the Dockerfile keeps the uv cache between builds). So the
    # workspace members are always rebuilt; third-party wheels still come from the cache.
    refresh=()
    for manifest in libs/*/pyproject.toml services/*/pyproject.toml; do
        name="$(sed -n 's/^name = "\(.*\)"$/\1/p' "$manifest" | head -n 1)"
        refresh+=(--refresh-package "$name")
    done
    uv sync --frozen --no-dev --all-packages --no-editable "${refresh[@]}"
fi
