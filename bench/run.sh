#!/usr/bin/env bash
# Runs the benchmarks from the repo root with the project's venv; arguments pass through
# (e.g. bench/run.sh --quick --only verifier,overhead).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PLANE_CONNECTOR_VENV:-.venv}/bin/python" -m bench "$@"
