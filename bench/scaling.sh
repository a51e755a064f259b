#!/usr/bin/env bash
# Data parallel against threads on one machine: training tokens/s of N ranks x 1 thread each
# (mpirun -np N charrnn train --threads 1) against 1 process x N threads (charrnn train --threads N), the
# same global batch, alternating rounds so that both see the same machine state.
#   bench/scaling.sh [--bin PATH] [--ranks N] [--steps N] [--rounds N] [--configs small,medium,deep,default]
# Each figure is the median over the rounds of the median tokens/s of N timed steps (after 3 warm-up
# steps) from train --log; ratio = ranks / threads (above 1: the ranks are faster). Needs Open MPI's
# mpirun and a charrnn built with MPI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=./build/charrnn
ranks=2
steps=30
rounds=3
wanted=small,medium,deep,default
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --configs) wanted=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "scaling: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
data=data/tinyshakespeare/input.txt
[ -f "$data" ] || { echo "scaling: $data is missing; run data/get_tinyshakespeare.sh" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "scaling: mpirun not found (Debian: scripts/deps.sh --mpi)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# name embed hidden layers seq-len batch (default: charrnn train's defaults)
configs=("small 128 128 1 64 32" "medium 512 512 1 128 64" "deep 256 256 2 128 64" "default 64 256 2 128 64")

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

# The median tokens/s of one run's timed steps; the launcher (if any) comes first.
run() {
  local threads=$1 E=$2 H=$3 L=$4 T=$5 B=$6
  shift 6
  "$@" "$bin" --device cpu train --threads "$threads" --data "$data" --embed "$E" --hidden "$H" --layers "$L" \
    --seq-len "$T" --batch "$B" --steps $((steps + 3)) --eval-every 0 --save-every 0 --out "$work/m.ckpt" --overwrite \
    --log "$work/log.csv" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  tail -n +5 "$work/log.csv" | cut -d, -f3 | median
  rm -f "$work/log.csv"
}

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $ranks ranks x 1 thread against 1 process x $ranks threads"
printf "%-8s %16s %16s %7s\n" config "threads tok/s" "ranks tok/s" ratio
for cfg in "${configs[@]}"; do
  read -r name E H L T B <<<"$cfg"
  [[ ",$wanted," == *",$name,"* ]] || continue
  : >"$work/threads"
  : >"$work/ranks"
  for _ in $(seq "$rounds"); do
    run "$ranks" "$E" "$H" "$L" "$T" "$B" >>"$work/threads"
    run 1 "$E" "$H" "$L" "$T" "$B" mpirun -np "$ranks" >>"$work/ranks"
  done
  threads=$(median <"$work/threads")
  by_ranks=$(median <"$work/ranks")
  printf "%-8s %16.0f %16.0f %7.2f\n" "$name" "$threads" "$by_ranks" "$(awk "BEGIN {print $by_ranks / $threads}")"
done
