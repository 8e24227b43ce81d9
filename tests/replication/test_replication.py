"""Replication to a real S3 API (issue 19): steady replication from both APIs; exactly once
through kill -9 during an upload, between an upload and the watermark, and during a restore; an
outage (connections refused) and injected 503 SlowDown / 500 answers; tampering found by
``verify --archive``; restore then verify and serve; a purge that waits for replication; secrets
never shown. The bucket is read back with boto3 and checked independently of trailkeep: every
line's hash is SHA-256 of the canonical JSON of its envelope (Python's ``json.dumps``), every
event is in exactly one object, objects stay within one UTC hour."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

import relharness as rh
from s3harness import INTERNAL, SLOWDOWN

F = "replication"
PREFIX = "trail/archive"


# ----------------------------------------------------------------------------------------- helpers
def replicating_server(new_server, s3, endpoint: str, bucket: str, tk_tmp: Path, *, interval: str = "1s",
                       max_events: int = 40, extra: Tuple[str, ...] = (), config: str = "", name: str = "repl",
                       data_dir: Optional[Path] = None, start: bool = True) -> rh.Server:
    cfg = tk_tmp / f"{name}-{uuid.uuid4().hex[:6]}.toml"
    cfg.write_text(f"[replication]\nmax_events = {max_events}\n" + config)
    args = ("--config", str(cfg), "--replicate-to", f"s3://{bucket}/{PREFIX}", "--replication-interval", interval,
            "--no-self-audit", *extra)
    return new_server(name, args, data_dir=data_dir, env=s3.env(endpoint), start=start)


def ingest_mixed(api: rh.Api, rounds: int, tag: str) -> int:
    """Events through H2O create and batchCreate and Pangea v1/log and v2/log; returns how many."""
    n = 0
    for r in range(rounds):
        ws = f"workspaces/repl-{r % 3}"
        resp = api.h2o_create(rh.h2o_event(ws, token=f"{tag}-{r}"))
        assert resp.status_code == 200, rh.short(resp)
        items = [(str(uuid.uuid4()), rh.h2o_event(ws, token=f"{tag}-{r}-{i}")) for i in range(7)]
        resp = api.h2o_batch(items)
        assert resp.status_code == 200 and not resp.json().get("failedRequests"), rh.short(resp)
        resp = api.pangea("/v1/log", {"event": rh.pangea_event(ws, f"{tag} single {r}")})
        assert resp.status_code == 200, rh.short(resp)
        resp = api.pangea("/v2/log", {"events": [{"event": rh.pangea_event("", f"{tag} bulk {r}.{i}")} for i in range(5)]})
        assert resp.status_code == 200, rh.short(resp)
        n += 1 + 7 + 1 + 5
    return n


def status(api: rh.Api) -> dict:
    r = api.request("GET", "/api/v1/replication")
    assert r.status_code == 200, rh.short(r)
    return r.json()


def wait_replicated(api: rh.Api, timeout: float = 90.0) -> Tuple[dict, float]:
    t0 = time.monotonic()
    last = {}
    while time.monotonic() - t0 < timeout:
        last = status(api)
        if last["lag_events"] == 0 and last["committed_events"] > 0 and last["state"] == "idle":
            return last, time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError(f"replication did not catch up within {timeout:.0f} s: {last}")


def committed(srv: rh.Server) -> int:
    c = srv.db()
    try:
        return c.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        c.close()


def check_bucket(s3, bucket: str, expected: int, max_events: int) -> Dict[str, int]:
    """The bucket read back independently: every event exactly once, hashes, hours, sizes."""
    seen: Dict[int, str] = {}
    dup = 0
    objects = s3.objects(bucket, PREFIX)
    size = 0
    for key, lines in objects:
        size += len(s3.get(bucket, key))
        hour = key.split("/events/")[1].rsplit("/", 1)[0]  # YYYY/MM/DD/HH
        first, last = (int(x) for x in key.rsplit("/", 1)[1].split(".")[0].split("-"))
        leaves = {l["leaf_index"] for l in lines}
        assert leaves == set(range(first, last + 1)), f"{key}: leaves {sorted(leaves)[:5]}… not {first}..{last}"
        assert len(lines) <= max_events or len(leaves) == 1, f"{key}: {len(lines)} events > max_events"
        proof = json.loads(s3.get(bucket, key.replace(".jsonl.gz", ".proof.json")))
        assert proof["events"] == len(lines)
        for l in lines:
            env = l["envelope"]
            assert hashlib.sha256(rh.canon(env)).hexdigest() == l["hash"], f"{key}: seq {l['seq']} hash"
            at = env["received_at"]
            assert at[:13].replace("-", "/").replace("T", "/") == hour, f"{key}: {at} outside {hour}"
            if l["seq"] in seen:
                dup += 1
            seen[l["seq"]] = key
    missing = [s for s in range(expected) if s not in seen]
    return {"objects": len(objects), "events": len(seen), "missing": len(missing), "duplicates": dup,
            "extra": len([s for s in seen if s >= expected]), "bytes": size}


def verify_archive(srv: rh.Server, bucket: str, *extra: str) -> subprocess.CompletedProcess:
    return srv.cli("verify", "--archive", f"s3://{bucket}/{PREFIX}", *extra, check=False, timeout=300)


def record(name: str, committed_n: int, stats: Dict[str, int], **more) -> None:
    rh.fig_set(F, f"{name}: committed", committed_n)
    rh.fig_set(F, f"{name}: in bucket", stats["events"])
    rh.fig_set(F, f"{name}: missing", stats["missing"])
    rh.fig_set(F, f"{name}: in two objects", stats["duplicates"])
    for k, v in more.items():
        rh.fig_set(F, f"{name}: {k}", v)


def assert_exactly_once(stats: Dict[str, int], n: int) -> None:
    assert stats["missing"] == 0 and stats["duplicates"] == 0 and stats["extra"] == 0 and stats["events"] == n, stats


# ----------------------------------------------------------------------------------------- tests
def test_steady_replication_from_both_apis(new_server, s3, tk_tmp):
    bucket = s3.new_bucket()
    srv = replicating_server(new_server, s3, s3.endpoint, bucket, tk_tmp)
    api = rh.Api(srv.url, srv.admin_key)
    n = ingest_mixed(api, 12, "steady")
    st, _ = wait_replicated(api)
    total = committed(srv)
    assert total == n
    stats = check_bucket(s3, bucket, total, 40)
    assert_exactly_once(stats, total)
    assert stats["objects"] >= total // 40
    record("steady", total, stats, objects=stats["objects"], bytes_per_event=round(stats["bytes"] / total, 1))
    # The public key is in the archive, and it is the server's.
    pem = s3.get(bucket, f"{PREFIX}/public-key.pem").decode()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    # Visibility: the status route, /readyz (ready, with the lag) and the metrics.
    assert st["replicated_events"] == total and st["target"] == f"s3://{bucket}/{PREFIX}", st
    assert st["consecutive_failures"] == 0, st  # a failure retried on the way is not one
    if st["last_error"] is not None:
        rh.fig_note(F, f"steady: a failure retried on the way: {st['last_error']}")
    r = api.request("GET", "/readyz", key=None)
    assert r.status_code == 200 and r.json()["replication"]["lag_events"] == 0, rh.short(r)
    m = api.request("GET", "/metrics").text
    for name in ("trailkeep_replication_lag_events 0", "trailkeep_replication_lag_seconds 0",
                 'trailkeep_replication_uploads_total{kind="events"}', 'trailkeep_replication_uploads_total{kind="proof"}'):
        assert name in m, name
    # The archive verifies on its own (no database), against its own key and a key given.
    res = verify_archive(srv, bucket)
    assert res.returncode == 0 and f"{total} events" in res.stdout, res.stdout + res.stderr
    keyfile = tk_tmp / f"pk-{uuid.uuid4().hex[:6]}.pem"
    keyfile.write_text(pem)
    assert verify_archive(srv, bucket, "--public-key", str(keyfile)).returncode == 0
    # A search key sees no replication state; the route is for admin keys.
    search = api.with_key(srv.create_key(["search"]))
    assert search.request("GET", "/api/v1/replication").status_code == 403


def test_kill9_during_upload_and_between_upload_and_watermark(new_server, s3, proxy, tk_tmp):
    bucket = s3.new_bucket()
    srv = replicating_server(new_server, s3, proxy.url, bucket, tk_tmp, name="kill")
    api = rh.Api(srv.url, srv.admin_key)
    n = ingest_mixed(api, 4, "k0")
    wait_replicated(api)
    for round_, when in enumerate(["before", "after", "before", "after"]):
        # Hold the next events upload: before it reaches S3 (kill during the upload) or after S3
        # stored it but before trailkeep saw the answer (kill between upload and watermark).
        proxy.hold_next(lambda m, p: m == "PUT" and ".jsonl.gz" in p, when)
        n += ingest_mixed(api, 3, f"k{round_ + 1}")
        assert proxy.holding.wait(30), "no events upload was seen"
        srv.kill()
        proxy.release.set()
        srv.start()
        api = rh.Api(srv.url, srv.admin_key)
        wait_replicated(api)
    total = committed(srv)
    assert total == n
    stats = check_bucket(s3, bucket, total, 40)
    assert_exactly_once(stats, total)
    record("kill -9 during upload / between upload and watermark (4 kills)", total, stats)
    assert verify_archive(srv, bucket).returncode == 0
    assert srv.verify().returncode == 0


def test_kill9_at_random_moments_under_load(new_server, s3, tk_tmp):
    bucket = s3.new_bucket()
    srv = replicating_server(new_server, s3, s3.endpoint, bucket, tk_tmp, name="killrand", max_events=25)
    kills = rh.tier(6, 30)
    rng = __import__("random").Random(int(os.environ.get("TRAILKEEP_SEED", "19")))
    for k in range(kills):
        api = rh.Api(srv.url, srv.admin_key)
        stop = threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                try:
                    api.pangea("/v2/log", {"events": [{"event": rh.pangea_event("", f"r{k}.{i}.{j}")} for j in range(10)]},
                               timeout=5)
                except Exception:  # noqa: BLE001 (the server is killed under it)
                    return
                i += 1

        t = threading.Thread(target=load, daemon=True)
        t.start()
        time.sleep(rng.uniform(0.3, 2.5))
        srv.kill()
        stop.set()
        t.join(10)
        srv.start()
    api = rh.Api(srv.url, srv.admin_key)
    wait_replicated(api)
    total = committed(srv)
    stats = check_bucket(s3, bucket, total, 25)
    assert_exactly_once(stats, total)
    record(f"kill -9 at random moments under load ({kills} kills)", total, stats)
    assert verify_archive(srv, bucket).returncode == 0


def test_outage_then_back(new_server, s3, proxy, tk_tmp):
    bucket = s3.new_bucket()
    srv = replicating_server(new_server, s3, proxy.url, bucket, tk_tmp, name="outage")
    api = rh.Api(srv.url, srv.admin_key)
    n = ingest_mixed(api, 2, "o0")
    wait_replicated(api)
    proxy.set_refusing(True)
    t_out = time.monotonic()
    # Ingest never waits for S3 and never fails because of it.
    n += ingest_mixed(api, 10, "o1")
    while time.monotonic() - t_out < 12:
        time.sleep(0.5)
    st = status(api)
    assert st["lag_events"] > 0 and st["state"] in ("retrying", "uploading"), st
    assert st["consecutive_failures"] > 0 and st["last_error"]["kind"] == "unreachable", st
    r = api.request("GET", "/readyz", key=None)
    assert r.status_code == 200 and r.json()["ready"] and r.json()["replication"]["lag_events"] > 0, rh.short(r)
    assert 'trailkeep_replication_failures_total{kind="unreachable"}' in api.request("GET", "/metrics").text
    # More than 10 x interval (1 s) behind: the lag warning, logged at a retry once the oldest
    # unreplicated event is over 10 s old (waited for, not timed: a loaded machine retries late).
    deadline = time.monotonic() + 60
    while "replication lag exceeds 10 x interval" not in srv.log_since() and time.monotonic() < deadline:
        time.sleep(0.5)
    proxy.set_refusing(False)
    _, catch_up = wait_replicated(api, 120)
    total = committed(srv)
    stats = check_bucket(s3, bucket, total, 40)
    assert total == n
    assert_exactly_once(stats, total)
    record("outage of 12 s (connections refused)", total, stats, seconds_to_catch_up=round(catch_up, 2),
           connections_refused=proxy.refused)
    log = srv.log_since()
    assert log.count("replication upload failed") >= 1
    assert "replication lag exceeds 10 x interval" in log


def test_slowdown_and_500_answers(new_server, s3, proxy, tk_tmp):
    bucket = s3.new_bucket()
    srv = replicating_server(new_server, s3, proxy.url, bucket, tk_tmp, name="throttle")
    api = rh.Api(srv.url, srv.admin_key)
    n = ingest_mixed(api, 2, "t0")
    wait_replicated(api)
    proxy.inject_errors([(503, SLOWDOWN)] * 6 + [(500, INTERNAL)] * 6)
    n += ingest_mixed(api, 6, "t1")
    wait_replicated(api, 120)
    total = committed(srv)
    stats = check_bucket(s3, bucket, total, 40)
    assert total == n
    assert_exactly_once(stats, total)
    m = api.request("GET", "/metrics").text
    assert proxy.injected == 12
    assert 'trailkeep_replication_failures_total{kind="throttled"}' in m, m
    assert 'trailkeep_replication_failures_total{kind="server_error"}' in m, m
    record("503 SlowDown x6 then 500 x6 injected", total, stats, answers_injected=proxy.injected)


def _edit_line(s3, bucket: str, key: str, line_no: int) -> bytes:
    original = s3.get(bucket, key)
    lines = gzip.decompress(original).decode().splitlines()
    ev = json.loads(lines[line_no - 1])
    ev["envelope"]["event"]["message"] = "tampered"
    lines[line_no - 1] = json.dumps(ev)
    s3.put(bucket, key, gzip.compress(("\n".join(lines) + "\n").encode()))
    return original


def test_tampering_is_found_and_named(new_server, s3, tk_tmp):
    bucket = s3.new_bucket()
    srv = replicating_server(new_server, s3, s3.endpoint, bucket, tk_tmp, name="tamper", max_events=20)
    api = rh.Api(srv.url, srv.admin_key)
    ingest_mixed(api, 6, "tamper")
    wait_replicated(api)
    srv.stop()
    keys = sorted(k for k in s3.keys(bucket, PREFIX + "/events/") if k.endswith(".jsonl.gz"))
    assert len(keys) >= 3
    victim = keys[1]
    name = victim.split(PREFIX + "/", 1)[1]
    # An edited line.
    original = _edit_line(s3, bucket, victim, 3)
    res = verify_archive(srv, bucket)
    assert res.returncode == 1 and f"{name}: line 3" in res.stdout, res.stdout
    s3.put(bucket, victim, original)
    assert verify_archive(srv, bucket).returncode == 0
    # A deleted object.
    s3.delete(bucket, victim)
    res = verify_archive(srv, bucket)
    assert res.returncode == 1 and name in res.stdout and "missing" in res.stdout, res.stdout
    s3.put(bucket, victim, original)
    # Two objects swapped.
    other = keys[2]
    other_bytes = s3.get(bucket, other)
    s3.put(bucket, victim, other_bytes)
    s3.put(bucket, other, original)
    res = verify_archive(srv, bucket)
    assert res.returncode == 1 and name in res.stdout, res.stdout
    s3.put(bucket, victim, original)
    s3.put(bucket, other, other_bytes)
    # A proof whose signed root was re-signed by someone else.
    pkey = victim.replace(".jsonl.gz", ".proof.json")
    proof_bytes = s3.get(bucket, pkey)
    proof = json.loads(proof_bytes)
    proof["signed_root"]["signature"] = base64.b64encode(b"\x01" * 64).decode()
    s3.put(bucket, pkey, json.dumps(proof).encode())
    res = verify_archive(srv, bucket)
    assert res.returncode == 1 and "signature" in res.stdout and name.replace(".jsonl.gz", "") in res.stdout, res.stdout
    s3.put(bucket, pkey, proof_bytes)
    assert verify_archive(srv, bucket).returncode == 0
    rh.fig_set(F, "tampering found (edit, delete, swap, forged signature)", "4 of 4")


def signing_key_pem(srv: rh.Server, path: Path) -> Path:
    """A copy of the trail's root-signing key file (PKCS#8 PEM, from the data directory's key store)."""
    path.write_bytes((Path(srv.data_dir) / "keys" / "root-signing.1.pem").read_bytes())
    path.chmod(0o600)
    return path


def test_restore_then_verify_and_serve(new_server, s3, tk_tmp):
    bucket = s3.new_bucket()
    srv = replicating_server(new_server, s3, s3.endpoint, bucket, tk_tmp, name="orig", max_events=500)
    api = rh.Api(srv.url, srv.admin_key)
    ingest_mixed(api, 40, "restore")
    # A larger batch too, so that the rates mean something.
    for b in range(rh.tier(20, 200)):
        r = api.pangea("/v2/log", {"events": [{"event": rh.pangea_event(f"workspaces/repl-{b % 3}", f"bulk {b}.{i}",
                                                                         actor=f"user{i % 7}")} for i in range(1000)]})
        assert r.status_code == 200, rh.short(r)
    wait_replicated(api, 300)
    total = committed(srv)
    h2o_before = sorted(json.dumps(e, sort_keys=True) for e in api.h2o_search_all({"workspaceExact": "workspaces/repl-1"}))
    pangea_q = {"query": "actor:user3", "limit": 1000, "order": "asc"}
    pg_before = rh.pangea_ok(api.pangea("/v1/search", pangea_q))
    per_ws = {ws: len(api.h2o_search_all({"workspaceExact": ws})) for ws in ("workspaces/repl-0", "workspaces/repl-2")}
    keyfile = signing_key_pem(srv, tk_tmp / f"sk-{uuid.uuid4().hex[:6]}.pem")
    srv.stop()

    t0 = time.monotonic()
    res = verify_archive(srv, bucket)
    t_verify = time.monotonic() - t0
    assert res.returncode == 0, res.stdout + res.stderr
    target = tk_tmp / f"restored-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    res = srv.cli("restore", "--from-archive", f"s3://{bucket}/{PREFIX}", "--data-dir", str(target),
                  "--signing-key", str(keyfile), timeout=600)
    t_restore = time.monotonic() - t0
    assert f"restored {total} events" in res.stdout, res.stdout
    res = srv.cli("verify", "--data-dir", str(target), check=False, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    restored = new_server("restored", ("--no-self-audit",), data_dir=target, env=srv.env_extra)
    # API keys are not part of the archive: the restored server made a new admin key.
    rapi = rh.Api(restored.url, restored.admin_key)
    # Every event searchable in both dialects, with the same results.
    h2o_after = sorted(json.dumps(e, sort_keys=True) for e in rapi.h2o_search_all({"workspaceExact": "workspaces/repl-1"}))
    assert h2o_after == h2o_before
    pg_after = rh.pangea_ok(rapi.pangea("/v1/search", pangea_q))
    assert [e["hash"] for e in pg_after["events"]] == [e["hash"] for e in pg_before["events"]]
    assert pg_after["count"] == pg_before["count"] > 0
    full = rh.pangea_ok(rapi.pangea("/v1/search", {"query": "", "limit": 1000, "start": "1d"}))
    assert full["count"] == min(total, 10000), (full["count"], total)  # Pangea counts up to max_results
    for ws, n in per_ws.items():
        assert len(rapi.h2o_search_all({"workspaceExact": ws})) == n > 0, ws
    # The trail goes on: a new event, and the whole log still verifies.
    r = rapi.pangea("/v1/log", {"event": rh.pangea_event("", "after the restore")})
    assert r.status_code == 200, rh.short(r)
    restored.stop()
    assert restored.verify().returncode == 0
    rh.fig_set(F, "restore: events", total)
    rh.fig_set(F, "verify --archive from moto: events/s (CLI, wall clock, noisy)", round(total / t_verify))
    rh.fig_set(F, "restore --from-archive from moto: events/s (CLI, wall clock, noisy)", round(total / t_restore))

    # Without the signing key: served read-only (searches answer, writes get 503 saying which key
    # file to install), and a warning at start says the same.
    target2 = tk_tmp / f"restored-ro-{uuid.uuid4().hex[:6]}"
    res = srv.cli("restore", "--from-archive", f"s3://{bucket}/{PREFIX}", "--data-dir", str(target2), timeout=600)
    assert "read-only" in res.stdout and "keys/root-signing.1.pem" in res.stdout, res.stdout
    assert srv.cli("verify", "--data-dir", str(target2), check=False).returncode == 0
    ro = new_server("restored-ro", (), data_dir=target2, env=srv.env_extra)
    roapi = rh.Api(ro.url, ro.admin_key)
    assert rh.pangea_ok(roapi.pangea("/v1/search", pangea_q))["count"] == pg_before["count"]
    r = roapi.pangea("/v1/log", {"event": rh.pangea_event("", "refused")})
    assert r.status_code == 503 and "keys/root-signing.1.pem" in r.json()["summary"], rh.short(r)
    r = roapi.h2o_create(rh.h2o_event("workspaces/x"))
    assert r.status_code == 503 and "keys/root-signing.1.pem" in r.json()["message"], rh.short(r)
    ro.stop()
    assert "read-only" in ro.log_since(), "no warning at start"


def test_kill9_during_restore(new_server, s3, tk_tmp):
    bucket = s3.new_bucket()
    srv = replicating_server(new_server, s3, s3.endpoint, bucket, tk_tmp, name="rk", max_events=200)
    api = rh.Api(srv.url, srv.admin_key)
    for b in range(rh.tier(30, 100)):
        r = api.pangea("/v2/log", {"events": [{"event": rh.pangea_event("", f"rk {b}.{i}")} for i in range(1000)]})
        assert r.status_code == 200
    wait_replicated(api, 300)
    total = committed(srv)
    srv.stop()
    target = tk_tmp / f"rk-restored-{uuid.uuid4().hex[:6]}"
    cmd = [str(srv.bin), "restore", "--from-archive", f"s3://{bucket}/{PREFIX}", "--data-dir", str(target)]
    p = subprocess.Popen(cmd, env=rh.child_env(srv.env_extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    building = target / "trailkeep.db.restoring"

    def started_loading() -> bool:
        # Rows are going in (the schema alone is well under 1 MiB): the restore is mid-way.
        try:
            return building.stat().st_size > (1 << 20)
        except FileNotFoundError:
            return False

    while not started_loading() and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.005)
    killed = p.poll() is None
    p.kill()
    p.wait()
    assert killed, "the restore finished before it could be killed; give it more events"
    assert not (target / "trailkeep.db").exists()
    # Nothing half-restored is served.
    half = rh.Server(target, (), env=srv.env_extra, log_dir=tk_tmp)
    with pytest.raises(rh.ServerStartError) as e:
        half.start(timeout=30)
    assert "interrupted" in e.value.output
    # Run again: complete, and it verifies.
    res = srv.cli("restore", "--from-archive", f"s3://{bucket}/{PREFIX}", "--data-dir", str(target), timeout=600)
    assert f"restored {total} events" in res.stdout
    assert srv.cli("verify", "--data-dir", str(target), check=False).returncode == 0
    rh.fig_set(F, "kill -9 during restore: restored events after re-run", total)


def test_purge_waits_for_replication(new_server, s3, proxy, tk_tmp):
    bucket = s3.new_bucket()
    srv = replicating_server(new_server, s3, proxy.url, bucket, tk_tmp, name="purge",
                             config='[retention]\ndefault = "2s"\ninterval = "1s"\n')
    api = rh.Api(srv.url, srv.admin_key)
    proxy.set_refusing(True)
    n = ingest_mixed(api, 3, "purge")
    time.sleep(6)  # several purge runs, every event well past its 2 s
    c = srv.db()
    purged = c.execute("SELECT COUNT(*) FROM events WHERE purged_at IS NOT NULL").fetchone()[0]
    c.close()
    assert purged == 0, "the purge removed content that was not replicated"
    r = api.request("POST", "/api/v1/retention/purge")
    assert r.status_code == 200 and r.json()["purged"] == 0, rh.short(r)
    proxy.set_refusing(False)
    wait_replicated(api, 120)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        c = srv.db()
        purged = c.execute("SELECT COUNT(*) FROM events WHERE purged_at IS NOT NULL").fetchone()[0]
        c.close()
        if purged >= n:
            break
        time.sleep(0.5)
    assert purged >= n, f"only {purged} of {n} purged after replication"
    # Their content is in the archive.
    stats = check_bucket(s3, bucket, n, 40)
    assert stats["missing"] == 0
    rh.fig_set(F, "purge held until replicated: events", n)


def test_secrets_never_shown(new_server, s3, tk_tmp):
    bucket = s3.new_bucket()
    env = s3.env("http://127.0.0.1:9")  # nothing listens there
    srv = new_server("secret", ("--replicate-to", f"s3://{bucket}/{PREFIX}", "--replication-interval", "1s"), env=env)
    api = rh.Api(srv.url, srv.admin_key)
    ingest_mixed(api, 1, "secret")
    deadline = time.monotonic() + 30
    while status(api)["consecutive_failures"] < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    st = status(api)
    shown = srv.cli("config", "show", "--replicate-to", f"s3://{bucket}/{PREFIX}").stdout
    assert "AWS_SECRET_ACCESS_KEY" in shown  # named as set, never its value
    res = srv.cli("verify", "--archive", f"s3://{bucket}/{PREFIX}", check=False, timeout=120)
    assert res.returncode != 0
    secret = s3.secret_key
    for where, text in [("status", json.dumps(st)), ("config show", shown), ("verify --archive", res.stdout + res.stderr),
                        ("server log", srv.log_since()), ("metrics", api.request("GET", "/metrics").text)]:
        assert secret not in text, f"the secret appears in the {where}"
    bad = srv.cli("serve", "--replicate-to", f"s3://AKIA:{secret}@{bucket}/x", "--data-dir", str(tk_tmp / "nope"),
                  check=False, timeout=30)
    assert bad.returncode != 0 and secret not in bad.stdout + bad.stderr


def test_large_objects_use_multipart_and_survive_a_kill(new_server, s3, proxy, tk_tmp):
    """An object over 5 MiB goes up as a multipart upload (5 MiB parts); kill -9 while its parts are in flight,
    and after the restart the same object is uploaded again, exactly once."""
    bucket = s3.new_bucket()
    srv = replicating_server(new_server, s3, proxy.url, bucket, tk_tmp, name="multipart", max_events=100_000,
                             interval="30s")
    api = rh.Api(srv.url, srv.admin_key)
    # Random text compresses badly: ~40 MB of JSON, committed within one interval, gives an
    # object of well over 10 MiB (three parts or more).
    proxy.hold_next(lambda m, p: m == "PUT" and "partNumber=2" in p, "before")
    for b in range(40):
        r = api.pangea("/v2/log", {"events": [{"event": rh.pangea_event("", os.urandom(384).hex())} for _ in range(1000)]})
        assert r.status_code == 200, rh.short(r)
    assert proxy.holding.wait(120), "no second part of a multipart upload was seen"
    srv.kill()
    proxy.release.set()
    srv.start()
    api = rh.Api(srv.url, srv.admin_key)
    wait_replicated(api, 300)
    total = committed(srv)
    stats = check_bucket(s3, bucket, total, 100_000)
    assert_exactly_once(stats, total)
    assert proxy.counts.get("POST", 0) >= 2, proxy.counts  # CreateMultipartUpload (and Complete)
    record("kill -9 during a multipart upload", total, stats, objects=stats["objects"],
           largest_object_mb=round(max(len(s3.get(bucket, k)) for k in s3.keys(bucket, PREFIX + "/events/")) / 2**20, 1))
    assert verify_archive(srv, bucket).returncode == 0


def test_configs_survive_a_restore(new_server, s3, tk_tmp):
    """A trail with a custom-schema config and a server-signing config (two key versions),
    replicated to moto and restored: each event in its config, custom-field filters, the SDK's
    signature checks, `trailkeep verify`; writes to the signing config wait for its key file."""
    import pangea.services.audit.audit as audit_module
    audit_module.get_arweave_published_roots = lambda tree_name, tree_sizes: {}
    from pangea.config import PangeaConfig
    from pangea.services import Audit
    from pangea.services.audit.models import EventVerification as V

    bucket = s3.new_bucket()
    srv = replicating_server(new_server, s3, s3.endpoint, bucket, tk_tmp, name="cfg", max_events=10)
    api = rh.Api(srv.url, srv.admin_key)
    schema = tk_tmp / f"schema-{uuid.uuid4().hex[:6]}.json"
    schema.write_text(json.dumps({"fields": [{"id": "message", "type": "text", "required": True},
                                             {"id": "amount", "type": "integer"}, {"id": "shop", "type": "string"}]}))
    dd = ("--data-dir", str(srv.data_dir))
    pay = srv.cli("configs", "create", "--name", "payments", "--schema", str(schema), *dd).stdout.strip().splitlines()[-1]
    signed = srv.cli("configs", "create", "--name", "signed", "--signing", "server", *dd).stdout.strip().splitlines()[-1]
    for i in range(6):
        r = api.pangea("/v1/log", {"event": rh.pangea_event("", f"plain {i}")})
        assert r.status_code == 200, rh.short(r)
        r = api.pangea("/v2/log", {"config_id": pay, "events": [
            {"event": {"message": f"pay {i}.{k}", "amount": 100 * k + i, "shop": "acme"}} for k in range(4)]})
        assert r.status_code == 200, rh.short(r)
        if i == 3:
            srv.cli("keys", "rotate-signing", "--config", signed, *dd)
        r = api.pangea("/v1/log", {"config_id": signed, "event": {"message": f"signed {i}"}})
        assert r.status_code == 200, rh.short(r)
    wait_replicated(api)
    total = committed(srv)
    declared = json.loads(s3.get(bucket, f"{PREFIX}/configs.json"))
    signing = next(c for c in declared["configs"] if c["id"] == signed)
    assert [k["version"] for k in signing["public_keys"]] == [1, 2] and "PRIVATE" not in json.dumps(declared)
    srv.stop()
    res = verify_archive(srv, bucket)
    assert res.returncode == 0, res.stdout + res.stderr

    target = tk_tmp / f"restored-cfg-{uuid.uuid4().hex[:6]}"
    res = srv.cli("restore", "--from-archive", f"s3://{bucket}/{PREFIX}", "--data-dir", str(target), timeout=600)
    assert f"restored {total} events" in res.stdout, res.stdout
    res = srv.cli("verify", "--data-dir", str(target), check=False, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    restored = new_server("restored-cfg", ("--no-self-audit",), data_dir=target, env=srv.env_extra)
    tdd = ("--data-dir", str(target))
    default_key = restored.cli("keys", "create", "--name", "d", "--scope", "search", *tdd).stdout.strip().splitlines()[-1]
    pay_key = restored.cli("keys", "create", "--name", "p", "--scope", "search", "--config", pay,
                           *tdd).stdout.strip().splitlines()[-1]
    sign_key = restored.cli("keys", "create", "--name", "s", "--scope", "search", "--scope", "ingest", "--config", signed,
                            *tdd).stdout.strip().splitlines()[-1]

    def audit(key):
        return Audit(key, config=PangeaConfig(base_url_template=restored.url + "/pangea"))

    seen = audit(default_key).search(query="").result
    assert seen.count == 6 and all(e.envelope.event["message"].startswith("plain") for e in seen.events)
    assert audit(pay_key).search(query="").result.count == 24
    big = audit(pay_key).search(query="amount>=200 shop:acme").result
    assert big.count == 12 and all(e.envelope.event["amount"] >= 200 for e in big.events)
    s = audit(sign_key).search(query="", verify_consistency=True).result
    assert s.count == 6
    for e in s.events:
        assert e.signature_verification == V.PASS and e.membership_verification == V.PASS
    # The event-signing private key is not in the archive: writes to its config are refused.
    r = rh.Api(restored.url, sign_key).pangea("/v1/log", {"event": {"message": "new"}})
    assert r.status_code == 503 and "not installed" in r.json()["summary"], rh.short(r)
    restored.stop()
