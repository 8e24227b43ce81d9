#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. cargo fmt/clippy gates, Rust unit tests and in-process integration tests;
#   2. conformance suites driving the official Python clients (h2o-audit-trail, pangea-sdk) and
#      Pangea's Node SDK (pangea-node-sdk) against a real `trailkeep serve` on 127.0.0.1:0, every
#      program in examples/ included;
#   3. the shell and Python snippets of README.md, read from it and run as written (the first
#      one, `cargo run --release -- serve`, builds the release binary and starts the server);
#   4. reliability suite; browser tests (Playwright + Debian's Chromium) against the web UI;
#   5. replication against a real S3 API (moto_server from the conformance venv) with faults.
# Everything it needs (venv, npm packages, chromium) is installed by the scripts it calls.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step prints how long the one before it took (the durations CONTRIBUTING.md quotes).
SUITE_START=$SECONDS
STEP_START=$SECONDS
STEP_NAME=
step() {
    [ -n "$STEP_NAME" ] && printf '=== %s: %d s ===\n' "$STEP_NAME" $((SECONDS - STEP_START))
    STEP_NAME="$*"
    STEP_START=$SECONDS
    printf '\n=== %s ===\n' "$*"
}

step "format and lints"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

step "build"
cargo build --locked
export TRAILKEEP_BIN="$PWD/target/debug/trailkeep"

step "Rust unit and integration tests"
cargo test --locked 2>&1 | tee target/cargo-test.log
rust_passed=$( (grep -Eo '^test result: ok\. [0-9]+ passed' target/cargo-test.log || true) | awk '{s+=$4} END {print s+0}')

step "conformance: official H2O and Pangea clients"
bash tests/conformance/setup_venv.sh
unset H2O_CLOUD_TOKEN_ENDPOINT_URL H2O_CLOUD_DISCOVERY H2O_CLOUD_ENVIRONMENT H2O_CLOUD_CLIENT_PLATFORM_TOKEN
export NO_PROXY=127.0.0.1,localhost
target/conformance-venv/bin/pytest tests/conformance -q -p no:cacheprovider 2>&1 | tee target/pytest.log
py_passed=$( (grep -Eo '[0-9]+ passed' target/pytest.log || true) | tail -1 | awk '{print $1+0}')

step "README snippets, run as written against a fresh server"
target/conformance-venv/bin/python tests/readme/run_snippets.py 2>&1 | tee target/readme.log
readme_passed=$(sed -n 's/^README snippets: \([0-9]*\) blocks run.*/\1/p' target/readme.log)

step "conformance: Pangea's Node SDK (pangea-node-sdk) and RFC 8785 vs Python canonical JSON"
bash tests/node/run.sh 2>&1 | tee target/node.log
node_passed=$( (grep -Eo '^(# |ℹ )pass [0-9]+' target/node.log || true) | tail -1 | awk '{print $3+0}')

step "reliability: crash loop, faults, bad input, authorization matrix"
# libfaketime moves the server's wall clock in the clock-jump and expiry tests.
if ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends faketime >/dev/null; } \
        || echo "warning: could not install faketime; the clock tests will be skipped"
fi
target/conformance-venv/bin/pytest tests/reliability -m "not powercut" -q -p no:cacheprovider 2>&1 | tee target/reliability.log
rel_passed=$( (grep -Eo '[0-9]+ passed' target/reliability.log || true) | tail -1 | awk '{print $1+0}')

step "reliability: power cuts on a FUSE file system that drops unsynced writes (FULL and NORMAL)"
# lossyfs (tests/reliability/lossyfs.py) runs on Debian's python3 with python3-pyfuse3 and
# python3-trio; fuse3 brings fusermount3. Without /dev/fuse or the packages the tests are skipped.
if ! /usr/bin/python3 -c 'import pyfuse3, trio' >/dev/null 2>&1 || ! command -v fusermount3 >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends fuse3 python3-pyfuse3 python3-trio >/dev/null; } \
        || echo "warning: could not install fuse3, python3-pyfuse3, python3-trio; the power-cut tests will be skipped"
fi
TRAILKEEP_FIGURES=target/powercut-figures.json \
    target/conformance-venv/bin/pytest tests/reliability/test_powercut.py -q -p no:cacheprovider 2>&1 | tee target/powercut.log
pc_passed=$( (grep -Eo '[0-9]+ passed' target/powercut.log || true) | tail -1 | awk '{print $1+0}')

step "replication: a real S3 API (moto_server), kills, outages, throttling, tampering, restore"
target/conformance-venv/bin/pytest tests/replication -q -p no:cacheprovider 2>&1 | tee target/replication.log
repl_passed=$( (grep -Eo '[0-9]+ passed' target/replication.log || true) | tail -1 | awk '{print $1+0}')

browser_passed=0
if [ -f tests/browser/run.sh ]; then
    step "browser tests (Chromium)"
    # Screenshots of every page (1400x900 and phone width, light and dark) are the run's artifacts.
    export SCREENSHOT_DIR="${SCREENSHOT_DIR:-$PWD/target/browser-screenshots}"
    bash tests/browser/run.sh 2>&1 | tee target/browser.log
    echo "screenshots: $SCREENSHOT_DIR"
    browser_passed=$( (grep -Eo '^(# |ℹ )pass [0-9]+' target/browser.log || true) | tail -1 | awk '{print $3+0}')
fi

total=$((rust_passed + ${py_passed:-0} + ${node_passed:-0} + ${readme_passed:-0} + ${rel_passed:-0} + ${pc_passed:-0} + ${repl_passed:-0} + ${browser_passed:-0}))
step "done"
printf 'whole suite: %d s\n' $((SECONDS - SUITE_START))
printf '\nall suites: %s passed, 0 failed\n' "$total"
