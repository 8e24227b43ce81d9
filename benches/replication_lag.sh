#!/usr/bin/env bash
# Replication lag under sustained ingest (issue 19): a release server replicating to a local S3
# endpoint (moto_server) every INTERVAL while `loadgen soak` paces RATE bulk events/s (half Pangea
# `v2/log`, half H2O `batchCreate`, batches of 500) for SECONDS. Samples
# trailkeep_replication_lag_seconds / _events from /metrics every second and prints the largest
# lag during the load, the events stored, and the seconds from the end of the load until the lag
# is 0 (every event in the bucket). Target: lag <= interval + 10 s at 30,000 events/s.
#
#   bash benches/replication_lag.sh                       # 30,000 events/s for 180 s, interval 10s
#   RATE=20000 SECONDS_=300 INTERVAL=30s bash benches/replication_lag.sh
#
# Writes target/bench/<UTC time>-replication-lag/{samples.csv,loadgen.txt,server.log}.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RATE=${RATE:-30000}
DURATION=${SECONDS_:-180}
INTERVAL=${INTERVAL:-10s}
cargo build --release --locked --bin trailkeep --example loadgen 2>&1 | tail -1
BIN=${TRAILKEEP_BIN:-$ROOT/target/release/trailkeep}
LG=$ROOT/target/release/examples/loadgen
OUT=$ROOT/target/bench/$(date -u +%Y%m%dT%H%M%SZ)-replication-lag
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/trailkeep-replag.XXXXXX)
. "$ROOT/benches/lib.sh"
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  [ -n "${MOTO:-}" ] && kill "$MOTO" 2>/dev/null && wait "$MOTO" 2>/dev/null
  rm -rf "$WORK" "${MOTO_LOG:-}"
}
trap cleanup EXIT
start_moto "$ROOT" bench

"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --replicate-to s3://bench/trail \
  --replication-interval "$INTERVAL" > "$WORK/server.out" 2> "$OUT/server.log" &
SERVER=$!
for _ in $(seq 1 300); do grep -q '^listening on ' "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$WORK/server.out" | head -1)
KEY=$(sed -n 's/^admin key: //p' "$WORK/server.out" | head -1)
[ -n "$URL" ] && [ -n "$KEY" ] || { echo "server did not start" >&2; cat "$OUT/server.log" >&2; exit 1; }

sample() {  # prints "lag_seconds lag_events events_ingested"
  curl -s -H "Authorization: Bearer $KEY" "$URL/metrics" | awk '
    /^trailkeep_replication_lag_seconds /{s=$2} /^trailkeep_replication_lag_events /{e=$2}
    /^trailkeep_events_ingested_total /{t=$2} END{printf "%s %s %s\n", s+0, e+0, t+0}'
}

echo "t_s,phase,lag_seconds,lag_events,events_ingested" > "$OUT/samples.csv"
echo "load: $RATE bulk events/s for $DURATION s, replication every $INTERVAL to moto_server" | tee "$OUT/summary.txt"
TRAILKEEP_BENCH_KEY=$KEY "$LG" soak --url "$URL" --pid "$SERVER" --seconds "$DURATION" --window "$DURATION" \
  --bulk-rate "$RATE" --single-rate 0 --search-rate 0 --label replag > "$OUT/loadgen.txt" 2>&1 &
LOAD=$!
T0=$(date +%s.%N)
MAX=0
while kill -0 "$LOAD" 2>/dev/null; do
  read -r s e t < <(sample)
  echo "$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $T0}"),load,$s,$e,$t" >> "$OUT/samples.csv"
  MAX=$(awk "BEGIN{print ($s > $MAX) ? $s : $MAX}")
  sleep 1
done
wait "$LOAD" || { echo "loadgen failed:" >&2; tail -5 "$OUT/loadgen.txt" >&2; exit 1; }
T1=$(date +%s.%N)
CAUGHT=
for _ in $(seq 1 600); do
  read -r s e t < <(sample)
  echo "$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $T0}"),drain,$s,$e,$t" >> "$OUT/samples.csv"
  MAX=$(awk "BEGIN{print ($s > $MAX) ? $s : $MAX}")
  if [ "$e" = 0 ]; then CAUGHT=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $T1}"); break; fi
  sleep 1
done
read -r _ _ STORED < <(sample)
RATE_DONE=$(awk "BEGIN{printf \"%d\", $STORED / ($T1 - $T0)}")
{
  echo "events stored: $STORED (about $RATE_DONE events/s over the load)"
  echo "largest replication lag: $MAX s (target: interval + 10 s)"
  echo "caught up ${CAUGHT:-NOT within 600} s after the load ended"
} | tee -a "$OUT/summary.txt"
echo "results in $OUT"
