#!/usr/bin/env bash
# The one command for a machine with an NVIDIA GPU (compute capability 9.0 or newer: the build holds
# sm_90 code). In order, each part under its own time limit and all of them within a total budget:
#   info      nvidia-smi (which then keeps polling in the background, see below)
#   data      tiny shakespeare in data/, or data/get_tinyshakespeare.sh
#   build     cmake with the CUDA backend into build-gpu/ (charrnn, its module charrnn-cuda.so, the tests)
#   ctest     the whole suite; the GPU suites parity_gpu and cli_cuda_gpu must pass, not be skipped
#   settings  those two suites again under CHARRNN_CUDA_GRAPHS=0, CHARRNN_CUDA_RECURRENCE=step and
#             CHARRNN_CUDA_RECURRENCE=persistent
#   compare   bench/compare.py --device cuda --cuda-variants (ours eager+step, graphs+step, graphs+auto
#             against PyTorch with cuDNN, both without TF32), then the same with --tf32 (default variant)
#   quality   bench/compare.py --device cuda --quality, without and with --tf32
#   floor     bench/floor.py against the measured tables
#   cpu       bench/speed.sh cpu, every core, for reference
#
#   tests/gpu-check.sh [--steps N] [--rounds N] [--out DIR] [--budget SECONDS] [--dry-run]
#
# --steps: timed training steps per benchmark run (30); --rounds: alternating rounds per figure (3);
# --out: where the output goes (build-gpu/gpu-check): everything in gpu-check.log and each table in a
# file of its own beside it (7 files in all: ctest.log, compare-cuda.txt, compare-cuda-tf32.txt,
# quality-cuda.txt, floor.txt, speed-cpu.txt); --budget: the total time limit (530 s, so that the whole
# command ends within 9 minutes); --dry-run: print the parts and their commands, run nothing. A part
# that fails, times out or finds no time left does not stop the others; the summary at the end names
# every part that failed, and the exit status is 1 if any did. About 6 minutes on an H100.
#
# Needs nvcc and cmake, and a python3 that imports torch (with CUDA) for the peer. Criterion comes from
# the system or from .gpu-deps/ (tests/pack-criterion.sh), tiny shakespeare from data/tinyshakespeare/
# (data/get_tinyshakespeare.sh): both are git-ignored, so on a machine without network access both
# folders must travel with the tree.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps=30
rounds=3
out=build-gpu/gpu-check
budget=530
dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
export PYTHONUNBUFFERED=1
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
log=$out/gpu-check.log
: >"$log"
deadline=$((SECONDS + budget))
failed=()
built=1

