#!/usr/bin/env bash
# Long tier: runs every cargo-fuzz target (fuzz/fuzz_targets/*.rs) for a bounded time and fails
# on any crash, panic, timeout or out-of-memory. Not part of CI (tests/run.sh): it needs the
# nightly toolchain and the instrumented build alone takes several minutes.
#
#   tests/fuzz.sh [SECONDS] [TARGET...]     # default: 60 s for each of the four targets
#
#   FUZZ_SANITIZER=address   build with ASan (default none: the library has no unsafe code and
#                            the throughput is about twice as high)
#   FUZZ_JOBS=N              cargo build jobs (default: cargo's own)
#
# Installs cargo-fuzz 0.13 from crates.io if it is missing. Each target starts from its seed
# corpus fuzz/corpus/<target>/ (committed) plus the corpus grown by earlier runs in
# fuzz/target/corpus/<target>/ (not committed), with the dictionary fuzz/dicts/<target>.dict.
# A crash leaves the input in fuzz/artifacts/<target>/ and the libFuzzer log in
# target/fuzz-logs/<target>.log; replay it with
#   cd fuzz && cargo +nightly fuzz run -s none -a <target> artifacts/<target>/crash-…
# and turn it into a regression unit test next to the code it broke.
# The figures (execs, exec/s, libFuzzer's final corpus size, crashes) are printed and written
# to target/fuzz-figures.json.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(query_parser re2_regex canonical_json proof_decoder)
fi
sanitizer=${FUZZ_SANITIZER:-none}

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "tests/fuzz.sh needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version '^0.13'
fi

build_args=(-s "$sanitizer" -a -O)
if [ -n "${FUZZ_JOBS:-}" ]; then
    export CARGO_BUILD_JOBS=$FUZZ_JOBS
fi

echo "=== building the fuzz targets (nightly, sanitizer $sanitizer, debug assertions) ==="
(cd fuzz && cargo +nightly fuzz build "${build_args[@]}")

mkdir -p target/fuzz-logs
figures=()
failed=()
for t in "${targets[@]}"; do
    work="fuzz/target/corpus/$t"
    mkdir -p "$work" "fuzz/artifacts/$t"
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    if [ -f "fuzz/dicts/$t.dict" ]; then
        args+=(-dict="$PWD/fuzz/dicts/$t.dict")
    fi
    echo "=== fuzzing $t for ${secs}s ==="
    log="target/fuzz-logs/$t.log"
    before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    status=0
    (cd fuzz && cargo +nightly fuzz run "${build_args[@]}" "$t" "target/corpus/$t" "corpus/$t" -- "${args[@]}") \
        >"$log" 2>&1 || status=$?
    stat() { (grep -Eo "^stat::$1: *[0-9]+" "$log" || true) | tail -1 | awk '{print $2+0}'; }
    execs=$(stat number_of_executed_units)
    rate=$(stat average_exec_per_sec)
    corpus=$( (grep -Eo 'DONE .* corp: [0-9]+' "$log" || true) | tail -1 | grep -Eo '[0-9]+$' || echo 0)
    crashes=$(($(find "fuzz/artifacts/$t" -type f | wc -l) - before))
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        crashes=$((crashes > 0 ? crashes : 1))
        echo "FAILED: $t (exit $status); the last lines of $log:" >&2
        { grep -E -A1 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written|deadly signal' "$log" || tail -20 "$log"; } |
            tail -12 >&2
    fi
    printf '%-16s %6ss %12s execs %8s exec/s  corpus %6s  crashes %s\n' "$t" "$secs" "${execs:-0}" "${rate:-0}" "$corpus" "$crashes"
    figures+=("{\"target\":\"$t\",\"seconds\":$secs,\"execs\":${execs:-0},\"exec_per_sec\":${rate:-0},\"corpus\":$corpus,\"crashes\":$crashes}")
done

(IFS=,; printf '[%s]\n' "${figures[*]}") >target/fuzz-figures.json
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${secs}s each, 0 crashes"
