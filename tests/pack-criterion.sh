#!/usr/bin/env bash
# Copies Criterion (headers, the library and the shared libraries it needs, less glibc's own) from this
# machine into .gpu-deps/, so that tests/gpu-check.sh can build the test suite on a GPU machine that
# cannot install packages. CMake finds it there without pkg-config, and the test programs find its
# libraries through their run path. .gpu-deps/ is git-ignored: carry it to the GPU machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
lib=$(pkg-config --variable=libdir criterion)
rm -rf .gpu-deps && mkdir -p .gpu-deps/lib .gpu-deps/include
cp -r "$(pkg-config --variable=includedir criterion)/criterion" .gpu-deps/include/
cp -L "$lib"/libcriterion.so* .gpu-deps/lib/
ldd "$lib/libcriterion.so" | awk '/=>/ {print $3}' |
  grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv|libutil|libanl|ld-linux-x86-64)\.so' |
  xargs -r -I{} cp -L {} .gpu-deps/lib/
ls .gpu-deps/lib
du -sh .gpu-deps
