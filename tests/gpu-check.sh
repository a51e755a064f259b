#!/usr/bin/env bash
# The one call on a machine with an NVIDIA GPU (compute capability 9.0 or newer: the build holds sm_90
# code), in stages, correctness first, each writing its results into the output folder as soon as it is
# done (and summary.txt a line per stage), so that a call cut short still returns what it found. About
# 4 minutes on an H100; the total budget (290 s) keeps it under 5, so a second call fits a session.
#
#   stage      what                                                                  file in --out
#   build      cmake and the CUDA backend into build-gpu/ (charrnn, charrnn-cuda.so,  gpu-check.log
#              the two GPU suites; no emulated device)
#   device     nvidia-smi, then charrnn device for each benchmark model: the GPU,     device.txt
#              driver, runtime, cuBLAS, and the recurrence's plan
#   selftest   charrnn selftest (every variant against the CPU), then with --tf32     selftest.txt
#   suites     parity_gpu and cli_cuda_gpu, which must pass, not skip                suites.log
#   sanitizer  compute-sanitizer memcheck, racecheck and synccheck on selftest       sanitizer.txt
#              --quick (skipped where compute-sanitizer is absent)
#   bench      against PyTorch with cuDNN (bench/compare.py: the default recurrence,  bench.txt
#              per layer and per timestep, then --tf32) where python3 imports torch
#              with CUDA; charrnn alone (bench/speed.sh) where it does not
#   floor      bench/floor.py: the measured rates against the floor and the model     floor.txt
#
# It needs nothing outside this folder but nvcc, cmake and a C/C++ compiler (python3 with torch for
# the peer is optional). The GPU machine has no network: carry these git-ignored folders with the tree
#   .gpu-deps              Criterion for the suites: tests/pack-criterion.sh makes it (11 MB)
#   data/tinyshakespeare   the text: data/get_tinyshakespeare.sh installs it (1.1 MB)
# (the device tool: carry [".gpu-deps", "data/tinyshakespeare"], command tests/gpu-check.sh --out $OUT,
# timeout 420 s).
#
#   tests/gpu-check.sh [--out DIR] [--budget SECONDS] [--steps N] [--rounds N] [--dry-run]
#   tests/gpu-check.sh --emulated [--build DIR] [--out DIR]
#
# --out: where the output goes (build-gpu/gpu-check); --budget: the total limit in seconds; --steps,
# --rounds: timed training steps per benchmark run (20) and alternating rounds (1); --dry-run: print the
# stages and their commands, run nothing. --emulated runs the same stages on the emulated device
# (charrnn-emu, from the build in --build, default build/), the sanitizer stage through the emulator's
# race detector in reverse thread order, and a benchmark shortened to seconds: what CI runs, so that the
# script itself is tested on every run. A stage that fails or runs out of time does not stop the
# others; the summary names every failure, and the exit status is 1 if there was one.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps=20
rounds=1
out=
budget=290
dry=0
emulated=0
build=
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --emulated) emulated=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$emulated" = 1 ]; then
  build=${build:-build}
  bin=$build/charrnn-emu
  suites="parity_emu cli_cuda_emu"
else
  build=${build:-build-gpu}
  bin=$build/charrnn
  suites="parity_gpu cli_cuda_gpu"
fi
export build bin suites emulated steps rounds # for the stages' functions
out=${out:-$build/gpu-check}
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
export PYTHONUNBUFFERED=1
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
log=$out/gpu-check.log
: >"$log"
: >"$out/summary.txt"
deadline=$((SECONDS + budget))
failed=()
built=1

