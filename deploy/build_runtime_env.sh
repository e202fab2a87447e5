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
venv="${1:?usage: build_runtime_env.sh VENV_DIR [--deps-only]}"
mode="${2:-}"

export UV_PROJECT_ENVIRONMENT="$venv"
export UV_COMPILE_BYTECODE=1     # the root filesystem is read-only at run time: no .pyc writes
export UV_LINK_MODE=copy         # the venv is copied to another stage; no hard links to a cache
export UV_PYTHON_DOWNLOADS=never # use the interpreter of the base image

if [ "$mode" = "--deps-only" ]; then
    uv sync --frozen --no-dev --all-packages --no-install-workspace
else
    uv sync --frozen --no-dev --all-packages --no-editable
fi
