#!/usr/bin/env bash
# Installs taskdaemon and runs the canonical example pipeline with full monitoring on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/taskdaemon run examples/feature_delivery.yaml --input goal="ship the release notes" --auto-approve "$@"
