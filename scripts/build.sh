#!/usr/bin/env bash
# Configures and builds charrnn (Release) into build/ (or $CHARRNN_BUILD_DIR): the program, its test
# suites and the emulated CUDA device; with --no-tests the program alone, which is all the quick start
# needs (and it then has nothing to say about test dependencies it does not use). --configure-only stops
# after CMake's configure step. Other arguments go to that step.
#   scripts/build.sh [--no-tests] [--configure-only] [CMAKE_ARGS...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tests=ON
configure_only=0
while [ $# -gt 0 ]; do
  case $1 in
  --no-tests) tests=OFF ;;
  --configure-only) configure_only=1 ;;
  *) break ;;
  esac
  shift
done
build=${CHARRNN_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCHARRNN_TESTS=$tests -DCHARRNN_CUDA_EMU=$tests "$@" >/dev/null
[ $configure_only = 1 ] && exit 0
cmake --build "$build" -j "$(nproc)"
