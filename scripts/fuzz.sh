#!/usr/bin/env bash
# Builds the libFuzzer targets (ASan + UBSan, clang) and runs each for a bounded time, starting
# from the committed seeds in src/protocol/fuzz_corpus/ (copied: the seeds are not modified).
#
#   bash scripts/fuzz.sh                    # fuzz_frames and fuzz_handshake, 25 s each
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh   # longer
#   FUZZ_BUILD_DIR=/tmp/fuzz bash scripts/fuzz.sh
#
# Without clang or its libFuzzer runtime (Debian: clang libclang-rt-14-dev) it prints a skip
# line and exits 0. A crash or a failed check exits 1; the input that triggered it is kept in
# the build directory (crash-*), to replay with `<build>/fuzz_frames <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-25}
BUILD=${FUZZ_BUILD_DIR:-build/fuzz}
CXX_FUZZ=${FUZZ_CXX:-clang++}

if ! command -v "$CXX_FUZZ" > /dev/null 2>&1; then
  echo "fuzz: SKIPPED: $CXX_FUZZ not found (apt-get install clang libclang-rt-14-dev)"
  exit 0
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cc"
if ! "$CXX_FUZZ" -fsanitize=fuzzer,address,undefined "$probe/p.cc" -o "$probe/p" > /dev/null 2>&1; then
  echo "fuzz: SKIPPED: $CXX_FUZZ cannot link libFuzzer with ASan/UBSan (apt-get install libclang-rt-14-dev)"
  exit 0
fi

echo "== building fuzz targets in $BUILD =="
cmake -S . -B "$BUILD" -DQUANTA_BUILD_FUZZERS=ON -DQUANTA_BUILD_PYTHON=OFF -DQUANTA_BUILD_TESTS=OFF \
  -DCMAKE_CXX_COMPILER="$CXX_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$BUILD" -j "$(nproc)" --target fuzz_frames fuzz_handshake > /dev/null

status=0
for target in frames handshake; do
  work="$BUILD/corpus-$target"
  mkdir -p "$work"
  cp -n src/protocol/fuzz_corpus/"$target"/* "$work"/ 2> /dev/null || true
  echo "== fuzz_$target for ${SECONDS_EACH}s ($(ls "$work" | wc -l) inputs in its corpus) =="
  log="$BUILD/fuzz_$target.log"
  # -malloc_limit_mb: no single allocation may exceed it (a forged length must not reserve GiBs);
  # -rss_limit_mb leaves room for ASan's quarantine.
  if (cd "$BUILD" && ./fuzz_"$target" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -malloc_limit_mb=256 -max_len=8192 -print_final_stats=1 "corpus-$target") > "$log" 2>&1; then
    runs=$(grep -m1 '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -1 | grep -o 'cov: [0-9]*' || true)
    echo "fuzz_$target: ok, ${runs:-?} runs, ${cov:-cov: ?}, no crash"
  else
    status=1
    echo "fuzz_$target: FAILED (log: $log)"
    grep -E 'fuzz_(frames|handshake):|ERROR: |SUMMARY|Test unit written' "$log" | head -20 || tail -30 "$log"
  fi
done
exit $status
