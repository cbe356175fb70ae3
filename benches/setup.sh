#!/usr/bin/env bash
# Installs the benchmark peers (Python deltalake + pyarrow, polars) into a virtualenv outside
# the clone (default ~/.cache/inlet/bench-venv), idempotently. Prints the venv path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../scripts/ensure-venv.sh" "$here/requirements.txt" "${INLET_BENCH_VENV:-$HOME/.cache/inlet/bench-venv}"
