#!/usr/bin/env bash
# The CPU backend's elementwise loops and micro-kernel really run on vector registers of each kernel
# set's width: the disassembly of the library (argument: libcharrnn_cpu.a) has, in each function, the
# packed instruction that does its work (a compiler that fell back to scalar code would leave divss
# where divps should be), and softmax calls no libm exp. Exits 77 (skipped) without objdump, on
# processors other than x86-64, and for a build type without optimisation (second argument: Debug or
# none; the sanitizer build), where the compiler vectorises nothing.
set -euo pipefail
lib=$1
case "${2:-}" in
  Release|RelWithDebInfo|MinSizeRel) ;;
  *) echo "vectorised: build type '${2:-}' is not optimised; skipped"; exit 77 ;;
esac
command -v objdump >/dev/null || { echo "vectorised: objdump not found (binutils); skipped"; exit 77; }
[ "$(uname -m)" = x86_64 ] || { echo "vectorised: not x86-64; skipped"; exit 77; }
dis=$(mktemp)
trap 'rm -f "$dis"' EXIT
objdump -dr --no-show-raw-insn "$lib" >"$dis" # -r: calls name what they call

# The body of one function of the disassembly.
body() {
  awk -v f="<$1>:" '$2 == f {on = 1; next} on && /^[0-9a-f]+ </ {exit} on' "$dis"
}

failures=0
# expect FUNCTION PATTERN WHAT: the function's code matches the extended regular expression.
expect() {
  if ! body "$1" | grep -E "$2" >/dev/null; then
    echo "vectorised: $1 has no $3 (/$2/)"
    failures=$((failures + 1))
  fi
}

for set in baseline:xmm avx2:ymm avx512:zmm; do
  name=${set%%:*} reg=${set##*:}
  expect "tile_rows_$name" "vfmadd[0-9]+ps.*%$reg|mulps.*%$reg" "packed multiply-adds on $reg"
  expect "tile_rows_$name" "divps.*%$reg" "packed division (the tanh of the epilogue) on $reg"
  expect "tanh_$name" "divps.*%$reg" "packed division on $reg"
  expect "softmax_xent_$name" "(vfmadd[0-9]+ps|mulps).*%$reg" "packed exp polynomial on $reg"
  expect "adam_$name" "sqrtps.*%$reg" "packed square root on $reg"
  expect "sgd_$name" "(vfmadd[0-9]+ps|mulps).*%$reg" "packed multiply-adds on $reg"
  expect "sum_squares_$name" "(cvtps2pd|vcvtps2pd).*%$reg" "packed conversion to double on $reg"
  expect "dropout_keep_$name" "pmuludq.*%$reg" "packed 32-bit products (the masks' Philox rounds) on $reg"
  for f in softmax_xent:exp tanh:tanh tile_rows:tanh; do
    if body "${f%%:*}_$name" | grep -E "R_X86_64_PLT32[[:space:]]+${f##*:}f?-" >/dev/null; then
      echo "vectorised: ${f%%:*}_$name calls libm's ${f##*:}"
      failures=$((failures + 1))
    fi
  done
done
if [ $failures -gt 0 ]; then
  exit 1
fi
echo "vectorised: every kernel set's loops use its vector registers"
