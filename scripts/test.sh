#!/usr/bin/env bash
# The whole test suite: builds and installs Quanta, runs the C++ unit tests (ctest) and the
# Python behaviour tests (pytest, real processes). Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

echo "== installing quanta (pip install .[test]) =="
"$PY" -m pip install -q --disable-pip-version-check ".[test]"

echo "== C++ unit tests =="
if [ -f /usr/include/gtest/gtest.h ] || [ -f /usr/local/include/gtest/gtest.h ]; then
  cmake -S . -B build/ctest -DQUANTA_BUILD_TESTS=ON -DQUANTA_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release > /dev/null
  cmake --build build/ctest -j "$(nproc)" > /dev/null
  ctest --test-dir build/ctest --output-on-failure -j 2
else
  echo "GoogleTest headers not found: install libgtest-dev (apt-get install libgtest-dev) to run the C++ tests" >&2
  exit 1
fi

echo "== fuzzing (libFuzzer, bounded: FUZZ_SECONDS per target, default 25) =="
bash scripts/fuzz.sh

echo "== Python behaviour tests =="
# Run from tests/ so `import quanta` resolves to the installed package, not the source tree.
cd tests && exec "$PY" -m pytest -q -p no:cacheprovider "$@"
