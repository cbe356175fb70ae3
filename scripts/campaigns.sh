#!/usr/bin/env bash
# The reliability campaigns at full size (docs/reliability.md): crash (SIGKILL) rounds,
# S3/SQS faults through the loopback proxy, the commit races, the bad-input corpus and the
# disk faults. Sizes can be overridden through the same variables; each campaign's figures
# are appended as one JSON line to $INLET_CAMPAIGN_REPORT and printed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export INLET_CAMPAIGN_KILLS="${INLET_CAMPAIGN_KILLS:-100}"
export INLET_CAMPAIGN_FILES="${INLET_CAMPAIGN_FILES:-200}"
export INLET_CAMPAIGN_FAULT_RATE="${INLET_CAMPAIGN_FAULT_RATE:-0.2}"
export INLET_CAMPAIGN_SEED="${INLET_CAMPAIGN_SEED:-20261126}"
export INLET_CAMPAIGN_REPORT="${INLET_CAMPAIGN_REPORT:-${TMPDIR:-/tmp}/inlet-campaigns.jsonl}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/inlet/target}"
: > "$INLET_CAMPAIGN_REPORT"
scripts/test.sh --test it -- campaign:: corpus:: disk:: --test-threads 2
echo "figures ($INLET_CAMPAIGN_REPORT):"
cat "$INLET_CAMPAIGN_REPORT"
