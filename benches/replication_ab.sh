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
bash "$ROOT/tests/conformance/setup_venv.sh"
VENV=$ROOT/target/conformance-venv
PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MOTO_LOG=$(mktemp /tmp/trailkeep-moto.XXXXXX)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" > "$MOTO_LOG" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null; wait $MOTO 2>/dev/null; rm -f "$MOTO_LOG"' EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 \
  AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ALLOW_HTTP=true
for _ in $(seq 1 100); do
  "$VENV/bin/python" - <<'PY' 2>/dev/null && break
import os, boto3
boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket="bench")
PY
  sleep 0.2
done
B_ARGS="--replicate-to s3://bench/trail --replication-interval $INTERVAL" bash "$ROOT/benches/ab.sh" "$BIN" "$BIN" "$@"
