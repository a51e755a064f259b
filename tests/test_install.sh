#!/usr/bin/env bash
# `cmake --install` puts charrnn in PREFIX/bin and the CUDA module where the installed program finds it;
# a message that suggests a command names the program as it was typed: its path until it is on the PATH.
#   tests/test_install.sh BUILD_DIR
set -euo pipefail
build=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "test_install: $*" >&2
  exit 1
}
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null || fail "cmake --install failed"
[ -x "$prefix/bin/charrnn" ] || fail "no $prefix/bin/charrnn"
"$prefix/bin/charrnn" --version | grep -q "^charrnn " || fail "the installed charrnn does not run"

if [ -e "$build/charrnn-cuda.so" ]; then
  echo "-- the installed program finds the CUDA module"
  [ -n "$(find "$prefix" -name charrnn-cuda.so)" ] || fail "the CUDA module was not installed"
  status=0
  err=$("$prefix/bin/charrnn" --device cuda eval --checkpoint "$work/missing.ckpt" 2>&1) || status=$?
  grep -q "could not be loaded" <<<"$err" && fail "the installed charrnn did not find its CUDA module: $err"
  grep -qE "no CUDA device|no usable CUDA device|missing.ckpt: cannot open" <<<"$err" || fail "unexpected: $err"
fi

echo "-- suggested commands name the program as typed"
mkdir "$work/run"
cd "$work/run"
err=$("$prefix/bin/charrnn" --device cpu sample 2>&1) && fail "sample without a checkpoint succeeded"
grep -qF "train a model first with \`$prefix/bin/charrnn train\`" <<<"$err" ||
  fail "invoked by its path, the hint should name that path: $err"
err=$(PATH="$prefix/bin:$PATH" charrnn --device cpu sample 2>&1) && fail "sample without a checkpoint succeeded"
grep -qF 'train a model first with `charrnn train`' <<<"$err" || fail "found on the PATH, the hint should say charrnn: $err"
echo "test_install: all passed"
