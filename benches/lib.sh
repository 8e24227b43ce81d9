# Shell functions shared by the bench scripts (sourced, not run).

# wait_listening PID OUT LOG [SECONDS]: waits until the server PID (stdout in OUT, stderr in LOG)
# prints its "listening on URL" line, at most SECONDS (default 60); prints URL. Exits with the
# server's log when it died, and fails when it never listened.
wait_listening() {
  local pid=$1 out=$2 err=$3 tenths=$(( ${4:-60} * 10 ))
  for _ in $(seq 1 "$tenths"); do
    grep -q '^listening on ' "$out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$err" >&2; exit 1; }
    sleep 0.1
  done
  sed -n 's/^listening on //p' "$out" | head -1 | grep . || { echo "the server did not start in time" >&2; exit 1; }
}

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

# start_moto ROOT BUCKET: starts moto_server (from the conformance venv, made if missing) on a free
# loopback port, creates BUCKET, exports the AWS_* variables trailkeep's S3 client reads, and sets
# MOTO (its pid; the caller kills it) and MOTO_LOG.
start_moto() {
  local root=$1 bucket=$2 venv port
  bash "$root/tests/conformance/setup_venv.sh"
  venv=$root/target/conformance-venv
  port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  MOTO_LOG=$(mktemp /tmp/trailkeep-moto.XXXXXX)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$MOTO_LOG" 2>&1 &
  MOTO=$!
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ALLOW_HTTP=true
  for _ in $(seq 1 100); do
    BUCKET=$bucket "$venv/bin/python" - <<'PY' 2>/dev/null && return 0
import os, boto3
boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=os.environ["BUCKET"])
PY
    sleep 0.2
  done
  echo "moto_server did not start (log: $MOTO_LOG)" >&2
  return 1
}
