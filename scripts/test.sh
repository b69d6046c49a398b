#!/usr/bin/env bash
# Installs everything the tests need, then runs the whole suite: ruff, mypy (strict on src), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
export PATH="$PWD/.venv/bin:$PATH"
ruff check src tests examples benchmarks scripts
ruff format --check src tests examples benchmarks scripts
mypy
pytest "$@"
