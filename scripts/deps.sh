#!/usr/bin/env bash
# Installs the Debian packages charrnn needs that are not installed yet (and nothing else).
#   scripts/deps.sh          build tools and OpenBLAS (the CPU backend's fast matrix products)
#   scripts/deps.sh --test   build tools, Criterion, and what the full test run uses: clang (libFuzzer
#                            and sanitizers), valgrind, rsvg-convert and xmllint (to check the plots),
#                            Open MPI (data-parallel training under mpirun)
#   scripts/deps.sh --mpi    build tools and Open MPI, for mpirun -np N charrnn train
#   scripts/deps.sh --bench  build tools and the PyTorch peer of bench/compare.py (python3-torch on
#                            the pthread OpenBLAS, as PyTorch's BLAS)
set -euo pipefail

packages=(gcc make cmake pkg-config libopenblas-dev)
[ "${1:-}" = "--test" ] && packages+=(libcriterion-dev clang libclang-rt-14-dev valgrind librsvg2-bin libxml2-utils
  openmpi-bin libopenmpi-dev)
[ "${1:-}" = "--mpi" ] && packages+=(openmpi-bin libopenmpi-dev)
[ "${1:-}" = "--bench" ] && packages+=(python3-torch libopenblas0-pthread)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "deps: missing packages ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
