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

for target in "${targets[@]}"; do
  echo "== fuzzing $target for $fuzztime"
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" \
    -fuzzminimizetime "$minimizetime" "$pkg"
done
