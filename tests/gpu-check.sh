#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build with the CUDA backend, run the whole test suite on the real
# device (the GPU parity and cross-device suites run instead of reporting skipped), then benchmark both
# devices and print one summary table.
#   tests/gpu-check.sh [--steps N]
# Criterion comes from the system, or from .gpu-deps/ (made by tests/pack-criterion.sh on a Debian
# machine that has it, for GPU machines that cannot install packages).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps=30
[ "${1:-}" = "--steps" ] && steps=$2

if [ -d .gpu-deps ]; then
  d="$PWD/.gpu-deps" # the pkg-config file names the folder it was packed in: point it here
  sed -i "s|^prefix=.*|prefix=$d|; s|^libdir=.*|libdir=$d/lib|; s|^includedir=.*|includedir=$d/include|" \
    .gpu-deps/lib/pkgconfig/criterion.pc
  export PKG_CONFIG_PATH="$PWD/.gpu-deps/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$PWD/.gpu-deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CPATH="$PWD/.gpu-deps/include${CPATH:+:$CPATH}"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== build (CUDA backend for sm_90)"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCHARRNN_CUDA=ON >/dev/null
cmake --build build-gpu -j "$(nproc)"
[ -f build-gpu/libcharrnn_cuda.a ] || { echo "gpu-check: the CUDA backend was not built (is nvcc on the PATH?)" >&2; exit 1; }

echo "== tests"
data/get_tinyshakespeare.sh || true
(cd build-gpu && ctest --output-on-failure) | tee build-gpu/ctest.log
grep -q "parity_gpu .*Passed" build-gpu/ctest.log || { echo "gpu-check: the GPU parity suite did not pass" >&2; exit 1; }

echo "== speed (median of $steps training steps; sampling from the difference of two lengths)"
bench/speed.sh --bin build-gpu/charrnn --steps "$steps" cuda cpu
