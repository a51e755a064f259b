#!/usr/bin/env bash
# Builds charrnn and runs the whole test suite. Installs missing build and test packages, and tiny
# shakespeare when it can (tests that need it report skipped otherwise).
#   scripts/test.sh [LOCAL_COPY_OF_TINY_SHAKESPEARE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/deps.sh --test
data/get_tinyshakespeare.sh "${1:-}" || echo "test: tiny shakespeare unavailable; the tests that need it will be skipped"
scripts/build.sh
cd build
ctest --output-on-failure
