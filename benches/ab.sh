#!/usr/bin/env bash
# A/B: two trailkeep server builds side by side in one run, on the same events, interleaved
# (A, B, A, B, ...) so that machine noise hits both alike. Prints the medians and the B/A ratios.
#
#   bash benches/ab.sh A_BIN B_BIN [--prefill N] [--runs R] [--run-events M] [--conns C] [--loadgen PATH]
#
# Build the "before" binary from another checkout (e.g. `git worktree add ../old <commit>` and
# `cargo build --release --bin trailkeep` there); B is usually target/release/trailkeep. Each
# server gets a fresh data directory, is pre-filled through H2O batchCreate (as benches/run.sh),
# then each round measures Pangea v2/log bulk, H2O batchCreate bulk, single-event H2O at 32
# clients, and the isolated search kinds; at the end both servers stop and `trailkeep verify` runs
# on each data directory.
#
# A_ARGS / B_ARGS (environment) add `serve` arguments to one side, e.g. the same binary with and
# without replication (benches/replication_ab.sh). A side with replication has its lag sampled
# every second (`trailkeep_replication_lag_seconds`, reported as "replication lag max s").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/benches/lib.sh"
A=$1 B=$2; shift 2
PREFILL=200000 RUNS=3 RUN_EVENTS=20000 CONNS=4 SINGLE_SECONDS=6 PER_KIND=60
LG=$ROOT/target/release/examples/loadgen
while [ $# -gt 0 ]; do
  case "$1" in
    --prefill) PREFILL=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --run-events) RUN_EVENTS=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --loadgen) LG=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$LG" ] || (cd "$ROOT" && cargo build --release --example loadgen 2>&1 | tail -1)
OUT=${BENCH_OUT:-$ROOT/target/bench/ab-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/trailkeep-ab.XXXXXX)
declare -A PID URL KEY
cleanup() {
  set +e
  for s in A B; do [ -n "${PID[$s]:-}" ] && kill -TERM "${PID[$s]}" 2>/dev/null && wait "${PID[$s]}" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }

start() { # side binary
  mkdir -p "$WORK/$1"
  local extra=A_ARGS; [ "$1" = B ] && extra=B_ARGS
  # shellcheck disable=SC2086 # word splitting of the extra arguments is intended
  "$2" serve --listen 127.0.0.1:0 --data-dir "$WORK/$1" ${!extra:-} > "$OUT/$1.out" 2> "$OUT/$1.log" &
  PID[$1]=$!
  URL[$1]=$(wait_listening "${PID[$1]}" "$OUT/$1.out" "$OUT/$1.log")
  KEY[$1]=$(sed -n 's/^admin key: //p' "$OUT/$1.out" | head -1)
}
lg() { # side label args...
  local side=$1 label=$2; shift 2
  TRAILKEEP_BENCH_KEY=${KEY[$side]} "$LG" "$@" --url "${URL[$side]}" --pid "${PID[$side]}" --label "$side-$label" \
    2>>"$OUT/run.log" | tee -a "$OUT/results.txt"
}

echo "A: $A" | tee "$OUT/machine.txt"
echo "B: $B" | tee -a "$OUT/machine.txt"
echo "prefill $PREFILL, $RUNS rounds of $RUN_EVENTS events per bulk kind, $CONNS connections" | tee -a "$OUT/machine.txt"
start A "$A"
start B "$B"
lag_probe() { # side: samples the replication lag every second while the side runs
  while kill -0 "${PID[$1]}" 2>/dev/null; do
    python3 - "${URL[$1]}" "${KEY[$1]}" >> "$OUT/lag-$1.txt" 2>/dev/null <<'PY' || true
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/api/v1/replication", headers={"Authorization": "Bearer " + sys.argv[2]})
d = json.load(urllib.request.urlopen(req, timeout=5))
if d.get("enabled"):
    print(d["lag_seconds"], d["lag_events"])
PY
    sleep 1
  done
}
for s in A B; do
  v=${s}_ARGS
  case "${!v:-}" in *--replicate-to*) lag_probe "$s" & ;; esac
