#!/usr/bin/env bash
# Replication on/off, side by side in one run: the same release binary twice through
# benches/ab.sh, side B replicating to a local S3 endpoint (moto_server from the conformance
# venv) every INTERVAL (default 10s). Prints the medians and B/A ratios of bulk ingest (Pangea,
# H2O), single-event ingest, searches and peak RSS, plus B's largest replication lag.
#
#   bash benches/replication_ab.sh [ab.sh options: --prefill N --runs R --run-events M --conns C]
#
# The issue's targets: bulk ingest with replication >= 0.90x without it, lag <= interval + 10 s,
# RSS +<= 30 MB. Run it on a quiet machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TRAILKEEP_BIN:-$ROOT/target/release/trailkeep}
INTERVAL=${INTERVAL:-10s}
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --bin trailkeep 2>&1 | tail -1)
. "$ROOT/benches/lib.sh"
start_moto "$ROOT" bench
trap 'kill $MOTO 2>/dev/null; wait $MOTO 2>/dev/null; rm -f "$MOTO_LOG"' EXIT
B_ARGS="--replicate-to s3://bench/trail --replication-interval $INTERVAL" bash "$ROOT/benches/ab.sh" "$BIN" "$BIN" "$@"
