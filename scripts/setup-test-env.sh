#!/usr/bin/env bash
# Installs what the tests need besides Rust, idempotently: a Python virtualenv with moto's
# server (S3 + SQS on loopback) and independent Delta readers (deltalake, polars).
# The venv lives outside the clone (default ~/.cache/inlet/venv) so fresh clones reuse it;
# it is rebuilt only when scripts/test-requirements.txt changes. Prints the venv path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/test-requirements.txt"
venv="${INLET_VENV:-$HOME/.cache/inlet/venv}"
stamp="$venv/.inlet-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv"
  exit 0
fi
python="${PYTHON:-python3}"
echo "setting up test virtualenv at $venv" >&2
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
echo "$want" > "$stamp"
echo "$venv"
