#!/usr/bin/env bash
# Runs every fuzz target of the caddymodule package, one after another,
# for FUZZTIME each (default 20s). A crasher fails the script; go test
# writes it to caddymodule/testdata/fuzz/<target>/, where it stays as a
# regression seed once committed.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-20s}"
# minimizing a new input can take go test's default of 60s, which would
# use up a short run; bound it so the time goes to fuzzing
minimizetime="${FUZZMINIMIZETIME:-5s}"
pkg=./caddymodule/

# the targets, as go test lists them, so a new one is fuzzed too; a
# build failure stops the script here
listing=$(go test -list '^Fuzz' "$pkg")
mapfile -t targets < <(grep '^Fuzz' <<<"$listing" || true)
if [ "${#targets[@]}" -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets found in $pkg" >&2
  exit 1
fi

# fuzz_once runs one target and keeps its output in $log.
fuzz_once() {
  go test -run '^$' -fuzz "^${1}\$" -fuzztime "$fuzztime" \
    -fuzzminimizetime "$minimizetime" "$pkg" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
  echo "== fuzzing $target for $fuzztime"
  if fuzz_once "$target"; then
    continue
  fi
  # Go 1.26's fuzz coordinator can report "context deadline exceeded"
  # when -fuzztime runs out while a worker is mid-call (golang/go#75804,
  # fixed in Go 1.27). That failure writes no input; a real one always
  # does. Only that case is run again, once.
  if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
    echo "== $target stopped on the fuzz coordinator's deadline race; running it again"
    fuzz_once "$target"
  else
    exit 1
  fi
done
