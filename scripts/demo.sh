#!/usr/bin/env bash
# The demo: build inlet and ingest the shipped landing zone (demo/landing, 12 files of JSON
# lines, some gzipped) into a local Delta table at demo/out/telemetry. No cloud account.
# Run it twice: the second run finds nothing new. Remove demo/out to start over.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# A cold build compiles DataFusion and delta-rs: it takes long (README), so show it.
cargo build --locked --bin inlet
bin="${CARGO_TARGET_DIR:-target}/debug/inlet"
"$bin" validate --config config/local-demo.toml
"$bin" run --config config/local-demo.toml --available-now
echo
"$bin" files --config config/local-demo.toml | head -5
echo "..."
echo
echo "The table is at demo/out/telemetry. Read it with, for example:"
echo "  python3 -c 'import polars as pl; print(pl.read_delta(\"demo/out/telemetry\"))'"
