#!/usr/bin/env bash
# From a fresh clone to a sample: installs what is missing, builds, gets tiny shakespeare, trains a
# small model for about two minutes on the best available device and prints a sample.
#   scripts/quickstart.sh [LOCAL_COPY_OF_TINY_SHAKESPEARE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/deps.sh
scripts/build.sh
data/get_tinyshakespeare.sh "${1:-}"
./build/charrnn --device auto train --steps 1500 --out checkpoints/quickstart.ckpt
echo
./build/charrnn --device auto sample --checkpoint checkpoints/quickstart.ckpt --length 600 --prime "ROMEO:"
echo
