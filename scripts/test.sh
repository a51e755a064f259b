#!/usr/bin/env bash
# Builds charrnn and runs the whole test suite: the Criterion suites (CPU backend, emulated CUDA device,
# and the real GPU where there is one), then the same suites under AddressSanitizer and
# UndefinedBehaviorSanitizer, a short run under valgrind, and the fuzzers for about a minute.
# Installs missing packages, and tiny shakespeare when it can (the tests that need it report skipped
# otherwise). After each CTest run it says why every skipped entry was skipped.
#   scripts/test.sh [--quick] [LOCAL_COPY_OF_TINY_SHAKESPEARE]      (--quick: the Criterion suites only)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
scripts/deps.sh --test
data/get_tinyshakespeare.sh "${1:-}" || echo "test: tiny shakespeare unavailable; the tests that need it will be skipped"
scripts/build.sh
scripts/ctest.sh build
[ $quick = 1 ] && exit 0
echo "== sanitizers"
scripts/sanitize.sh
echo "== valgrind"
scripts/valgrind.sh
echo "== fuzzing"
tests/fuzz/run.sh 60