# stage NAME LIMIT FILE COMMAND...: runs COMMAND for at most LIMIT seconds (less if the budget has less
# left), its output into the log and, when FILE is not empty, appended to $out/FILE as it comes; one
# line in summary.txt when it ends.
stage() {
  local name=$1 limit=$2 file=$3 rc t0=$SECONDS
  shift 3
  local left=$((deadline - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  echo "== $name (limit ${limit} s): $*" | tee -a "$log"
  if [ "$dry" = 1 ]; then
    return 0
  elif [ "$limit" -lt 5 ]; then
    echo "-- $name: not run, the time budget is spent" | tee -a "$log" "$out/summary.txt"
    failed+=("$name (not run: no time left)")
    return 1
  fi
  [ -n "$file" ] && : >"$out/$file"
  if declare -F "$1" >/dev/null; then # a function of this script: run it in a bash of its own
    set -- bash -c "$(declare -f "$1"); $1"
  fi
  timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$log" ${file:+"$out/$file"}
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ]; then
    echo "-- $name: ok in $((SECONDS - t0)) s" | tee -a "$log" "$out/summary.txt"
    return 0
  fi
  local why="exit status $rc"
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && why="timed out after $limit s"
  [ "$rc" = 77 ] && why="skipped: no usable GPU"
  echo "-- $name: FAILED ($why) in $((SECONDS - t0)) s" | tee -a "$log" "$out/summary.txt"
  failed+=("$name ($why)")
  return 1
}

# needs_build NAME: false (and recorded) when the build failed, so that the stages after it are skipped.
needs_build() {
  [ "$built" = 1 ] && return 0
  echo "== $1: not run, the build failed" | tee -a "$log" "$out/summary.txt"
  failed+=("$1 (not run: the build failed)")
  return 1
}

echo "gpu-check$([ "$emulated" = 1 ] && echo ' --emulated'): $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)'), $(nproc) cores, budget $budget s, steps $steps, rounds $rounds" | tee -a "$log" "$out/summary.txt"

# Without persistence mode the driver tears the GPU's state down whenever its last client exits and sets
# it up again (1 to 3 s: NVIDIA's "Driver Persistence" notes) for the next; the benchmarks start some
# 40 short processes. nvidia-smi polling in the background is a client that keeps the state up
# meanwhile, and changes no setting.
if [ "$dry" = 0 ] && [ "$emulated" = 0 ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp --format=csv,noheader -lms 1000 >/dev/null 2>&1 &
  keeper=$!
  trap 'kill "$keeper" 2>/dev/null' EXIT
fi

if [ "$emulated" = 1 ]; then
  stage build 600 "" bash -c "cmake -S . -B '$build' >/dev/null && cmake --build '$build' -j 2 >/dev/null && [ -x '$bin' ]" ||
    built=0
else
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  stage build 150 "" bash -c "
    cmake -S . -B '$build' ${generator[*]} -DCMAKE_BUILD_TYPE=Release -DCHARRNN_CUDA=ON -DCHARRNN_CUDA_EMU=OFF &&
      cmake --build '$build' -j \"\$(nproc)\" || exit 1
    [ -f '$build/charrnn-cuda.so' ] || { echo 'gpu-check: the CUDA backend was not built (is nvcc on the PATH?)'; exit 1; }
    [ -x '$build/test_parity_gpu' ] && [ -x '$build/test_cli_cuda_gpu' ] ||
      echo 'gpu-check: the GPU suites were not built (Criterion missing: carry .gpu-deps, made by tests/pack-criterion.sh)'" ||
    built=0
fi

device_info() {
  [ "$emulated" = 0 ] && { nvidia-smi; nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv; }
  for model in "--embed 128 --hidden 128 --layers 1 --seq-len 64 --batch 32" "--embed 512 --hidden 512 --layers 1 --seq-len 128 --batch 64" \
               "--embed 256 --hidden 256 --layers 2 --seq-len 128 --batch 64"; do
    # shellcheck disable=SC2086
    "$bin" --device cuda device $model || return 1
  done
}
needs_build device && stage device 40 device.txt device_info

needs_build selftest && stage selftest 60 selftest.txt bash -c "'$bin' --device cuda selftest && '$bin' --device cuda selftest --tf32"

run_suites() {
  local s rc=0
  for s in $suites; do
    if [ ! -x "$build/test_$s" ]; then
      echo "gpu-check: $build/test_$s was not built"
      rc=1
      continue
    fi
    (cd "$build" && ./test_"$s" --jobs 2) || rc=$?
  done
  return "$rc"
}
needs_build suites && stage suites 120 suites.log run_suites

sanitize() {
  if [ "$emulated" = 1 ]; then
    echo "the emulator's race detector, threads in reverse order, on selftest --quick"
    CHARRNN_EMU_RACECHECK=1 CHARRNN_EMU_ORDER=reverse "$bin" --device cuda selftest --quick
    return
  fi
  if ! command -v compute-sanitizer >/dev/null; then
    echo "compute-sanitizer is not installed here; skipped"
    return 0
  fi
  local tool rc=0
  for tool in memcheck racecheck synccheck; do
    echo "-- compute-sanitizer --tool $tool"
    compute-sanitizer --tool "$tool" --error-exitcode 3 "$bin" --device cuda selftest --quick || rc=1
  done
  return "$rc"
}
needs_build sanitizer && stage sanitizer 90 sanitizer.txt sanitize

bench() {
  if [ "$emulated" = 1 ]; then
    # What it checks is the stage itself, not a figure: any text will do where tiny shakespeare is not
    # installed, and the project's own README always is.
    local text=data/tinyshakespeare/input.txt
    [ -f "$text" ] || text=README.md
    echo "# the emulated device: charrnn alone on a tiny model, shortened, on $text (its times are the CPU's, not a GPU's)"
    bench/speed.sh --bin "$bin" --steps 2 --configs tiny --sample-lengths 300,100 --data "$text" cuda
    return
  fi
  if [ ! -f data/tinyshakespeare/input.txt ]; then
    echo "gpu-check: data/tinyshakespeare/input.txt is missing: carry data/tinyshakespeare (data/get_tinyshakespeare.sh)"
    return 1
  fi
  if python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    local compare=(python3 bench/compare.py --device cuda --bin "$bin" --steps "$steps" --rounds "$rounds")
    "${compare[@]}" --variants default,graphs-persistent,graphs-step && "${compare[@]}" --tf32
    return
  fi
  echo "# no python3 with torch and CUDA here: charrnn alone, no peer"
  bench/speed.sh --bin "$bin" --steps "$steps" cuda
}
needs_build bench && stage bench 150 bench.txt bench

stage floor 20 floor.txt bash -c "if [ -s '$out/bench.txt' ]; then python3 bench/floor.py --fold --measured '$out/bench.txt'; else python3 bench/floor.py --fold; fi"

echo "== summary ($SECONDS s in all; output in $out)" | tee -a "$log"
[ "$dry" = 1 ] && { echo "gpu-check: dry run, nothing was run" | tee -a "$log"; exit 0; }
if [ "${#failed[@]}" -eq 0 ]; then
  echo "gpu-check: every stage passed in $SECONDS s" | tee -a "$log" "$out/summary.txt"
  exit 0
fi
echo "gpu-check: ${#failed[@]} stage(s) failed:" | tee -a "$log" "$out/summary.txt"
printf '  %s\n' "${failed[@]}" | tee -a "$log" "$out/summary.txt"
exit 1
