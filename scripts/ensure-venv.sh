#!/usr/bin/env bash
# Makes (or reuses) a Python virtualenv with a requirements file installed, idempotently:
# rebuilt only when the file changes. Prints the venv path.
# usage: scripts/ensure-venv.sh REQUIREMENTS VENV_DIR
set -euo pipefail
req="$1"
venv="$2"
stamp="$venv/.inlet-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv"
  exit 0
fi
echo "setting up virtualenv $venv from $req" >&2
mkdir -p "$(dirname "$venv")"
"${PYTHON:-python3}" -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
echo "$want" > "$stamp"
echo "$venv"
