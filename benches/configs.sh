#!/usr/bin/env bash
# Audit-config benchmark (issue 21), side by side in one run on this machine:
#   1. default-config bulk ingest (Pangea v2/log, Pangea's standard event) with this build and,
#      with --before REV, with a build of REV: alternating A/B rounds on fresh data directories;
#   2. bulk ingest into a config with six custom fields (`loadgen schema`): a pre-fill of
#      --prefill events, then --runs measured runs;
#   3. exact and range filters on the custom fields over HTTP at that size (`loadgen custom-search`,
#      the Pangea SDK's defaults: limit 20, max_results 10,000, verbose);
#   4. server-signed bulk ingest (a config with signing = server; one Ed25519 signature per event);
#   5. `trailkeep verify` over it all (server signatures included).
#
#   bash benches/configs.sh                       # 1,000,000 events, 3 runs
#   bash benches/configs.sh --quick               # 100,000 events, shorter runs (checks the commands)
#   bash benches/configs.sh --before main         # adds the A/B default-config ingest comparison
#   bash benches/configs.sh --before-bin OLD_BIN  # the same with a release binary already built
#
# Options: --prefill N  --runs R  --run-events M  --conns C  --before REV  --before-bin BIN  --keep
# RESULT lines go to target/bench/<stamp>-configs/results.txt; a summary is printed at the end.
# The machine is shared: run it when it is quiet, and compare ratios measured in the same run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PREFILL=1000000
RUNS=3
RUN_EVENTS=50000
CONNS=4
PER_KIND=200
BEFORE=
BEFORE_BIN=
KEEP=0
MODE=full
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick; PREFILL=100000; RUN_EVENTS=20000; PER_KIND=60 ;;
    --prefill) PREFILL=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --run-events) RUN_EVENTS=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --before) BEFORE=$2; shift ;;
    --before-bin) BEFORE_BIN=$2; shift ;;
    --keep) KEEP=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$ROOT/target/bench/$STAMP-configs-$MODE}
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: > "$RESULTS"
WORK=$(mktemp -d /tmp/trailkeep-configs-bench.XXXXXX)
SERVER_PID=

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }

