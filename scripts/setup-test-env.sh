#!/usr/bin/env bash
# Installs what the tests need besides Rust, idempotently: a Python virtualenv with moto's
# server (S3 + SQS on loopback) and independent Delta readers (deltalake, polars).
# The venv lives outside the clone (default ~/.cache/inlet/venv) so fresh clones reuse it;
# it is rebuilt only when scripts/test-requirements.txt changes. Prints the venv path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/ensure-venv.sh" "$here/test-requirements.txt" "${INLET_VENV:-$HOME/.cache/inlet/venv}"
