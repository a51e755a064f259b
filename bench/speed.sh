#!/usr/bin/env bash
# Training tokens/s and sampling chars/s of charrnn on one device, at the benchmark configurations.
#   bench/speed.sh [--bin PATH] [--steps N] [--threads N] [--configs small,medium,deep,default|tiny]
#                  [--sample-lengths LONG,SHORT] [--data FILE] DEVICE...      (DEVICE: cpu, cuda)
# Training: the median tokens/s of N timed steps after 3 warm-up steps, from train --log.
# Sampling: chars/s of the difference between generating LONG and SHORT characters (20000 and 4000), so
# that program start-up and device initialisation cancel out. --data: the text (tiny shakespeare).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=./build/charrnn
steps=30
threads=1
only=small,medium,deep,default
lengths=20000,4000
data=data/tinyshakespeare/input.txt
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --configs) only=$2; shift 2 ;;
    --sample-lengths) lengths=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
long=${lengths%,*}
short=${lengths#*,}
[ $# -gt 0 ] || { echo "speed: name at least one device (cpu, cuda)" >&2; exit 2; }
[ -f "$data" ] || { echo "speed: $data is missing; run data/get_tinyshakespeare.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# name embed hidden layers seq-len batch (tiny: only when asked, for the emulated device's checks)
configs=("small 128 128 1 64 32" "medium 512 512 1 128 64" "deep 256 256 2 128 64" "default 64 256 2 128 64"
  "tiny 16 40 2 16 8")

# Wall-clock seconds of a command (its output discarded); a failing command stops the benchmark.
seconds() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
  t1=$(date +%s.%N)
  awk "BEGIN {print $t1 - $t0}"
}

printf "%-8s %-6s %14s %14s   (charrnn, %s thread%s)\n" config device "train tok/s" "sample char/s" "$threads" \
  "$([ "$threads" = 1 ] || echo s)"
for device in "$@"; do
  for cfg in "${configs[@]}"; do
    read -r name E H L T B <<<"$cfg"
    [[ ",$only," == *",$name,"* ]] || continue
    ckpt="$work/$name-$device.ckpt"
    "$bin" --device "$device" train --threads "$threads" --data "$data" --embed "$E" --hidden "$H" --layers "$L" --seq-len "$T" \
      --batch "$B" --steps $((steps + 3)) --eval-every 0 --save-every 0 --out "$ckpt" --log "$work/log.csv" \
      2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    train=$(tail -n +5 "$work/log.csv" | cut -d, -f3 | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}')
    rm -f "$work/log.csv"
    t_long=$(seconds "$bin" --device "$device" sample --threads "$threads" --checkpoint "$ckpt" --length "$long") || exit 1
    t_short=$(seconds "$bin" --device "$device" sample --threads "$threads" --checkpoint "$ckpt" --length "$short") || exit 1
    sample=$(awk "BEGIN {print ($long - $short) / ($t_long - $t_short)}")
    printf "%-8s %-6s %14.0f %14.0f\n" "$name" "$device" "$train" "$sample"
  done
done
