#!/usr/bin/env bash
# The retention purge, side by side in one run: two server binaries purge copies of one data
# directory. The directory is pre-filled with PREFILL events (Pangea and H2O batches of 1,000 over
# loadgen's 500 workspaces), then ROUNDS rounds alternate the sides. Each round copies the
# directory, starts the side's server with `[retention] default = "1s"` (every pre-filled event is
# due; the scheduled run starts at once) and, with CLIENTS > 0, H2O single-event ingest from CLIENTS
# clients for SECONDS s beside it. It prints one line per round: the purge's seconds, events
# purged per second, purge events logged, the database's size after it (MB), and the single-event
# p50 / p99 / longest and events/s; then the medians per side.
#
#   bash benches/purge_ab.sh A_BIN B_BIN [--prefill N (1000000)] [--rounds R (2)]
#        [--clients C (32)] [--seconds S (60)] [--keep]
#
# Run it on a quiet machine; the copies are in the page cache as after the pre-fill.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
declare -A SBIN=([A]=$1 [B]=$2)
shift 2
PREFILL=1000000 ROUNDS=2 CLIENTS=32 SECS=60 KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --prefill) PREFILL=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --clients) CLIENTS=$2; shift ;;
    --seconds) SECS=$2; shift ;;
    --keep) KEEP=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
for side in A B; do [ -x "${SBIN[$side]}" ] || { echo "side $side: ${SBIN[$side]} is not executable" >&2; exit 2; }; done
LG=${LOADGEN:-$ROOT/target/release/examples/loadgen}
(cd "$ROOT" && cargo build --release --example loadgen 2>&1 | tail -1)
. "$ROOT/benches/lib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trailkeep-purge-ab.XXXXXX")
OUT=$ROOT/target/bench/purge-ab-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
SERVER=
stop_server() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  SERVER=
}
cleanup() {
  stop_server || true
  if [ "$KEEP" = 1 ]; then echo "data kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# The pre-fill, by side A's binary without retention.
"${SBIN[A]}" serve --listen 127.0.0.1:0 --data-dir "$WORK/seed" > "$OUT/seed.out" 2>> "$OUT/server.log" &
SERVER=$!
URL=$(wait_listening "$SERVER" "$OUT/seed.out" "$OUT/server.log")
KEY=$(sed -n 's/^admin key: //p' "$OUT/seed.out" | head -1)
echo "A: ${SBIN[A]}, B: ${SBIN[B]}; pre-fill: $PREFILL events, $CLIENTS clients beside the purge ($OUT)"
TRAILKEEP_BENCH_KEY=$KEY "$LG" bulk --url "$URL" --pid "$SERVER" --dialect mixed --start 0 --events "$PREFILL" \
  --conns 4 --label prefill --progress 1000000 > "$OUT/prefill.txt"
grep '^RESULT' "$OUT/prefill.txt" | tail -1
stop_server
sleep 2
printf '[retention]\ndefault = "1s"\ninterval = "24h"\n' > "$WORK/retention.toml"

START=$((PREFILL * 10))
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    label=$side-$r
    rm -rf "$WORK/data"
    cp -a "$WORK/seed" "$WORK/data"
    cat "$WORK"/data/trailkeep.db* > /dev/null
    : > "$OUT/run-$label.out"
    "${SBIN[$side]}" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --config "$WORK/retention.toml" \
      > "$OUT/run-$label.out" 2>> "$OUT/server.log" &
    SERVER=$!
    URL=$(wait_listening "$SERVER" "$OUT/run-$label.out" "$OUT/server.log")
    t0=$(date +%s.%N)
    LGP=
    if [ "$CLIENTS" -gt 0 ]; then
      TRAILKEEP_BENCH_KEY=$KEY "$LG" single --url "$URL" --pid "$SERVER" --seed 2 --dialect h2o --clients "$CLIENTS" \
        --seconds "$SECS" --start "$START" --events 100000000 --label "$label" > "$OUT/single-$label.txt" &
      LGP=$!
      START=$((START + 10000000))
    fi
    # The scheduled run started with the server: wait for its outcome.
    while :; do
      curl -s -H "Authorization: Bearer $KEY" "$URL/api/v1/retention" > "$OUT/retention-$label.json"
      python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("last_run") else 1)' \
        "$OUT/retention-$label.json" && break
      sleep 0.2
    done
    t1=$(date +%s.%N)
    [ -n "$LGP" ] && wait "$LGP"
    stop_server
    size=$(cat "$WORK"/data/trailkeep.db* | wc -c)
    python3 - "$OUT/retention-$label.json" "$OUT/single-$label.txt" "$label" "$(awk "BEGIN{print $t1 - $t0}")" "$size" \
      >> "$OUT/rounds.txt" <<'PY'
import json, os, sys
ret, single, label, secs, size = sys.argv[1:]
last = json.load(open(ret))["last_run"]
rep = last.get("report") or {}
row = {"label": label, "ok": last["ok"], "purge_s": round(float(secs), 1), "purged": rep.get("purged", 0),
       "purged_per_s": round(rep.get("purged", 0) / float(secs)), "purge_events": rep.get("purge_events", 0),
       "db_mb": round(int(size) / 1e6)}
if os.path.exists(single):
    r = [json.loads(l[7:]) for l in open(single) if l.startswith("RESULT ")][-1]
    lat = r["latency"]
    row.update(p50_ms=lat["p50_ms"], p99_ms=lat["p99_ms"], max_ms=lat["max_ms"], events_per_s=r["events_per_s"])
print(json.dumps(row))
PY
    tail -1 "$OUT/rounds.txt"
  done
done
python3 - "$OUT/rounds.txt" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ["purge_s", "purged_per_s", "purge_events", "db_mb", "p50_ms", "p99_ms", "max_ms", "events_per_s"]
print("\nside  " + "  ".join(f"{k:>12}" for k in keys))
for side in "AB":
    rs = [r for r in rows if r["label"].startswith(side)]
    med = lambda k: statistics.median(r[k] for r in rs) if all(k in r for r in rs) else float("nan")
    print(f"{side:<5} " + "  ".join(f"{med(k):>12.1f}" for k in keys))
PY
