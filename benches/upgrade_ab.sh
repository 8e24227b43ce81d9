#!/usr/bin/env bash
# An upgrade measured on one large database: build A writes N events (Pangea and H2O batches
# alternating, the scale generator), A's server runs every search kind alone, then build B starts
# on the same files (its start applies B's new migrations: the time to "listening" is reported for
# both) and runs the same searches. Prints p50 / p99 per kind for A and B.
#
#   bash benches/upgrade_ab.sh A_BIN B_BIN [--events N] [--dir DIR] [--per-kind K]
#
# Defaults: 10,000,000 events (~13 GB, ~6 minutes of ingest), DIR a new directory under /tmp
# (removed at the end unless given), 100 searches per kind. Build the "before" binary from another
# checkout (`git worktree add ../old <commit>`, `cargo build --release --bin trailkeep` there).
# Run it on a quiet machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/benches/lib.sh"
A=$1 B=$2; shift 2
EVENTS=10000000 DIR= PER_KIND=100
LG=$ROOT/target/release/examples/loadgen
while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS=$2; shift ;;
    --dir) DIR=$2; shift ;;
    --per-kind) PER_KIND=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$LG" ] || (cd "$ROOT" && cargo build --release --example loadgen 2>&1 | tail -1)
KEEP=1
if [ -z "$DIR" ]; then DIR=$(mktemp -d /tmp/trailkeep-upgrade.XXXXXX); KEEP=0; fi
OUT=${BENCH_OUT:-$ROOT/target/bench/upgrade-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  [ "$KEEP" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT

start() { # bin side
  local t0 t1
  : > "$OUT/$2.out"
  t0=$(date +%s.%N)
  "$1" serve --listen 127.0.0.1:0 --data-dir "$DIR/tk" > "$OUT/$2.out" 2> "$OUT/$2.log" &
  PID=$!
  # An hour at most: the start applies the new build's migrations to a large database.
  URL=$(wait_listening "$PID" "$OUT/$2.out" "$OUT/$2.log" 3600)
  t1=$(date +%s.%N)
  echo "$2: start to listening $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s" | tee -a "$OUT/summary.txt"
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

if [ ! -f "$DIR/tk/trailkeep.db" ]; then
  start "$A" fill
  export TRAILKEEP_BENCH_KEY=$(sed -n 's/^admin key: //p' "$OUT/fill.out" | head -1)
  echo "$TRAILKEEP_BENCH_KEY" > "$DIR/bench-key"
  "$LG" bulk --url "$URL" --pid "$PID" --dialect mixed --start 0 --events "$EVENTS" --conns 4 \
    --label fill --progress 1000000 2>>"$OUT/loadgen.log" | tee -a "$OUT/results.txt" | cut -c1-160
  sleep 60 # the substring index and the summaries catch up
  stop
fi
export TRAILKEEP_BENCH_KEY=${TRAILKEEP_BENCH_KEY:-$(cat "$DIR/bench-key")}
for side in A B; do
  start "${!side}" "$side"
  sleep 20
  "$LG" search --url "$URL" --pid "$PID" --db-events "$EVENTS" --per-kind "$PER_KIND" --no-mixed --label "$side" \
    2>>"$OUT/loadgen.log" | grep '^RESULT' >> "$OUT/results.txt"
  echo "$side: VmHWM $(awk '/VmHWM/{print int($2 / 1024)}' "/proc/$PID/status") MB" | tee -a "$OUT/summary.txt"
  stop
done
python3 - "$OUT/results.txt" <<'EOF' | tee -a "$OUT/summary.txt"
import json, sys
rows = [json.loads(l[7:]) for l in open(sys.argv[1]) if l.startswith("RESULT ")]
by = {}
for r in rows:
    if r.get("kind") == "search" and r.get("mode") == "isolated":
        by.setdefault(r["query"], {})[r["label"]] = r["latency"]
print(f"{'kind':36} {'A p50/p99 ms':>16} {'B p50/p99 ms':>16}")
for q, sides in by.items():
    cell = lambda s: f"{sides[s]['p50_ms']:.1f} / {sides[s]['p99_ms']:.1f}" if s in sides else "-"
    print(f"{q:36} {cell('A'):>16} {cell('B'):>16}")
EOF
