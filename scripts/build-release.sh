#!/usr/bin/env bash
# The release build: what the container image, benches and a production install use.
# Prints the path of the binary it built.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked --bin inlet >&2
echo "${CARGO_TARGET_DIR:-target}/release/inlet"
