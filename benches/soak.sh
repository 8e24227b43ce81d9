#!/usr/bin/env bash
# trailkeep soak (long tier, not in CI; issue 17 item 6): one hour of paced mixed ingest and search
# at half of the measured capacity, with a backup and retention purges during it, judged on RSS
# growth, p99 stability per 5-minute window, file descriptors, threads and the WAL size.
# Builds the release binaries, then runs benches/soak.py (see its docstring for the settings).
#
#   bash benches/soak.sh                                   # one hour, default mix
#   SOAK_SECONDS=300 bash benches/soak.sh                  # a 5-minute check (windows of 60 s)
#   SOAK_SCALE=0.25 SOAK_SECONDS=300 bash benches/soak.sh  # the same at a quarter of the rates
#
# Everything talks to 127.0.0.1 only and stops by itself after SOAK_SECONDS (plus verification).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release --locked --bin trailkeep --example loadgen 2>&1 | tail -1
exec python3 "$ROOT/benches/soak.py" "$@"
