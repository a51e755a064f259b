#!/usr/bin/env bash
# A short training run, an evaluation and a sample under valgrind's memcheck: any invalid access, use of
# an uninitialised value or leak fails the run. Uses build/ (scripts/build.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 40); do echo "Is this a dagger which I see before me, the handle toward my hand?"; done >"$work/text.txt"
check() {
  valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect ./build/charrnn --device cpu "$@" >/dev/null 2>"$work/log" ||
    { cat "$work/log" >&2; echo "valgrind: charrnn $* failed" >&2; exit 1; }
}
check train --data "$work/text.txt" --hidden 16 --layers 2 --embed 8 --seq-len 12 --batch 3 --steps 4 \
  --eval-every 2 --sample-length 20 --out "$work/m.ckpt" --log "$work/run.csv"
check train --resume "$work/m.ckpt" --steps 6
check eval --checkpoint "$work/m.ckpt"
check sample --checkpoint "$work/m.ckpt" --length 50 --prime "Is this"
check plot "$work/run.csv" -o "$work/run.svg"
echo "valgrind: train, resume, eval, sample and plot are clean"
