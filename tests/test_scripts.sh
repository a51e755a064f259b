#!/usr/bin/env bash
# What a new user meets first, and the test machinery itself:
#   - scripts/deps.sh waits, and says so, while another package manager holds the lock, then installs;
#   - the quick start's build (scripts/build.sh --no-tests) says nothing about test dependencies it does
#     not use, even where they are missing;
#   - a suite in which a test skipped exits with 77 (CTest: Skipped) and names the test and the reason;
#   - the files the README's own commands write are ignored by git.
#   tests/test_scripts.sh SKIP_PROBE      (SKIP_PROBE: the test_skip_probe binary)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
probe=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "test_scripts: $*" >&2
  exit 1
}

echo "-- deps.sh waits for the package manager's lock"
mkdir "$work/bin"
printf '#!/bin/sh\nexit 1\n' >"$work/bin/dpkg-query" # nothing is installed
printf '#!/bin/sh\necho 0\n' >"$work/bin/id"          # as root
# apt-get that finds the lock held its first $LOCKED calls, as while unattended upgrades run
cat >"$work/bin/apt-get" <<EOS
#!/bin/sh
calls=\$(cat "$work/calls" 2>/dev/null || echo 0)
echo \$((calls + 1)) >"$work/calls"
if [ "\$calls" -lt "\$LOCKED" ]; then
  echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)" >&2
  exit 100
fi
echo "\$*" >>"$work/apt.log"
EOS
chmod +x "$work"/bin/*
out=$(PATH="$work/bin:$PATH" LOCKED=3 CHARRNN_DEPS_LOCK_POLL=0 "$root/scripts/deps.sh" 2>&1) ||
  fail "deps.sh failed instead of waiting for the lock: $out"
grep -q "waiting for it to finish" <<<"$out" || fail "deps.sh did not say that it waits: $out"
grep -q "^update" "$work/apt.log" && grep -q "^install -y -qq gcc" "$work/apt.log" ||
  fail "deps.sh did not update and install once the lock was free: $(cat "$work/apt.log")"
rm -f "$work/calls" "$work/apt.log"
status=0
out=$(PATH="$work/bin:$PATH" LOCKED=1000 CHARRNN_DEPS_LOCK_POLL=1 CHARRNN_DEPS_LOCK_WAIT=2 \
  "$root/scripts/deps.sh" 2>&1) || status=$?
[ $status -ne 0 ] && grep -q "still busy after 2s" <<<"$out" || fail "a lock never let go: status $status, $out"

echo "-- the quick start's build says nothing about test dependencies"
# Criterion hidden (as on a fresh machine): no pkg-config, nothing under /usr found. Without the CUDA
# toolkit's detection, which costs seconds and only ever reports its result as a status line.
out=$(CHARRNN_BUILD_DIR="$work/build" "$root/scripts/build.sh" --no-tests --configure-only --no-warn-unused-cli \
  -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON -DCMAKE_IGNORE_PREFIX_PATH=/usr -DCHARRNN_CUDA=OFF 2>&1) ||
  fail "configure failed: $out"
if grep -qi "warning" <<<"$out"; then
  fail "the quick start's configure step printed a warning: $out"
fi

echo "-- a skipped test is reported, with its reason"
status=0
"$probe" >"$work/probe.out" 2>&1 || status=$?
[ $status -eq 77 ] || fail "a suite with a skipped test exited with $status, not 77: $(cat "$work/probe.out")"
grep -q "^SKIPPED skip_probe/skips_with_a_reason: the probe's reason$" "$work/probe.out" ||
  fail "the skip is not named with its reason: $(cat "$work/probe.out")"

echo "-- git ignores what the README's commands write"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  for f in run.csv run.svg checkpoints/charrnn.ckpt m.ckpt.lock m.ckpt.tmp; do
    git -C "$root" check-ignore -q "$f" || fail "git does not ignore $f"
  done
else
  echo "(not a git work tree: nothing to check)"
fi
echo "test_scripts: all passed"
