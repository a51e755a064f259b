#!/usr/bin/env bash
# Runs CTest in a build directory, then names the reason of every skipped entry: CTest lists a skipped
# entry without its output, and each suite prints "SKIPPED suite/test: reason" (tests/skip_main.c).
#   scripts/ctest.sh BUILD_DIR [CTEST_ARGS...]
set -euo pipefail
build=$1
shift
status=0
(cd "$build" && ctest --output-on-failure --no-tests=error "$@") || status=$?
log=$build/Testing/Temporary/LastTest.log
if [ -f "$log" ]; then
  awk '/^[0-9]+\/[0-9]+ Testing: / { entry = $3 }
       /^SKIPPED / { sub(/^SKIPPED [^:]*: /, ""); count[entry ": " $0]++ }
       END { for (k in count) printf "skipped in %s (%d test%s)\n", k, count[k], count[k] == 1 ? "" : "s" }' \
    "$log" | sort
fi
exit $status
