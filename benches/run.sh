#!/usr/bin/env bash
# trailkeep speed benchmark: HTTP ingest and search against a running server, plus the raw-SQLite,
# in-process-writer and PostgreSQL 15 baselines, all in one run. See BENCHMARKS.md.
#
#   bash benches/run.sh            # full: 1,000,000-event pre-fill, 3 measured runs of everything
#   bash benches/run.sh --quick    # quick: 100,000-event pre-fill, shorter runs (for iteration)
#   bash benches/run.sh --scale    # scale: one database grown to each of SCALE_SIZES (default
#                                  # 1000000,3000000,10000000), every figure measured at each size
#
# Options: --prefill N  --runs R  --run-events M  --conns C  --no-pg  --no-writer  --parts http,sqlite,writer,pg
#          --perf (perf record the server during the first bulk, single and search runs)  --keep (keep the data)
# Environment: QUIET_PCT (default 15) and QUIET_WAIT (default 600 s): before each part, wait up to QUIET_WAIT
# for the machine to be at most QUIET_PCT% busy (other builds or tests skew every number).
# Everything runs on this machine and talks to 127.0.0.1 only; the load generator and the server
# share the cores (no pinning). Every phase ends by count or by time.
set -euo pipefail
# Run from a private copy, so that editing this file during a run cannot derail it.
if [ -z "${TK_BENCH_COPY:-}" ]; then
  ROOT=$(cd "$(dirname "$0")/.." && pwd)
  COPY=$(mktemp /tmp/trailkeep-bench-run.XXXXXX)
  cp "$0" "$COPY"
  TK_BENCH_ROOT=$ROOT TK_BENCH_COPY=$COPY exec bash "$COPY" "$@"
fi
ROOT=$TK_BENCH_ROOT
cd "$ROOT"
source "$ROOT/benches/lib.sh"

PREFILL=1000000
RUNS=3
RUN_EVENTS=50000
CONNS=4
SINGLE_SECONDS=10
SEARCH_PER_KIND=200
SEARCH_SECONDS=15
PAGES=1000
AGG_PER_KIND=100
WITH_PG=1
WITH_WRITER=1
PARTS=http,sqlite,writer,pg
PERF=0
KEEP=0
MODE=full
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick; PREFILL=100000; RUN_EVENTS=20000; SINGLE_SECONDS=5; SEARCH_PER_KIND=60; SEARCH_SECONDS=8; AGG_PER_KIND=30 ;;
    --scale) MODE=scale; PARTS=http ;;
    --prefill) PREFILL=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --run-events) RUN_EVENTS=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --no-pg) WITH_PG=0 ;;
    --no-writer) WITH_WRITER=0 ;;
    --parts) PARTS=$2; shift ;;
    --perf) PERF=1 ;;
    --keep) KEEP=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

part() { case ",$PARTS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
SCALE_SIZES=${SCALE_SIZES:-1000000,3000000,10000000}
part pg || WITH_PG=0
part writer || WITH_WRITER=0

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$ROOT/target/bench/$STAMP-$MODE}
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: > "$RESULTS"
WORK=$(mktemp -d /tmp/trailkeep-bench.XXXXXX)
chmod 755 "$WORK"
PGBIN=/usr/lib/postgresql/15/bin
PGPORT=55432
SERVER_PID=
PERF_PID=

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }

