#!/usr/bin/env bash
# Installs the Debian packages charrnn needs that are not installed yet (and nothing else).
#   scripts/deps.sh          build tools and OpenBLAS (the CPU backend's fast matrix products)
#   scripts/deps.sh --test   build tools, Criterion, and what the full test run uses: clang (libFuzzer
#                            and sanitizers), valgrind, rsvg-convert and xmllint (to check the plots),
#                            Open MPI (data-parallel training under mpirun)
#   scripts/deps.sh --mpi    build tools and Open MPI, for mpirun -np N charrnn train
#   scripts/deps.sh --bench  build tools and the peers of bench/compare.py: PyTorch (python3-torch on
#                            the pthread OpenBLAS, as PyTorch's BLAS) and numpy
# While another package manager holds the dpkg or apt lock (a fresh machine often runs unattended upgrades
# for its first minutes), it says so and waits: CHARRNN_DEPS_LOCK_WAIT seconds at most (default 1800),
# trying again every CHARRNN_DEPS_LOCK_POLL seconds (default 10).
set -euo pipefail

packages=(gcc make cmake pkg-config libopenblas-dev)
[ "${1:-}" = "--test" ] && packages+=(libcriterion-dev clang libclang-rt-14-dev valgrind librsvg2-bin libxml2-utils
  openmpi-bin libopenmpi-dev)
[ "${1:-}" = "--mpi" ] && packages+=(openmpi-bin libopenmpi-dev)
[ "${1:-}" = "--bench" ] && packages+=(python3-torch python3-numpy libopenblas0-pthread)

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
wait_limit=${CHARRNN_DEPS_LOCK_WAIT:-1800}
poll=${CHARRNN_DEPS_LOCK_POLL:-10}

# apt-get, run again while another package manager holds its lock.
apt_get() {
  local waited=0 output status
  while :; do
    status=0
    output=$("${sudo[@]}" apt-get "$@" 2>&1) || status=$?
    if [ $status -eq 0 ]; then
      return 0
    fi
    if ! grep -qE 'Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock' <<<"$output"; then
      printf '%s\n' "$output" >&2
      return $status
    fi
    if [ "$waited" -ge "$wait_limit" ]; then
      printf '%s\n' "$output" >&2
      echo "deps: the package manager was still busy after ${waited}s; try again when it is done" >&2
      return $status
    fi
    if [ "$waited" -eq 0 ]; then
      echo "deps: another package manager is running (unattended upgrades on a fresh machine?);" \
        "waiting for it to finish (at most ${wait_limit}s)"
    fi
    sleep "$poll"
    waited=$((waited + poll))
  done
}

apt_get update -qq
apt_get install -y -qq "${missing[@]}"
