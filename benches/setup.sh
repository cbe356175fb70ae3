#!/usr/bin/env bash
# Installs the benchmark peers (Python deltalake + pyarrow, polars) into a virtualenv outside
# the clone (default ~/.cache/inlet/bench-venv), idempotently. Prints the venv path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
venv="${INLET_BENCH_VENV:-$HOME/.cache/inlet/bench-venv}"
stamp="$venv/.inlet-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv"
  exit 0
fi
echo "setting up benchmark virtualenv at $venv" >&2
mkdir -p "$(dirname "$venv")"
"${PYTHON:-python3}" -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
echo "$want" > "$stamp"
echo "$venv"
