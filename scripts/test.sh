#!/usr/bin/env bash
# The whole test suite: builds and installs Quanta, runs the C++ unit tests (ctest) and the
# Python behaviour tests (pytest, real processes). Usage: bash scripts/test.sh [pytest args]
# Build directories are kept (build/<wheel tag> for pip, build/ctest for ctest): a second run
# rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

echo "== installing quanta (pip install .[test]) =="
. scripts/_install.sh
quanta_install test

echo "== C++ unit tests =="
if [ -f /usr/include/gtest/gtest.h ] || [ -f /usr/local/include/gtest/gtest.h ]; then
  cmake -S . -B build/ctest -DQUANTA_BUILD_TESTS=ON -DQUANTA_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release > /dev/null
  cmake --build build/ctest -j "$(nproc)" > /dev/null
  # One summary line when all pass; otherwise the failed tests again, each with its output.
  # The full log is kept in build/ctest/Testing/Temporary/LastTest.log.
  if ctest --test-dir build/ctest -j 2 > build/ctest/ctest-output.txt 2>&1; then
    grep -E "tests passed|Total Test time" build/ctest/ctest-output.txt
  else
    grep -E "tests passed|\*\*\*|Failed|Timeout" build/ctest/ctest-output.txt || true
    ctest --test-dir build/ctest --rerun-failed --output-on-failure
    exit 1
  fi
else
  echo "GoogleTest headers not found: install libgtest-dev (apt-get install libgtest-dev) to run the C++ tests" >&2
  exit 1
fi

echo "== fuzzing (libFuzzer, bounded: FUZZ_SECONDS per target, default 25) =="
bash scripts/fuzz.sh

echo "== Python behaviour tests =="
# Run from tests/ so `import quanta` resolves to the installed package, not the source tree.
# -rs: the reason of every skipped test (a missing tool, no root, ...) is printed at the end.
cd tests && exec "$PY" -m pytest -q -rs -p no:cacheprovider "$@"
