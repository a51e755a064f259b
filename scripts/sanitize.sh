#!/usr/bin/env bash
# The whole Criterion suite (CPU backend and emulated CUDA device) built with AddressSanitizer and
# UndefinedBehaviorSanitizer, into build-sanitize/; any report fails the run. The suites' reverse-order
# reruns are left to the ordinary build, where the race detector runs with them (it is not built with
# AddressSanitizer): here they would only repeat the forward runs' accesses; so are the emulated parity
# suite's reruns with OpenBLAS's kernels fixed or the built-in loops, whose CPU side the other suites'
# reruns cover here (a minute of the run). It is built without MPI, which checks the build that runs as
# one process (and that mpirun of it says so); the data-parallel runs are tested in build/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DCHARRNN_CUDA=OFF -DCHARRNN_MPI=OFF \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >/dev/null
cmake --build build-sanitize -j "$(nproc)" >/dev/null
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
scripts/ctest.sh build-sanitize -E 'reverse_order|parity_emu_blas_fixed|parity_emu_builtin'
