"""Rates of the archive tools and the archive's size, from a local S3 endpoint (moto_server).

    target/conformance-venv/bin/python benches/replication_rates.py [--events N] [--bin PATH]

Starts moto_server and a release `trailkeep serve` replicating to it, ingests N events (half H2O
batchCreate, half Pangea v2/log, 1,000 per request), waits until everything is replicated, stops
the server, then times `trailkeep verify --archive` and `trailkeep restore --from-archive` (from
S3, and from a file:// copy of the bucket, to tell the tools' speed from moto's), and reports the
bytes per event in the bucket. Prints one `RESULT {json}` line per figure. Wall-clock figures on a
shared machine are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))
sys.path.insert(0, str(ROOT / "tests" / "replication"))

import relharness as rh  # noqa: E402
from s3harness import S3  # noqa: E402


def timed(cmd, env):
    """(wall seconds, CPU seconds of the command: user + system) — on a shared machine the CPU
    time is the steadier figure."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, env=rh.child_env(env), timeout=3600)
    dt = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return dt, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "trailkeep"))
    a = ap.parse_args()
    os.environ["TRAILKEEP_BIN"] = a.bin
    work = Path(tempfile.mkdtemp(prefix="trailkeep-repl-rates-"))
    s3 = S3(work)
    try:
        bucket = s3.new_bucket()
        url = f"s3://{bucket}/trail"
        srv = rh.Server(work / "data", ("--replicate-to", url, "--replication-interval", "2s", "--no-self-audit"),
                        env=s3.env(), log_dir=work)
        srv.start()
        api = rh.Api(srv.url, srv.admin_key, timeout=120)
        n = 0
        t0 = time.monotonic()
        while n < a.events:
            if (n // 1000) % 2 == 0:
                items = [(str(uuid.uuid4()), rh.h2o_event(f"workspaces/w{n % 7}", token=f"t{n + i}",
                                                          metadata={"message": f"bench event {n + i}", "k": str(i)}))
                         for i in range(1000)]
                r = api.h2o_batch(items)
            else:
                r = api.pangea("/v2/log", {"events": [{"event": rh.pangea_event(
                    f"workspaces/w{n % 7}", f"bench event {n + i}", actor=f"user{i % 50}", target=f"doc/{i}")}
                    for i in range(1000)]})
            assert r.status_code == 200, rh.short(r)
            n += 1000
        ingest_s = time.monotonic() - t0
        t0 = time.monotonic()
        while True:
            st = api.request("GET", "/api/v1/replication").json()
            if st["lag_events"] == 0 and st["state"] == "idle":
                break
            time.sleep(0.5)
        drain_s = time.monotonic() - t0
        srv.stop()
        keys = s3.keys(bucket, "trail/")
        size = sum(len(s3.get(bucket, k)) for k in keys)
        events_bytes = sum(len(s3.get(bucket, k)) for k in keys if k.endswith(".jsonl.gz"))
        env = s3.env()
        out = []
        out.append({"kind": "archive", "events": n, "objects": sum(k.endswith(".jsonl.gz") for k in keys),
                    "bytes_per_event": round(size / n, 1), "events_object_bytes_per_event": round(events_bytes / n, 1),
                    "ingest_s": round(ingest_s, 1), "catch_up_after_ingest_s": round(drain_s, 1)})
        dt, cpu = timed([a.bin, "verify", "--archive", url], env)
        out.append({"kind": "verify_archive", "from": "moto", "events": n, "seconds": round(dt, 2),
                    "events_per_s": round(n / dt), "cpu_s": round(cpu, 2), "events_per_cpu_s": round(n / max(cpu, 1e-9))})
        dt, cpu = timed([a.bin, "restore", "--from-archive", url, "--data-dir", str(work / "r1")], env)
        out.append({"kind": "restore_archive", "from": "moto", "events": n, "seconds": round(dt, 2),
                    "events_per_s": round(n / dt), "cpu_s": round(cpu, 2), "events_per_cpu_s": round(n / max(cpu, 1e-9))})
        local = work / "copy" / "trail"
        for k in keys:
            p = work / "copy" / k
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(s3.get(bucket, k))
        dt, cpu = timed([a.bin, "verify", "--archive", f"file://{local}"], env)
        out.append({"kind": "verify_archive", "from": "file", "events": n, "seconds": round(dt, 2),
                    "events_per_s": round(n / dt), "cpu_s": round(cpu, 2), "events_per_cpu_s": round(n / max(cpu, 1e-9))})
        dt, cpu = timed([a.bin, "restore", "--from-archive", f"file://{local}", "--data-dir", str(work / "r2")], env)
        out.append({"kind": "restore_archive", "from": "file", "events": n, "seconds": round(dt, 2),
                    "events_per_s": round(n / dt), "cpu_s": round(cpu, 2), "events_per_cpu_s": round(n / max(cpu, 1e-9))})
        dt, cpu = timed([a.bin, "verify", "--data-dir", str(work / "r2")], env)
        out.append({"kind": "verify_restored", "events": n, "seconds": round(dt, 2), "events_per_s": round(n / dt),
                    "cpu_s": round(cpu, 2), "events_per_cpu_s": round(n / max(cpu, 1e-9))})
        for r in out:
            print("RESULT " + json.dumps(r))
    finally:
        s3.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
