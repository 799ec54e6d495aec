#!/usr/bin/env bash
# The clock check: runs the whole test suite at other "today"s, to prove that
# no test depends on the day it runs (docs/testing.md, "Time").
#
#   scripts/clock-check.sh                 # one year and five years ahead
#   scripts/clock-check.sh +30d -365d      # any offsets libfaketime takes
#
# Each run starts every test executable of `cargo test --workspace` under
# libfaketime (Debian's `faketime` package, installed when missing), with the wall
# clock moved by the offset; the processes the tests start (the `swarm`
# binary, workers) inherit it. The monotonic clock stays real (timeouts and
# tokio timers behave), and the test harness starts redis-server and
# redis-cli without the preload (swarmbus_redis::testing::redis_command),
# since Redis hangs on a faked clock. Tests that decide by date set the injected clock themselves; this
# check catches the ones that forgot, and any date in the data or a fixture
# that is about to pass.
set -euo pipefail
cd "$(dirname "$0")/.."

offsets=("$@")
[ ${#offsets[@]} -gt 0 ] || offsets=("+365d" "+1826d")

lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
if [ ! -e "$lib" ]; then
  echo "installing faketime"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq faketime >/dev/null
fi
lib=$(dpkg -L libfaketime | grep 'libfaketimeMT.so.1$' | head -n 1)

# Build once on the real clock, and list every test executable with the
# folder cargo runs it in (its package's).
list=$(mktemp -t clock-check-list.XXXXXX)
cargo test --workspace --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m.get("profile", {}).get("test"):
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
' >"$list"
echo "$(wc -l <"$list") test executables"

# Only the test executables run under the preload (the library itself, not
# the `faketime` wrapper, whose semaphores collide between quick runs):
# cargo, rustc and rustdoc are never faked (rustdoc hangs on a faked clock),
# so doc-tests run in the ordinary suite only; they take their dates as
# arguments.
export FAKETIME_DONT_FAKE_MONOTONIC=1
failed=0
for off in "${offsets[@]}"; do
  echo "== the suite with the clock at $off: $(LD_PRELOAD=$lib FAKETIME=$off date -u +%Y-%m-%dT%H:%MZ)"
  passed=0
  while IFS=$'\t' read -r dir exe; do
    log=$(mktemp -t clock-check.XXXXXX)
    if (cd "$dir" && LD_PRELOAD=$lib FAKETIME=$off "$exe" >"$log" 2>&1); then
      passed=$((passed + $(grep -E '^test result' "$log" | awk '{p+=$4} END {print p+0}')))
      rm -f "$log"
    else
      failed=1
      echo "   FAILED at $off: $(basename "$exe")"
      grep -E '^test .* FAILED$|panicked at' "$log" | sed 's/^/     /' || true
      echo "     (whole log: $log)"
    fi
  done <"$list"
  echo "   $passed tests passed at $off"
done
rm -f "$list"
exit "$failed"
