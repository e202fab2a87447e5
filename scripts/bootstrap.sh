#!/usr/bin/env bash
# Makes sure uv is present and the locked workspace is installed in .venv.
# Needs only python3 (3.11+); installs uv from PyPI when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
    if [ -x "$HOME/.local/bin/uv" ]; then
        export PATH="$HOME/.local/bin:$PATH"
    else
        echo "bootstrap: installing uv from PyPI" >&2
        python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
        export PATH="$HOME/.local/bin:$PATH"
    fi
fi
# Bytecode compiled once at install: where PYTHONDONTWRITEBYTECODE is set (this kind of machine,
# the images) Python would otherwise recompile every imported module in every process it starts,
# about two seconds per service, migration and test subprocess.
uv sync --frozen --all-packages --quiet --compile-bytecode