cleanup() {
  set +e
  stop_server
  if [ "$KEEP" = 0 ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

log "building (release)"
cargo build --release --bin trailkeep --example loadgen 2>&1 | tail -1
TK=$ROOT/target/release/trailkeep
LG=$ROOT/target/release/examples/loadgen
TK_BEFORE=$BEFORE_BIN
if [ -n "$BEFORE_BIN" ]; then
  BEFORE="binary $BEFORE_BIN"
elif [ -n "$BEFORE" ]; then
  log "building $BEFORE (release) for the A/B comparison"
  mkdir -p "$WORK/before-src"
  git archive "$BEFORE" | tar -x -C "$WORK/before-src"
  (cd "$WORK/before-src" && CARGO_TARGET_DIR=$ROOT/target/bench-before cargo build --release --bin trailkeep 2>&1 | tail -1)
  TK_BEFORE=$ROOT/target/bench-before/release/trailkeep
fi

{
  echo "mode: $MODE  prefill: $PREFILL  runs: $RUNS x $RUN_EVENTS  conns: $CONNS  before: ${BEFORE:-none}"
  echo "date: $(date -u)  commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)  memory: $(free -g | awk '/Mem:/{print $2}') GiB"
} | tee "$OUT/machine.txt"

run_lg() { "$LG" "$@" 2>>"$OUT/run.log" | tee -a "$RESULTS"; }

# start_server BIN DIR: starts `BIN serve` on 127.0.0.1:0; sets URL, KEY, SERVER_PID.
start_server() {
  local bin=$1 dir=$2
  mkdir -p "$dir"
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir" > "$dir.out" 2> "$dir.log" &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    grep -q '^listening on ' "$dir.out" 2>/dev/null && break
    kill -0 "$SERVER_PID" || { cat "$dir.log" >&2; exit 1; }
    sleep 0.1
  done
  URL=$(sed -n 's/^listening on //p' "$dir.out" | head -1)
  KEY=$(sed -n 's/^admin key: //p' "$dir.out" | head -1)
  [ -n "$URL" ] && [ -n "$KEY" ] || { echo "server did not start" >&2; exit 1; }
  export TRAILKEEP_BENCH_KEY=$KEY
}

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}

# ---------------------------------------------------------------------------------------------
# 1. Default-config bulk ingest, this build (A) and the build before (B), alternating.
for r in $(seq 1 "$RUNS"); do
  for side in A B; do
    bin=$TK; [ "$side" = B ] && bin=$TK_BEFORE
    [ -n "$bin" ] || continue
    start_server "$bin" "$WORK/default-$side-$r"
    log "default config, build $side, round $r: Pangea v2/log x1000, $RUN_EVENTS events"
    run_lg bulk --url "$URL" --pid "$SERVER_PID" --dialect pangea --start 0 --events "$RUN_EVENTS" \
      --conns "$CONNS" --label "default-$side-run$r"
    stop_server
    rm -rf "$WORK/default-$side-$r"
  done
done

# ---------------------------------------------------------------------------------------------
# 2-4. One server: the six-field config, its searches, the server-signed config.
start_server "$TK" "$WORK/tk"
T=(--url "$URL" --pid "$SERVER_PID")
"$LG" schema > "$WORK/six.json"
SIX=$("$TK" configs create --name six-fields --schema "$WORK/six.json" --data-dir "$WORK/tk" | tail -1)
SIGNED=$("$TK" configs create --name server-signed --signing server --data-dir "$WORK/tk" | tail -1)
log "configs: six fields $SIX, server-signed $SIGNED"

log "six fields: pre-fill $PREFILL events, $CONNS connections"
run_lg bulk "${T[@]}" --dialect pangea --shape six --config-id "$SIX" --start 0 --events "$PREFILL" \
  --conns "$CONNS" --label six-prefill --progress 100000
NEXT=$PREFILL
for r in $(seq 1 "$RUNS"); do
  log "six fields, run $r: $RUN_EVENTS events"
  run_lg bulk "${T[@]}" --dialect pangea --shape six --config-id "$SIX" --start "$NEXT" --events "$RUN_EVENTS" \
    --conns "$CONNS" --label "six-run$r"
  NEXT=$((NEXT + RUN_EVENTS))
done
for r in $(seq 1 "$RUNS"); do
  log "custom-field searches, run $r ($NEXT events in the config)"
  run_lg custom-search "${T[@]}" --db-events "$NEXT" --config-id "$SIX" --per-kind "$PER_KIND" --label "run$r"
done
for r in $(seq 1 "$RUNS"); do
  log "server-signed, run $r: $RUN_EVENTS events"
  run_lg bulk "${T[@]}" --dialect pangea --config-id "$SIGNED" --start $((20000000 + (r - 1) * RUN_EVENTS)) \
    --events "$RUN_EVENTS" --conns "$CONNS" --label "signed-run$r"
done
HWM=$(awk '/VmHWM/{print $2}' "/proc/$SERVER_PID/status")
echo "RESULT {\"kind\":\"rss\",\"system\":\"trailkeep\",\"vmhwm_mb\":$((HWM / 1024))}" | tee -a "$RESULTS"
stop_server

log "verify (hashes, roots and server signatures)"
t0=$(date +%s.%N)
"$TK" verify --data-dir "$WORK/tk" > "$OUT/verify.out" 2>&1 || true
t1=$(date +%s.%N)
n=$(sed -n 's/^ok: \([0-9]*\) events.*/\1/p' "$OUT/verify.out")
echo "RESULT {\"kind\":\"verify\",\"label\":\"configs\",\"events\":${n:-0},\"seconds\":$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}")}" | tee -a "$RESULTS"
cat "$OUT/verify.out" >&2

# ---------------------------------------------------------------------------------------------
# Summary: medians of the runs, and the targets of issue 21.
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l[len("RESULT "):]) for l in open(sys.argv[1]) if l.startswith("RESULT ")]
def med(pred, key):
    v = [r[key] for r in rows if pred(r)]
    return statistics.median(v) if v else None
def rate(prefix):
    return med(lambda r: r.get("kind") == "ingest" and r.get("label", "").startswith(prefix), "events_per_s")
a, b = rate("default-A"), rate("default-B")
print("default-config bulk ingest: this build %s/s" % (round(a) if a else "-") +
      (", before %s/s, ratio %.3f (target >= 0.95)" % (round(b), a / b) if a and b else ""))
six = rate("six-run")
print("six custom fields bulk ingest: %s/s (target >= 30,000)" % (round(six) if six else "-"))
signed = rate("signed-run")
print("server-signed bulk ingest: %s/s (target >= 20,000)" % (round(signed) if signed else "-"))
kinds = sorted({r["query"] for r in rows if r.get("kind") == "search" and r.get("query", "").startswith("custom_")})
for k in kinds:
    lat = [r["latency"] for r in rows if r.get("query") == k]
    p99s = [l["p99_ms"] for l in lat if "p99_ms" in l]
    p50s = [l["p50_ms"] for l in lat if "p50_ms" in l]
    cnt = med(lambda r: r.get("query") == k, "mean_count")
    print("%-26s p50 %6.2f ms  p99 %6.2f ms  mean count %s (target p99 <= 10 ms)" %
          (k, statistics.median(p50s) if p50s else -1, statistics.median(p99s) if p99s else -1, cnt))
PY
log "results in $OUT"
