#!/usr/bin/env bash
# Runs every example of the seed tutorial (shared/seeds/ray-tutorial.md) on Quanta, end to end.
# Usage: bash scripts/tutorial.sh [--quick]   (--quick shortens the 100-second message loop)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install -q --disable-pip-version-check . numpy
cd examples && exec "$PY" tutorial.py "$@"
