#!/usr/bin/env bash
# A/B of inlet builds on W1 (creating the table), alternating them round by round on one
# machine, each under /usr/bin/time. Usage: benches/ab.sh BINARY_A BINARY_B [ROUNDS]
# (build each with `cargo build --release` at its commit and copy target/release/inlet away).
# The input is run.py's W1 landing zone (`python benches/run.py bulk` builds it once).
set -euo pipefail
a=$1 b=$2 rounds=${3:-3}
land=${INLET_BENCH_DIR:-$HOME/.cache/inlet/bench}/bulk-48x40000/landing
[ -d "$land" ] || { echo "no W1 input at $land: run python benches/run.py bulk once" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for round in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    rm -rf "$work/run" && mkdir -p "$work/run"
    printf 'pipeline_id = "ab"\n[source]\nurl = "%s"\n[sink]\ntable = "%s/run/table"\n[checkpoint]\nlocation = "%s/run/cp"\n' \
      "$land" "$work" "$work" > "$work/run/p.toml"
    /usr/bin/time -f "$bin round $round: wall %e user %U sys %S maxrss_kb %M" \
      "$bin" run -c "$work/run/p.toml" --available-now > /dev/null 2> "$work/err"
    tail -1 "$work/err"
  done
done
