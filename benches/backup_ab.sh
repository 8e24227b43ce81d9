#!/usr/bin/env bash
# Backups under single-event ingest, side by side in one run on one data directory. Each side is
# a way to back up, optionally with a server binary of its own:
#   cli     `trailkeep backup` (`VACUUM INTO` in a process of its own, one read snapshot for the
#           whole copy)
#   online  the server's online backup (`POST /api/v1/backups`: its writer copies a few pages
#           between commits)
#   none    no backup (the load alone, for reference)
# The directory is pre-filled with PREFILL events (Pangea and H2O batches of 1,000), then ROUNDS
# rounds alternate the sides: H2O single-event ingest, 32 clients for SECONDS s, the backup starting
# at the 10th second, the WAL's size sampled every 0.2 s. Prints one line per round: single-event
# p50 / p99 / longest and events/s over the round, the backup's seconds and size, the WAL's peak;
# then the medians per side. A side with a binary of its own restarts the server on the directory.
#
#   bash benches/backup_ab.sh [--a cli[:BIN]] [--b online[:BIN]] [--prefill N (3000000)]
#        [--rounds R (2)] [--seconds S (60)] [--keep]
#
# Run it on a quiet machine, with the database in the page cache (as after its pre-fill).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFILL=3000000 ROUNDS=2 SECS=60 KEEP=0 A=cli B=online
while [ $# -gt 0 ]; do
  case $1 in
    --a) A=$2; shift ;;
    --b) B=$2; shift ;;
    --prefill) PREFILL=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --seconds) SECS=$2; shift ;;
    --keep) KEEP=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
BIN=${TRAILKEEP_BIN:-$ROOT/target/release/trailkeep}
LG=${LOADGEN:-$ROOT/target/release/examples/loadgen}
(cd "$ROOT" && cargo build --release --bin trailkeep --example loadgen 2>&1 | tail -1)
declare -A MODE SBIN
for side in A B; do
  spec=${!side}
  MODE[$side]=${spec%%:*}
  SBIN[$side]=$BIN
  [ "$spec" != "${MODE[$side]}" ] && SBIN[$side]=${spec#*:}
  case ${MODE[$side]} in cli|online|none) ;; *) echo "side $side: cli, online or none" >&2; exit 2 ;; esac
  [ -x "${SBIN[$side]}" ] || { echo "side $side: ${SBIN[$side]} is not executable" >&2; exit 2; }
done
. "$ROOT/benches/lib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trailkeep-backup-ab.XXXXXX")
OUT=$ROOT/target/bench/backup-ab-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
SERVER= RUNNING= URL=
stop_server() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  SERVER= RUNNING=
}
start_server() {  # BIN
  [ "$RUNNING" = "$1" ] && return 0
  stop_server
  "$1" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --backup-dir "$WORK/backups" \
    > "$OUT/server.out" 2>> "$OUT/server.log" &
  SERVER=$!
  URL=$(wait_listening "$SERVER" "$OUT/server.out" "$OUT/server.log")
  RUNNING=$1
}
cleanup() {
  stop_server || true
  if [ "$KEEP" = 1 ]; then echo "data kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
start_server "${SBIN[A]}"
export TRAILKEEP_BENCH_KEY=$(sed -n 's/^admin key: //p' "$OUT/server.out" | head -1)
echo "A: ${MODE[A]} (${SBIN[A]}), B: ${MODE[B]} (${SBIN[B]}); pre-fill: $PREFILL events ($OUT)"
"$LG" bulk --url "$URL" --pid "$SERVER" --dialect mixed --start 0 --events "$PREFILL" --conns 4 \
  --label prefill --progress 1000000 > "$OUT/prefill.txt"
grep '^RESULT' "$OUT/prefill.txt" | tail -1

START=$((PREFILL * 10))
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    label=$side-$r mode=${MODE[$side]}
    start_server "${SBIN[$side]}"
    "$LG" single --url "$URL" --pid "$SERVER" --seed 2 --dialect h2o --clients 32 --seconds "$SECS" \
      --start "$START" --events 100000000 --label "$label" > "$OUT/single-$label.txt" &
    LGP=$!
    START=$((START + 10000000))
    (while kill -0 "$LGP" 2>/dev/null; do
       stat -c %s "$WORK/data/trailkeep.db-wal" 2>/dev/null || echo 0
       sleep 0.2
     done) > "$OUT/wal-$label.txt" &
    SAMPLER=$!
    sleep 10
    t0=$(date +%s.%N)
    size=0
    case $mode in
      cli)
        "${SBIN[$side]}" backup --data-dir "$WORK/data" --to "$WORK/backups-cli.db" > "$OUT/backup-$label.txt" 2>&1
        size=$(stat -c %s "$WORK/backups-cli.db") ;;
      online)
        curl -s -X POST -H "Authorization: Bearer $TRAILKEEP_BENCH_KEY" "$URL/api/v1/backups" > "$OUT/backup-$label.txt"
        size=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$OUT/backup-$label.txt") ;;
    esac
    t1=$(date +%s.%N)
    [ "$mode" = none ] && t1=$t0
    wait "$LGP"
    wait "$SAMPLER" || true
    rm -rf "$WORK"/backups-cli.db* "$WORK"/backups/*
    python3 - "$OUT/single-$label.txt" "$OUT/wal-$label.txt" "$label" "$(awk "BEGIN{print $t1 - $t0}")" "$size" \
      >> "$OUT/rounds.txt" <<'PY'
import json, sys
single, wal, label, secs, size = sys.argv[1:]
r = [json.loads(l[7:]) for l in open(single) if l.startswith("RESULT ")][-1]
peak = max(int(x) for x in open(wal).read().split() or ["0"])
lat = r["latency"]
print(json.dumps({"label": label, "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "max_ms": lat["max_ms"],
                  "events_per_s": r["events_per_s"], "backup_s": round(float(secs), 1),
                  "backup_mb": round(int(size) / 1e6), "wal_peak_mb": round(peak / 1e6)}))
PY
    tail -1 "$OUT/rounds.txt"
  done
done
python3 - "$OUT/rounds.txt" "${MODE[A]}" "${MODE[B]}" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = {"cli": "trailkeep backup (VACUUM INTO)", "online": "POST /api/v1/backups (online)", "none": "no backup"}
print("\nside  what                                  p50 ms  p99 ms  longest ms  events/s  backup s  WAL peak MB")
for side, mode in (("A", sys.argv[2]), ("B", sys.argv[3])):
    rs = [r for r in rows if r["label"].startswith(side)]
    m = lambda k: statistics.median(r[k] for r in rs)
    print(f"{side:<5} {names[mode]:<36} {m('p50_ms'):>7.1f} {m('p99_ms'):>7.1f} {m('max_ms'):>11.0f} {m('events_per_s'):>9.0f}"
          f" {m('backup_s'):>9.1f} {m('wal_peak_mb'):>12.0f}")
PY
