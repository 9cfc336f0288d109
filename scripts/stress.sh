#!/usr/bin/env bash
# The suite under added CPU load: one busy-looping process per core beside ./dev.sh test, stopped afterwards
# (issue 19: the suite must pass on a machine three times slower and under load).
#   scripts/stress.sh [RUNS] [pytest args...]   RUNS defaults to 1; prints each run's result and time
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
shift || true
hogs=()
stop_hogs() { [ ${#hogs[@]} -eq 0 ] || kill "${hogs[@]}" 2>/dev/null; wait "${hogs[@]}" 2>/dev/null; hogs=(); }
trap stop_hogs EXIT
failed=0
for run in $(seq 1 "$runs"); do
  for _ in $(seq 1 "$(nproc)"); do
    (while :; do :; done) &
    hogs+=($!)
  done
  started=$(date +%s)
  log=$(mktemp)
  ./dev.sh test "$@" >"$log" 2>&1
  rc=$?
  stop_hogs
  tail -n 1 "$log" | sed "s/^/stress run $run: rc=$rc $(( $(date +%s) - started )) s: /"
  if [ "$rc" -ne 0 ]; then
    failed=$((failed + 1))
    grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/  /'
  fi
  rm -f "$log"
done
echo "stress: $failed of $runs runs failed"
[ "$failed" -eq 0 ]
