#!/usr/bin/env bash
# Pangea's official Node SDK (pangea-node-sdk) against `trailkeep serve` on 127.0.0.1:0, and
# RFC 8785 canonical JSON (json-canon, what the Node SDK hashes) against Python's canonical JSON
# (what Pangea and trailkeep hash), with node's built-in test runner.
#
#   tests/node/run.sh                    # uses target/debug/trailkeep (build it first)
#   TRAILKEEP_BIN=/path/to/trailkeep tests/node/run.sh
set -euo pipefail
cd "$(dirname "$0")"

if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

BIN="${TRAILKEEP_BIN:-../../target/debug/trailkeep}"
if [ ! -x "$BIN" ]; then
  echo "trailkeep binary not found at $BIN (run cargo build, or set TRAILKEEP_BIN)" >&2
  exit 1
fi
export TRAILKEEP_BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

if [ "$#" -eq 0 ]; then set -- test/; fi
exec node --test --test-concurrency=1 --test-reporter=spec "$@"
