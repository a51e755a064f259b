#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (compute capability 9.0 or newer: the build holds sm_90 code): build
# with the CUDA backend, run the whole test suite on the real device (the GPU parity and cross-device
# suites run instead of reporting skipped), then benchmark both devices and print one speed table.
#   tests/gpu-check.sh [--steps N]
# Needs nvcc and cmake. Criterion comes from the system or from .gpu-deps/ (tests/pack-criterion.sh);
# tiny shakespeare from data/ (data/get_tinyshakespeare.sh). On a machine without network access, both
# of those git-ignored folders must travel with the tree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps=30
if [ "${1:-}" = "--steps" ]; then steps=$2; fi
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader

echo "== build (CUDA backend for sm_90)"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCHARRNN_CUDA=ON >/dev/null
cmake --build build-gpu -j "$(nproc)"
[ -f build-gpu/libcharrnn_cuda.a ] || { echo "gpu-check: the CUDA backend was not built (is nvcc installed?)" >&2; exit 1; }
[ -f build-gpu/test_parity_gpu ] || { echo "gpu-check: the tests were not built (Criterion missing? see tests/pack-criterion.sh)" >&2; exit 1; }

echo "== tests"
[ -f data/tinyshakespeare/input.txt ] || data/get_tinyshakespeare.sh || true
status=0
(cd build-gpu && ctest --output-on-failure) | tee build-gpu/ctest.log || status=1
grep -q "parity_gpu .*Passed" build-gpu/ctest.log || { echo "gpu-check: the GPU parity suite did not pass" >&2; status=1; }

echo "== speed (median of $steps training steps; sampling from the difference of two lengths)"
bench/speed.sh --bin build-gpu/charrnn --steps "$steps" cuda cpu || status=1
exit $status
