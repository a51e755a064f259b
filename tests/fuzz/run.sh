#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz/ (clang, AddressSanitizer, UBSan) and runs each for its
# share of SECONDS_TOTAL (default 60), starting from the committed seeds (tests/fuzz/corpus/NAME/,
# copied to a scratch directory so they are never modified) and the regression inputs
# (tests/fuzz/crashes/NAME/). Fails if any fuzzer finds a crash, a leak, a sanitizer report, a timeout
# or runs out of memory, and prints the path of the input that did it.
#
#   tests/fuzz/run.sh [SECONDS_TOTAL]
#
# Environment: CHARRNN_FUZZ_BUILD (build directory, default build-fuzz at the repository root),
# CHARRNN_FUZZ_TARGETS (which fuzzers, default "checkpoint utf8 dataset options"), CC (default clang).
set -euo pipefail

total=${1:-60}
if ! [[ $total =~ ^[0-9]+$ ]] || ((total < 1)); then
  echo "usage: $0 [SECONDS_TOTAL]   (a whole number of seconds, default 60)" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${CHARRNN_FUZZ_BUILD:-$root/build-fuzz}
read -r -a targets <<<"${CHARRNN_FUZZ_TARGETS:-checkpoint utf8 dataset options}"
export CC=${CC:-clang}

if ! command -v "$CC" >/dev/null; then
  echo "run.sh: $CC not found; libFuzzer needs clang (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi

echo "== configuring and building the fuzzers in $build"
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCHARRNN_FUZZ=ON -DCHARRNN_TESTS=OFF -DCHARRNN_CUDA=OFF -DCHARRNN_CUDA_EMU=OFF \
  >"$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; exit 2; }
cmake --build "$build" --target "${targets[@]/#/fuzz_}" -j 2 >"$build/build.log" 2>&1 ||
  { tail -n 50 "$build/build.log" >&2; exit 2; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/charrnn-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
share=$((total / ${#targets[@]}))
((share >= 1)) || share=1

failed=0
for name in "${targets[@]}"; do
  artifacts=$build/artifacts/$name
  mkdir -p "$artifacts" "$scratch/$name"
  cp -R "$here/corpus/$name/." "$scratch/$name/"
  dirs=("$scratch/$name")
  [[ -d $here/crashes/$name ]] && dirs+=("$here/crashes/$name")
  dict=()
  [[ -f $here/$name.dict ]] && dict=("-dict=$here/$name.dict")
  log=$build/fuzz_$name.log
  echo "== fuzz_$name for ${share}s (log: $log)"
  before=$(ls "$artifacts")
  set +e
  "$build/fuzz_$name" -max_total_time="$share" -detect_leaks=1 -print_final_stats=0 -timeout=30 \
    -artifact_prefix="$artifacts/" "${dict[@]}" "${dirs[@]}" >"$log" 2>&1
  status=$?
  set -e
  # The last status line: runs, coverage, corpus.
  grep -E '^#[0-9]+' "$log" | tail -n 1 || true
  if ((status != 0)); then
    failed=1
    echo "!! fuzz_$name failed (exit $status):" >&2
    grep -E 'ERROR: |runtime error: |invariant violated|SUMMARY: ' "$log" | head -n 5 >&2 || true
    new=$(comm -13 <(echo "$before") <(ls "$artifacts") | sed "s|^|$artifacts/|")
    if [[ -n $new ]]; then
      echo "   crashing input: $new" >&2
      echo "   reproduce with: $build/fuzz_$name $new" >&2
    else
      echo "   no input was saved; see $log" >&2
    fi
  fi
done

if ((failed)); then
  echo "run.sh: FAILED (fuzzer logs in $build)" >&2
  exit 1
fi
echo "run.sh: all fuzzers ran ${share}s each without a finding"