# part NAME LIMIT FILE COMMAND...: runs COMMAND for at most LIMIT seconds (less if the budget has less
# left), its output into the log and, when FILE is not empty, into $out/FILE; records a failure.
part() {
  local name=$1 limit=$2 file=$3 rc t0=$SECONDS
  shift 3
  local left=$((deadline - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  echo "== $name (limit ${limit} s): $*" | tee -a "$log"
  if [ "$dry" = 1 ]; then
    return 0
  elif [ "$limit" -lt 10 ]; then
    echo "-- $name: not run, the time budget is spent" | tee -a "$log"
    failed+=("$name (not run: no time left)")
    return 1
  fi
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$log" ${file:+"$out/$file"}
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ]; then
    echo "-- $name: ok in $((SECONDS - t0)) s" | tee -a "$log"
    return 0
  fi
  local why="exit status $rc"
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && why="timed out after $limit s"
  [ "$rc" = 77 ] && why="skipped: no usable GPU"
  echo "-- $name: FAILED ($why) in $((SECONDS - t0)) s" | tee -a "$log"
  failed+=("$name ($why)")
  return 1
}

# needs_build NAME: false (and recorded) when the build failed, so that the parts after it are skipped.
needs_build() {
  [ "$built" = 1 ] && return 0
  echo "== $1: not run, the build failed" | tee -a "$log"
  failed+=("$1 (not run: the build failed)")
  return 1
}

echo "gpu-check: $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)'), $(nproc) cores, budget $budget s, steps $steps, rounds $rounds" | tee -a "$log"

part info 20 "" bash -c 'nvidia-smi && nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,persistence_mode --format=csv'

# Without persistence mode the driver tears the GPU's state down whenever its last client exits and
# sets it up again (1 to 3 s: NVIDIA's "Driver Persistence" notes) for the next; the benchmarks start
# some 150 short processes. nvidia-smi polling in the background is a client that keeps the state up
# meanwhile, and changes no setting.
if [ "$dry" = 0 ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp --format=csv,noheader -lms 1000 >/dev/null 2>&1 &
  keeper=$!
  trap 'kill "$keeper" 2>/dev/null' EXIT
fi

part data 30 "" bash -c '[ -f data/tinyshakespeare/input.txt ] || data/get_tinyshakespeare.sh'

part build 240 "" bash -c '
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCHARRNN_CUDA=ON && cmake --build build-gpu -j "$(nproc)" || exit 1
  [ -f build-gpu/charrnn-cuda.so ] || { echo "gpu-check: build-gpu/charrnn-cuda.so, the CUDA backend, was not built (is nvcc on the PATH?)"; exit 1; }
  [ -x build-gpu/test_parity_gpu ] && [ -x build-gpu/test_cli_cuda_gpu ] ||
    { echo "gpu-check: the GPU test suites were not built (Criterion missing? see tests/pack-criterion.sh)"; exit 1; }' ||
  built=0

if needs_build ctest; then
  part ctest 150 ctest.log bash -c 'cd build-gpu && ctest --output-on-failure'
  if [ "$dry" = 0 ]; then
    for suite in parity_gpu cli_cuda_gpu; do
      grep -Eq "Test +#[0-9]+: $suite \.+ +Passed" "$out/ctest.log" 2>/dev/null ||
        { echo "gpu-check: ctest did not report $suite as Passed" | tee -a "$log"; failed+=("ctest: $suite not Passed"); }
    done
  fi
fi

for setting in CHARRNN_CUDA_GRAPHS=0 CHARRNN_CUDA_RECURRENCE=step CHARRNN_CUDA_RECURRENCE=persistent; do
  for suite in parity_gpu cli_cuda_gpu; do
    needs_build "$suite $setting" && part "$suite $setting" 60 "" bash -c "cd build-gpu && exec env $setting ./test_$suite --jobs 2"
  done
done

compare="python3 bench/compare.py --device cuda --bin build-gpu/charrnn --steps $steps --rounds $rounds"
needs_build "compare cuda" && part "compare cuda" 210 compare-cuda.txt $compare --cuda-variants
needs_build "compare cuda tf32" && part "compare cuda tf32" 120 compare-cuda-tf32.txt $compare --tf32

needs_build "quality cuda" && part "quality cuda" 150 quality-cuda.txt bash -c '
  s=0
  python3 bench/compare.py --device cuda --bin build-gpu/charrnn --quality || s=1
  python3 bench/compare.py --device cuda --bin build-gpu/charrnn --quality --tf32 || s=1
  exit $s'

part floor 20 floor.txt bash -c '
  s=0
  for table in compare-cuda compare-cuda-tf32; do
    case $table in *tf32) tf32=--tf32 ;; *) tf32= ;; esac
    if [ -s "$1/$table.txt" ]; then python3 bench/floor.py $tf32 --measured "$1/$table.txt" || s=1
    else python3 bench/floor.py $tf32 || s=1; fi
    echo
  done
  python3 bench/floor.py --fold || s=1
  exit $s' floor "$out"

needs_build "cpu reference" && part "cpu reference" 120 speed-cpu.txt bench/speed.sh --bin build-gpu/charrnn --steps "$steps" --threads "$(nproc)" cpu

echo "== summary ($((SECONDS)) s in all; output in $out)" | tee -a "$log"
[ "$dry" = 1 ] && { echo "gpu-check: dry run, nothing was run" | tee -a "$log"; exit 0; }
if [ "${#failed[@]}" -eq 0 ]; then
  echo "gpu-check: every part passed" | tee -a "$log"
  exit 0
fi
echo "gpu-check: ${#failed[@]} part(s) failed:" | tee -a "$log"
printf '  %s\n' "${failed[@]}" | tee -a "$log"
exit 1
