#!/usr/bin/env bash
# Runs every example of the seed tutorial (examples/, see examples/README.md) on Quanta.
# Usage: bash scripts/tutorial.sh [--quick]   (--quick shortens the 100-second message loop)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
. scripts/_install.sh
quanta_install examples
exec "$PY" examples/run_all.py "$@"
