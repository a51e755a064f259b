#!/usr/bin/env bash
# Copies Criterion (headers, pkg-config file, the library and the shared libraries it needs) from this
# machine into .gpu-deps/, so that tests/gpu-check.sh can build the test suite on a GPU machine that has
# no package manager access. .gpu-deps/ is git-ignored; carry it to the GPU machine with the tree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
lib=$(pkg-config --variable=libdir criterion)
rm -rf .gpu-deps && mkdir -p .gpu-deps/lib/pkgconfig .gpu-deps/include
cp -r "$(pkg-config --variable=includedir criterion)/criterion" .gpu-deps/include/
cp -L "$lib"/libcriterion.so* .gpu-deps/lib/
ldd "$lib/libcriterion.so" | awk '/=>/ {print $3}' | grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux)' |
  xargs -r -I{} cp -L {} .gpu-deps/lib/
sed "s|^prefix=.*|prefix=$PWD/.gpu-deps|; s|^libdir=.*|libdir=$PWD/.gpu-deps/lib|; s|^includedir=.*|includedir=$PWD/.gpu-deps/include|" \
  "$(pkg-config --variable=pcfiledir criterion)/criterion.pc" > .gpu-deps/lib/pkgconfig/criterion.pc
du -sh .gpu-deps