cleanup() {
  set +e
  [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null
  fi
  if [ -f "$WORK/pg/data/postmaster.pid" ]; then pg_as "$PGBIN/pg_ctl -D $WORK/pg/data -m immediate stop" >/dev/null 2>&1; fi
  if [ "$KEEP" = 0 ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
  rm -f "$TK_BENCH_COPY"
}
trap cleanup EXIT

pg_as() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi; }

# ---------------------------------------------------------------------------------------------
# Tools
if [ "$WITH_PG" = 1 ] && [ ! -x "$PGBIN/initdb" ]; then
  log "installing postgresql-15 (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi

# Busy share of all cores over the next 5 s, in percent (from /proc/stat).
busy_pct() {
  local a b
  a=($(head -1 /proc/stat)); sleep 5; b=($(head -1 /proc/stat))
  awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN { n = split(a, x, " "); split(b, y, " "); t = 0;
    for (i = 2; i <= n; i++) t += y[i] - x[i]; idle = (y[5] - x[5]) + (y[6] - x[6]);
    printf "%d", (t > 0 ? 100 * (t - idle) / t : 0) }'
}
# Other work on the machine skews every number: wait (bounded) for a quiet machine.
wait_quiet() {
  local waited=0 b
  while :; do
    b=$(busy_pct)
    [ "$b" -le "${QUIET_PCT:-15}" ] && { log "machine busy ${b}% before '$1': ok"; return 0; }
    if [ "$waited" -ge "${QUIET_WAIT:-600}" ]; then log "WARNING: machine still ${b}% busy before '$1'; measuring anyway (see the noise column)"; return 0; fi
    log "machine ${b}% busy before '$1'; waiting for it to quieten"
    sleep 10; waited=$((waited + 15))
  done
}

log "building (release)"
cargo build --release --bin trailkeep --example loadgen 2>&1 | tail -1
TK=$ROOT/target/release/trailkeep
if [ "$PERF" = 1 ]; then
  # Same code with symbols and frame pointers, for perf (separate target dir; the profile is not edited).
  log "building an unstripped server for perf"
  CARGO_TARGET_DIR=$ROOT/target/bench-prof CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release --bin trailkeep 2>&1 | tail -1
  TK=$ROOT/target/bench-prof/release/trailkeep
fi
LG=$ROOT/target/release/examples/loadgen

{
  if [ "$MODE" = scale ]; then echo "mode: scale  sizes: $SCALE_SIZES  runs: $RUNS x $RUN_EVENTS  conns: $CONNS  single: 32 clients x ${SINGLE_SECONDS}s"
  else echo "mode: $MODE  prefill: $PREFILL  runs: $RUNS x $RUN_EVENTS  conns: $CONNS  single: 32 clients x ${SINGLE_SECONDS}s"; fi
  echo "date: $(date -u)  commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "memory: $(free -g | awk '/Mem:/{print $2}') GiB  kernel: $(uname -r)"
  echo "disk: $(df -h "$WORK" | awk 'NR==2{print $1, $2}')  filesystem: $(stat -f -c %T "$WORK")"
  echo "sqlite: bundled (rusqlite)  postgresql: $("$PGBIN/postgres" --version 2>/dev/null || echo none)"
} | tee "$OUT/machine.txt"

run_lg() { "$LG" "$@" 2>>"$OUT/run.log" | tee -a "$RESULTS"; }

perf_start() {
  [ "$PERF" = 1 ] || return 0
  perf record -F 499 -g -p "$SERVER_PID" -o "$OUT/perf-$1.data" >/dev/null 2>&1 &
  PERF_PID=$!
}
perf_stop() {
  [ "$PERF" = 1 ] || return 0
  kill -INT "$PERF_PID" 2>/dev/null; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=
  perf report -i "$OUT/perf-$1.data" --no-children --sort comm,dso,sym --percent-limit 0.7 --stdio 2>/dev/null \
    | grep -v '^$' | head -120 > "$OUT/perf-$1.txt" || true
  perf report -i "$OUT/perf-$1.data" --no-children --sort comm --stdio 2>/dev/null | grep '%' | head -20 \
    > "$OUT/perf-$1-threads.txt" || true
}

start_server() { # data dir
  : > "$OUT/server.out"
  "$TK" serve --listen 127.0.0.1:0 --data-dir "$1" >> "$OUT/server.out" 2>> "$OUT/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    grep -q '^listening on ' "$OUT/server.out" 2>/dev/null && break
    kill -0 "$SERVER_PID" || { cat "$OUT/server.log" >&2; exit 1; }
    sleep 0.1
  done
  URL=$(sed -n 's/^listening on //p' "$OUT/server.out" | head -1)
  [ -n "$URL" ] || { echo "server did not start" >&2; exit 1; }
  log "server pid $SERVER_PID at $URL"
  T=(--url "$URL" --pid "$SERVER_PID")
}

# ---------------------------------------------------------------------------------------------
# Scale mode: one database grown through SCALE_SIZES (same generator and seed, events 0, 1, 2, …
# in order, Pangea and H2O batches alternating); at each size the server is started on it, the
# measured runs add their events, then it stops for verify and the disk figure.
if [ "$MODE" = scale ]; then
  wait_quiet "trailkeep scale"
  mkdir -p "$WORK/tk"
  NEXT=0     # next event index of the stream (seed 1)
  STORED=0   # events in the database
  for SIZE in ${SCALE_SIZES//,/ }; do
    L=s$SIZE
    start_server "$WORK/tk"
    if [ -z "${TRAILKEEP_BENCH_KEY:-}" ]; then
      export TRAILKEEP_BENCH_KEY=$(sed -n 's/^admin key: //p' "$OUT/server.out" | head -1)
    fi
    if [ "$STORED" -lt "$SIZE" ]; then
      ADD=$((SIZE - STORED))
      log "[$L] pre-fill: $ADD events (Pangea v2/log and H2O batchCreate batches of 1000 alternating, $CONNS connections)"
      run_lg bulk "${T[@]}" --dialect mixed --start "$NEXT" --events "$ADD" --conns "$CONNS" --label "$L-prefill" --progress 500000
      NEXT=$((NEXT + ADD))
    fi
    for r in $(seq 1 "$RUNS"); do
      log "[$L] bulk run $r: Pangea, then H2O, $RUN_EVENTS events each"
      run_lg bulk "${T[@]}" --dialect pangea --start "$NEXT" --events "$RUN_EVENTS" --conns "$CONNS" --label "$L-run$r"
      NEXT=$((NEXT + RUN_EVENTS))
      run_lg bulk "${T[@]}" --dialect h2o --start "$NEXT" --events "$RUN_EVENTS" --conns "$CONNS" --label "$L-run$r"
      NEXT=$((NEXT + RUN_EVENTS))
    done
    for r in $(seq 1 "$RUNS"); do
      log "[$L] single-event run $r: H2O v1/events, 32 clients, ${SINGLE_SECONDS}s"
      # Another seed: these events are not part of the stream the searches draw from.
      run_lg single "${T[@]}" --seed 2 --dialect h2o --clients 32 --seconds "$SINGLE_SECONDS" \
        --start $((SIZE * 10 + r * 1000000)) --events 1000000 --label "$L-run$r"
    done
    log "[$L] searches: each kind alone, $SEARCH_PER_KIND requests (60 s at most per kind)"
    run_lg search "${T[@]}" --db-events "$NEXT" --per-kind "$SEARCH_PER_KIND" --no-mixed --label "$L-run1"
    for r in $(seq 1 "$RUNS"); do
      log "[$L] paging run $r: $PAGES pages of 50"
      run_lg paging "${T[@]}" --pages "$PAGES" --label "$L-run$r"
    done
    HWM=$(awk '/VmHWM/{print $2}' "/proc/$SERVER_PID/status")
    echo "RESULT {\"kind\":\"rss\",\"system\":\"trailkeep\",\"label\":\"$L\",\"vmhwm_mb\":$((HWM / 1024))}" | tee -a "$RESULTS"
    log "[$L] stopping the server"
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
    for r in $(seq 1 "$RUNS"); do
      log "[$L] verify run $r"
      verify_result "$TK" "$WORK/tk" "$L-run$r" "$OUT/verify.out" | tee -a "$RESULTS"
    done
    BYTES=$(find "$WORK/tk" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
    STORED=$(sed -n 's/^ok: \([0-9]*\) events.*/\1/p' "$OUT/verify.out")
    echo "RESULT {\"kind\":\"disk\",\"system\":\"trailkeep\",\"label\":\"$L\",\"bytes\":$BYTES,\"events\":${STORED:-0},\"bytes_per_event\":$(awk "BEGIN{printf \"%d\", $BYTES / ${STORED:-1}}")}" | tee -a "$RESULTS"
  done
  PARTS=none
  WITH_PG=0
  WITH_WRITER=0
fi

# ---------------------------------------------------------------------------------------------
# trailkeep over HTTP
if part http; then
wait_quiet "trailkeep"
log "starting trailkeep"
mkdir -p "$WORK/tk"
"$TK" serve --listen 127.0.0.1:0 --data-dir "$WORK/tk" > "$OUT/server.out" 2> "$OUT/server.log" &
SERVER_PID=$!
for _ in $(seq 1 600); do
  grep -q '^listening on ' "$OUT/server.out" 2>/dev/null && break
  kill -0 "$SERVER_PID" || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$OUT/server.out" | head -1)
export TRAILKEEP_BENCH_KEY=$(sed -n 's/^admin key: //p' "$OUT/server.out" | head -1)
[ -n "$URL" ] && [ -n "$TRAILKEEP_BENCH_KEY" ] || { echo "server did not start" >&2; exit 1; }
log "server pid $SERVER_PID at $URL"
T=(--url "$URL" --pid "$SERVER_PID")

log "pre-fill: $PREFILL events, H2O batchCreate x1000, $CONNS connections"
run_lg bulk "${T[@]}" --dialect h2o --start 0 --events "$PREFILL" --conns "$CONNS" --label prefill --progress 100000
NEXT=$PREFILL
for r in $(seq 1 "$RUNS"); do
  [ "$r" = 1 ] && perf_start bulk
  log "bulk run $r: Pangea v2/log, then H2O batchCreate, $RUN_EVENTS events each"
  run_lg bulk "${T[@]}" --dialect pangea --start "$NEXT" --events "$RUN_EVENTS" --conns "$CONNS" --label "run$r"
  NEXT=$((NEXT + RUN_EVENTS))
  run_lg bulk "${T[@]}" --dialect h2o --start "$NEXT" --events "$RUN_EVENTS" --conns "$CONNS" --label "run$r"
  NEXT=$((NEXT + RUN_EVENTS))
  [ "$r" = 1 ] && perf_stop bulk
done
DB_EVENTS=$NEXT
for r in $(seq 1 "$RUNS"); do
  [ "$r" = 1 ] && perf_start single
  log "single-event run $r: H2O v1/events, 32 clients, ${SINGLE_SECONDS}s"
  run_lg single "${T[@]}" --dialect h2o --clients 32 --seconds "$SINGLE_SECONDS" --start $((10000000 * r)) --events 5000000 --label "run$r"
  [ "$r" = 1 ] && perf_stop single
done
log "single-event: Pangea v1/log, 32 clients, ${SINGLE_SECONDS}s (once, for reference)"
run_lg single "${T[@]}" --dialect pangea --clients 32 --seconds "$SINGLE_SECONDS" --start 50000000 --events 5000000 --label ref
for r in $(seq 1 "$RUNS"); do
  [ "$r" = 1 ] && perf_start search
  log "search run $r (isolated kinds, then mixed with 4 clients for ${SEARCH_SECONDS}s)"
  run_lg search "${T[@]}" --db-events "$DB_EVENTS" --per-kind "$SEARCH_PER_KIND" --clients 4 --seconds "$SEARCH_SECONDS" --label "run$r"
  [ "$r" = 1 ] && perf_stop search
  log "paging run $r: $PAGES pages of 50"
  run_lg paging "${T[@]}" --pages "$PAGES" --label "run$r"
  log "aggregation run $r: timeline and top values, $AGG_PER_KIND requests per kind"
  run_lg aggregate "${T[@]}" --per-kind "$AGG_PER_KIND" --label "run$r"
done
HWM=$(awk '/VmHWM/{print $2}' "/proc/$SERVER_PID/status")
echo "RESULT {\"kind\":\"rss\",\"system\":\"trailkeep\",\"vmhwm_mb\":$((HWM / 1024))}" | tee -a "$RESULTS"
log "stopping the server"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=

for r in $(seq 1 "$RUNS"); do
  log "verify run $r"
  verify_result "$TK" "$WORK/tk" "run$r" "$OUT/verify.out" | tee -a "$RESULTS"
done
BYTES=$(find "$WORK/tk" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
N=$(sed -n 's/^ok: \([0-9]*\) events.*/\1/p' "$OUT/verify.out")
echo "RESULT {\"kind\":\"disk\",\"system\":\"trailkeep\",\"bytes\":$BYTES,\"events\":${N:-0},\"bytes_per_event\":$(awk "BEGIN{printf \"%d\", $BYTES / ${N:-1}}")}" | tee -a "$RESULTS"
rm -rf "$WORK/tk"
fi

# ---------------------------------------------------------------------------------------------
# Raw SQLite: trailkeep's schema, rows inserted as the writer does, no HTTP
if part sqlite; then
wait_quiet "raw SQLite"
log "raw SQLite: pre-fill $PREFILL, then $RUNS x $RUN_EVENTS (1000 rows per transaction)"
run_lg sqlite --dir "$WORK/raw" --start 0 --events "$PREFILL" --label prefill --progress 100000
NEXT=$PREFILL
for r in $(seq 1 "$RUNS"); do
  run_lg sqlite --dir "$WORK/raw" --start "$NEXT" --events "$RUN_EVENTS" --label "run$r"
  NEXT=$((NEXT + RUN_EVENTS))
done
BYTES=$(find "$WORK/raw" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
echo "RESULT {\"kind\":\"disk\",\"system\":\"sqlite-raw\",\"bytes\":$BYTES,\"events\":$NEXT,\"bytes_per_event\":$(awk "BEGIN{printf \"%d\", $BYTES / $NEXT}")}" | tee -a "$RESULTS"
rm -rf "$WORK/raw"
fi

if [ "$WITH_WRITER" = 1 ]; then
  wait_quiet "in-process writer"
  log "in-process writer (server::open + writer.append, no HTTP): pre-fill $PREFILL, then $RUNS x $RUN_EVENTS"
  run_lg writer --dir "$WORK/wr" --start 0 --events "$PREFILL" --conns "$CONNS" --label prefill --progress 100000
  NEXT=$PREFILL
  for r in $(seq 1 "$RUNS"); do
    run_lg writer --dir "$WORK/wr" --start "$NEXT" --events "$RUN_EVENTS" --conns "$CONNS" --label "run$r"
    NEXT=$((NEXT + RUN_EVENTS))
  done
  rm -rf "$WORK/wr"
fi

# ---------------------------------------------------------------------------------------------
# PostgreSQL 15 on loopback, throwaway cluster
if [ "$WITH_PG" = 1 ]; then
  wait_quiet "PostgreSQL"
  log "PostgreSQL: initdb + start on port $PGPORT"
  mkdir -p "$WORK/pg"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$WORK/pg"
  pg_as "$PGBIN/initdb -D $WORK/pg/data -A trust -U postgres" >/dev/null
  pg_as "$PGBIN/pg_ctl -D $WORK/pg/data -o '-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1' -l $WORK/pg/log -w start" >/dev/null
  PG="host=$WORK/pg port=$PGPORT user=postgres dbname=postgres"
  psql -q -h "$WORK/pg" -p $PGPORT -U postgres -d postgres -v ON_ERROR_STOP=1 -f benches/pg_schema.sql
  log "PostgreSQL: pre-fill $PREFILL, then $RUNS x $RUN_EVENTS (multi-row INSERT of 1000, $CONNS connections)"
  run_lg pg --pg "$PG" --start 0 --events "$PREFILL" --conns "$CONNS" --label prefill --progress 100000
  NEXT=$PREFILL
  for r in $(seq 1 "$RUNS"); do
    run_lg pg --pg "$PG" --start "$NEXT" --events "$RUN_EVENTS" --conns "$CONNS" --label "run$r"
    NEXT=$((NEXT + RUN_EVENTS))
  done
  psql -q -h "$WORK/pg" -p $PGPORT -U postgres -d postgres -c "VACUUM ANALYZE events" >/dev/null
  run_lg pgsearch --pg "$PG" --db-events "$NEXT" --per-kind 50 --label run1
  BYTES=$(psql -At -h "$WORK/pg" -p $PGPORT -U postgres -d postgres -c "SELECT pg_total_relation_size('events')")
  echo "RESULT {\"kind\":\"disk\",\"system\":\"postgresql\",\"bytes\":$BYTES,\"events\":$NEXT,\"bytes_per_event\":$(awk "BEGIN{printf \"%d\", $BYTES / $NEXT}")}" | tee -a "$RESULTS"
  pg_as "$PGBIN/pg_ctl -D $WORK/pg/data -m fast -w stop" >/dev/null
fi

log "report"
{
  echo "## Results ($MODE, $STAMP)"; echo; echo '```'; cat "$OUT/machine.txt"; echo '```'; echo
  "$LG" report "$RESULTS"
} | tee "$OUT/report.md"
log "raw results: $RESULTS  report: $OUT/report.md"
