#!/usr/bin/env bash
# Memory probe: RSS of one server on a copy of a pre-filled data directory, at start, after
# 60,000 events of Pangea bulk, after 5 s of single-event H2O at 32 clients, and after the search
# kinds plus 8 s of mixed search. Prints "RSS HWM" (MB) per phase. Used for BENCHMARKS.md's
# "Memory" table: one fresh copy per variant, variants run one after another.
#
#   TRAILKEEP_BENCH_KEY=<admin key of SRC> bash benches/rss_probe.sh BIN SRC_DATA_DIR LABEL [ENV=VALUE...]
#
# SRC_DATA_DIR: a stopped server's data directory (e.g. pre-filled with 1,000,000 events by
# `loadgen bulk --dialect h2o --events 1000000`); it is copied, never modified. ENV=VALUE pairs are
# set for the server only (e.g. MIMALLOC_ALLOW_THP=0).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$1 SRC=$2 LABEL=$3; shift 3
LG=${LOADGEN:-$ROOT/target/release/examples/loadgen}
: "${TRAILKEEP_BENCH_KEY:?set TRAILKEEP_BENCH_KEY to an admin key of the source data directory}"
WORK=$(mktemp -d /tmp/trailkeep-rss.XXXXXX)
trap 'kill -TERM ${PID:-0} 2>/dev/null; wait ${PID:-0} 2>/dev/null; rm -rf "$WORK"' EXIT
cp -a "$SRC" "$WORK/data"
env "$@" "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" > "$WORK/out" 2> "$WORK/log" &
PID=$!
for _ in $(seq 300); do grep -q '^listening' "$WORK/out" 2>/dev/null && break; sleep 0.2; done
URL=$(sed -n 's/^listening on //p' "$WORK/out")
EVENTS=$(sqlite3 "file:$WORK/data/trailkeep.db?mode=ro" 'SELECT count(*) FROM events' 2>/dev/null || echo 1000000)
mem() { awk '/VmRSS/{r=$2} /VmHWM/{h=$2} END {printf "%.1f (%.1f)", r/1024, h/1024}' "/proc/$PID/status"; }
sleep 1; S0=$(mem)
"$LG" bulk --url "$URL" --pid "$PID" --dialect pangea --start 2000000 --events 60000 --conns 4 --label rss >/dev/null 2>&1
S1=$(mem)
"$LG" single --url "$URL" --pid "$PID" --dialect h2o --clients 32 --seconds 5 --start 3000000 --events 5000000 --label rss >/dev/null 2>&1
S2=$(mem)
"$LG" search --url "$URL" --pid "$PID" --db-events $((EVENTS + 80000)) --per-kind 40 --clients 4 --seconds 8 --label rss >/dev/null 2>&1
S3=$(mem)
echo "$LABEL  start $S0  bulk $S1  single $S2  search $S3   (RSS (VmHWM) MB)"
