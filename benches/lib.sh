# Shell functions shared by benches/run.sh and benches/ab.sh (sourced, not run).

# verify_result BIN DATA_DIR LABEL OUT_FILE: times `trailkeep verify` on DATA_DIR (its output goes
# to OUT_FILE) and prints one RESULT line with the events verified per second.
verify_result() {
  local bin=$1 dir=$2 label=$3 out=$4 t0 t1 n
  t0=$(date +%s.%N)
  "$bin" verify --data-dir "$dir" > "$out" 2>&1 || true
  t1=$(date +%s.%N)
  n=$(sed -n 's/^ok: \([0-9]*\) events.*/\1/p' "$out")
  [ -n "$n" ] || { cat "$out" >&2; n=0; }
  echo "RESULT {\"kind\":\"verify\",\"label\":\"$label\",\"events\":$n,\"seconds\":$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}"),\"events_per_s\":$(awk "BEGIN{printf \"%d\", $n / ($t1 - $t0)}")}"
}
