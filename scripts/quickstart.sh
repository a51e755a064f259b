#!/usr/bin/env bash
# From a fresh clone to a sample: installs what is missing, builds the program, gets tiny shakespeare,
# trains a small model for about two minutes on the best available device and prints a sample. Safe to
# run again: it starts its own checkpoint over each time.
#   scripts/quickstart.sh [LOCAL_COPY_OF_TINY_SHAKESPEARE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/deps.sh
scripts/build.sh --no-tests
data/get_tinyshakespeare.sh "${1:-}"
./build/charrnn --device auto train --steps 1500 --out checkpoints/quickstart.ckpt --overwrite
echo
./build/charrnn --device auto sample --checkpoint checkpoints/quickstart.ckpt --length 600 --prime "ROMEO:"
echo
echo "quickstart: to have charrnn on your PATH, install it: sudo cmake --install build" \
  "(or: cmake --install build --prefix ~/.local)"
