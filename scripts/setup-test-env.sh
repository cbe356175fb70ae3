#!/usr/bin/env bash
# Installs what the tests need besides Rust, idempotently: a Python virtualenv with moto's
# server (S3 + SQS on loopback) and independent Delta readers (deltalake, polars, DuckDB,
# chdb, daft), and Prometheus's promtool (Debian's `prometheus` package) for the alert-rule
# check. The venv lives outside the clone (default ~/.cache/inlet/venv) so fresh clones
# reuse it; it is rebuilt only when scripts/test-requirements.txt changes. Prints the venv
# path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v promtool >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing promtool (Debian package prometheus)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >&2 \
      || echo "could not install promtool: the alert-rule test will say it was skipped" >&2
  else
    echo "promtool not found (install Debian's prometheus package): the alert-rule test will say it was skipped" >&2
  fi
fi
exec "$here/ensure-venv.sh" "$here/test-requirements.txt" "${INLET_VENV:-$HOME/.cache/inlet/venv}"
