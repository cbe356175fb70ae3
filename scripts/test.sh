#!/usr/bin/env bash
# The test command (README, .ci/run): set up the test virtualenv, then run every Rust test,
# unit and end-to-end (local files, S3 and SQS through moto_server on loopback).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="$(scripts/setup-test-env.sh)"
export INLET_TEST_PYTHON="$venv/bin/python"
export INLET_TEST_MOTO="$venv/bin/moto_server"
exec cargo test --workspace --locked "$@"
