#!/usr/bin/env bash
# Browser tests of the web UI: Debian's Chromium driven by playwright-core, with node's
# built-in test runner. Each test file starts its own `trailkeep serve` on 127.0.0.1:0.
#
#   tests/browser/run.sh                 # uses target/debug/trailkeep (build it first)
#   TRAILKEEP_BIN=/path/to/trailkeep tests/browser/run.sh
#   tests/browser/run.sh tests/search.test.js   # one file
#
# Screenshots go to $SCREENSHOT_DIR (default /tmp/trailkeep-screens), never into the repo.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian chromium…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

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

if [ "$#" -eq 0 ]; then set -- tests/; fi
# One file at a time: each starts a server and a browser, and the machine has 2 cores.
exec node --test --test-concurrency=1 --test-reporter=spec "$@"