done
for s in A B; do
  log "pre-fill $s: $PREFILL events (H2O batchCreate)"
  lg "$s" prefill bulk --dialect h2o --start 0 --events "$PREFILL" --conns "$CONNS" > /dev/null
done
NEXT=$PREFILL
for r in $(seq 1 "$RUNS"); do
  for s in A B; do
    log "round $r, $s"
    lg "$s" "run$r" bulk --dialect pangea --start "$NEXT" --events "$RUN_EVENTS" --conns "$CONNS" > /dev/null
    lg "$s" "run$r" bulk --dialect h2o --start $((NEXT + RUN_EVENTS)) --events "$RUN_EVENTS" --conns "$CONNS" > /dev/null
    lg "$s" "run$r" single --dialect h2o --clients 32 --seconds "$SINGLE_SECONDS" --start $((10000000 * r)) --events 5000000 > /dev/null
    lg "$s" "run$r" search --db-events $((NEXT + 2 * RUN_EVENTS)) --per-kind "$PER_KIND" --clients 1 --seconds 1 > /dev/null
  done
  NEXT=$((NEXT + 2 * RUN_EVENTS))
done
for s in A B; do
  if [ -s "$OUT/lag-$s.txt" ]; then
    echo "RESULT {\"kind\":\"lag\",\"label\":\"$s\",\"max_s\":$(sort -g "$OUT/lag-$s.txt" | tail -1 | cut -d' ' -f1)}" >> "$OUT/results.txt"
  fi
  echo "RESULT {\"kind\":\"rss\",\"label\":\"$s\",\"vmhwm_mb\":$(( $(awk '/VmHWM/{print $2}' "/proc/${PID[$s]}/status") / 1024 ))}" \
    >> "$OUT/results.txt"
  kill -TERM "${PID[$s]}"; wait "${PID[$s]}" 2>/dev/null || true; PID[$s]=
done
declare -A BIN=([A]="$A" [B]="$B")
for r in $(seq 1 "$RUNS"); do
  for s in A B; do
    log "verify $s, run $r"
    verify_result "${BIN[$s]}" "$WORK/$s" "$s-run$r" "$OUT/verify-$s.out" >> "$OUT/results.txt"
  done
done
python3 - "$OUT/results.txt" <<'EOF' | tee "$OUT/summary.txt"
import json, statistics, sys
rows = [json.loads(l[7:]) for l in open(sys.argv[1]) if l.startswith("RESULT ")]
def metric(r):
    k = r["kind"]
    if k == "ingest": return f"bulk {r['system'].rsplit('-', 1)[-1]} events/s", r["events_per_s"]
    if k == "single": return "single-event 32 clients events/s", r["events_per_s"]
    if k == "search" and r.get("mode") == "isolated": return f"search {r['query']} p99 ms", r["latency"]["p99_ms"]
    if k == "rss": return "server VmHWM MB", r["vmhwm_mb"]
    if k == "verify": return "verify events/s", r["events_per_s"]
    if k == "lag": return "replication lag max s", r["max_s"]
    return None, None
table = {}
for r in rows:
    side = r["label"].split("-")[0]
    if r["label"].endswith("prefill"): continue
    name, v = metric(r)
    if name: table.setdefault(name, {}).setdefault(side, []).append(v)
    if r["kind"] == "single":
        table.setdefault("single-event p99 ms", {}).setdefault(side, []).append(r["latency"]["p99_ms"])
print(f"{'metric':48} {'A median':>10} {'B median':>10} {'B/A':>6}")
for name, sides in table.items():
    a, b = statistics.median(sides.get("A", [0])), statistics.median(sides.get("B", [0]))
    print(f"{name:48} {a:10.1f} {b:10.1f} {b / a if a else float('nan'):6.2f}")
EOF
