"""F1: the SIGKILL crash loop (design/reliability.md §1.1, §2 crash invariants I1–I9, §7 F1).

Several clients ingest through both APIs at once (H2O single create and ``:batchCreate``,
Pangea ``v1/log``, ``v2/log`` and ``v2/log_async``) and record every request in an ack log:

* ``ok``: a 2xx reply: acknowledged, must be stored exactly once from then on (I1, I2);
* ``fail``: a definite non-2xx reply: nothing may be stored (§1.1 "4xx/5xx: nothing stored");
* ``unsent``: the connection was refused: nothing can be stored;
* ``info``: the connection broke mid-request: in doubt (Jepsen's ``:info``).

A watcher records every signed root ``v1/root`` hands out. The server is killed with SIGKILL at
a random moment of the load (U(0.2 s, 3 s)), ``trailkeep verify`` runs on the dead data
directory, the server is restarted on it, and then, before load resumes:

* every acknowledged event is present exactly once (the database is read directly, read-only),
  with the hash the Pangea reply gave; no event id or token is stored twice;
* every in-doubt batch is all there or not at all (I3); in-doubt H2O requests are retried with
  the same eventIds and content and must then succeed (idempotent, I9); in-doubt Pangea
  requests (no client-side id) are resolved by looking: 0 or all of their events;
* every root handed out before the crash is still the root of its size, in the database and via
  ``v1/root {"tree_size": s}``: the log never re-signs a size with another root (no fork, no
  rollback); the chain of Pangea consistency proofs across the crash verifies with the SDK's
  own code; the newest signed root's Ed25519 signature verifies with the unchanged public key.

CI tier: K=20 crashes (``TRAILKEEP_CRASHES`` overrides); long tier (``TRAILKEEP_LONG=1``): K=200,
three clients per kind (two in CI) and larger batches.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import pytest
import requests

import relharness as rh

pytestmark = pytest.mark.crash

K = int(os.environ.get("TRAILKEEP_CRASHES", rh.tier(20, 200)))
CLIENTS_PER_KIND = rh.tier(2, 3)
MAX_BATCH = rh.tier(40, 60)
KILL_WINDOW_S = (0.2, 3.0)
WORKSPACES = ["workspaces/crash-a", "workspaces/crash-b", "workspaces/crash-c", ""]
SEED = int(os.environ.get("TRAILKEEP_SEED", str(int(time.time()))))
MAX_CHAIN_STEPS_PER_EPOCH = rh.tier(120, 400)
F = "crash_loop"


@dataclass
class Req:
    kind: str  # h2o_single | h2o_batch | pg_single | pg_bulk | pg_async
    ids: List[str]  # H2O event ids, or Pangea message tokens
    path: str
    body: str
    epoch: int
    state: str = "pending"  # ok | fail | unsent | info
    http: Optional[int] = None
    hashes: Dict[str, str] = field(default_factory=dict)
    detail: str = ""
    resolved: Optional[str] = None  # for info: retried | present | absent

    @property
    def h2o(self) -> bool:
        return self.kind.startswith("h2o")


class Shared(rh.Gate):
    def __init__(self, seed: int):
        super().__init__()
        self.reqs: List[Req] = []
        self.hangs = 0
        self.seed = seed

    def record(self, r: Req) -> None:
        with self.lock:
            self.reqs.append(r)

    def snapshot_reqs(self) -> List[Req]:
        with self.lock:
            return list(self.reqs)


def _token() -> str:
    return "tk-" + uuid.uuid4().hex


def build(kind: str, rng: random.Random, epoch: int) -> Req:
    if kind == "h2o_single":
        eid = str(uuid.uuid4())
        ev = rh.h2o_event(rng.choice(WORKSPACES), token=eid.replace("-", ""))
        return Req(kind, [eid], f"/v1/events?eventId={eid}", json.dumps(ev), epoch)
    if kind == "h2o_batch":
        n = rng.randint(2, MAX_BATCH)
        items = []
        for _ in range(n):
            eid = str(uuid.uuid4())
            items.append({"eventId": eid, "event": rh.h2o_event(rng.choice(WORKSPACES), token=eid.replace("-", ""))})
        return Req(kind, [i["eventId"] for i in items], "/v1/events:batchCreate", json.dumps({"requests": items}), epoch)
    if kind == "pg_single":
        tok = _token()
        body = {"event": rh.pangea_event(rng.choice(WORKSPACES), message=tok, target=f"single-{tok}"),
                "verbose": rng.random() < 0.3}
        return Req(kind, [tok], "/pangea/v1/log", json.dumps(body), epoch)
    # Pangea bulk, synchronous or async: all events of one request share one target, so the
    # batch can be found again as a whole.
    n = rng.randint(2, MAX_BATCH)
    bid = "batch-" + uuid.uuid4().hex
    toks = [_token() for _ in range(n)]
    ws = rng.choice(WORKSPACES)
    events = [{"event": rh.pangea_event(ws if rng.random() < 0.7 else rng.choice(WORKSPACES), message=t, target=bid)}
              for t in toks]
    path = "/pangea/v2/log" if kind == "pg_bulk" else "/pangea/v2/log_async"
    return Req(kind, toks, path, json.dumps({"events": events, "verbose": False}), epoch)


def classify(req: Req, r: requests.Response) -> None:
    req.http = r.status_code
    if not 200 <= r.status_code < 300:
        req.state = "fail"
        req.detail = rh.short(r, 200)
        return
    j = r.json()  # ValueError -> in doubt (the reply was cut)
    if req.kind == "h2o_single":
        assert j["event"]["name"] == f"events/{req.ids[0]}"
    elif req.kind == "h2o_batch":
        names = [e["name"] for e in j["events"]]
        if j.get("failedRequests") or names != [f"events/{i}" for i in req.ids]:
            req.state = "fail"  # a valid batch must be stored whole; any failed item is an anomaly
            req.detail = "valid batch partly failed: " + json.dumps(j.get("failedRequests"))[:200]
            return
    elif req.kind == "pg_single":
        req.hashes[req.ids[0]] = j["result"]["hash"]
    elif req.kind == "pg_bulk":
        res = j["result"]["results"]
        assert len(res) == len(req.ids)
        for t, x in zip(req.ids, res):
            req.hashes[t] = x["hash"]
    elif req.kind == "pg_async":
        assert r.status_code == 202 and j["status"] == "Accepted", rh.short(r)
    req.state = "ok"


def client(sh: Shared, kind: str, key: str, seed: int) -> None:
    rng = random.Random(seed)
    s = requests.Session()
    s.trust_env = False
    hdr = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    while True:
        sh.go.wait(timeout=0.5)
        if sh.stop:
            return
        got = sh.begin()
        if got is None:
            continue
        url, epoch = got
        req = build(kind, rng, epoch)
        try:
            try:
                r = s.post(url + req.path, data=req.body.encode(), headers=hdr, timeout=(2, 30))
                classify(req, r)
            except requests.exceptions.ConnectionError as e:
                refused = "NewConnectionError" in repr(e) or "Connection refused" in repr(e)
                req.state = "unsent" if refused else "info"
                req.detail = type(e).__name__
            except requests.exceptions.Timeout as e:
                req.state = "info"
                req.detail = f"timeout: {type(e).__name__}"
                with sh.lock:
                    sh.hangs += 1
            except (ValueError, KeyError, AssertionError, requests.exceptions.RequestException) as e:
                req.state = "info"
                req.detail = f"cut reply: {type(e).__name__}: {str(e)[:100]}"
        finally:
            sh.end()
        sh.record(req)
        if req.state == "unsent":
            time.sleep(0.02)


class Checker:
    """The checks run after every restart, before load resumes."""

    def __init__(self, sh: Shared, srv: rh.Server, key: str):
        self.sh = sh
        self.srv = srv
        self.key = key
        self.problems: List[str] = []
        self.public_key: Optional[str] = None
        self.chain_verified_to = 0  # consistency proofs verified for sizes 2..chain_verified_to
        self.chain_hashes: Dict[int, str] = {}

    def problem(self, what: str, figure: Optional[str] = None, n: int = 1) -> None:
        if figure:
            rh.fig_add(F, figure, n)
        if len(self.problems) < 200:
            self.problems.append(what)

    def scan(self) -> Tuple[Counter, Counter, Dict[str, str], Dict[int, str]]:
        c = self.srv.db()
        try:
            ids, toks, hashes = Counter(), Counter(), {}
            q = ("SELECT json_extract(envelope,'$.event.event_id'), json_extract(envelope,'$.event.message'),"
                 " lower(hex(hash)) FROM events")
            for eid, msg, h in c.execute(q):
                if eid:
                    ids[eid] += 1
                elif msg and msg.startswith("tk-"):
                    toks[msg] += 1
                    hashes[msg] = h
            roots = {idx + 1: h for idx, h in c.execute("SELECT idx, lower(hex(root_hash)) FROM buffers")}
        finally:
            c.close()
        return ids, toks, hashes, roots

    def run(self, epoch: int) -> None:
        api = rh.Api(self.srv.url, self.key)
        t0 = time.monotonic()
        ids, toks, hashes, roots = self.scan()

        def count(req: Req, x: str) -> int:
            return ids[x] if req.h2o else toks[x]

        # 1. in-doubt requests: all-or-nothing, then resolve (retry H2O; look for Pangea).
        for req in self.sh.snapshot_reqs():
            if req.state != "info" or req.resolved:
                continue
            present = sum(1 for x in req.ids if count(req, x) >= 1)
            if present not in (0, len(req.ids)):
                self.problem(f"epoch {epoch}: in-doubt {req.kind} of {len(req.ids)} events is partly stored "
                             f"({present} present): batch atomicity broken", "batch_atomicity_violations")
            rh.fig_add(F, "in_doubt_present_after_crash" if present else "in_doubt_absent_after_crash")
            if req.h2o:
                r = api.request("POST", req.path, data=req.body.encode(), headers=rh.JSON_HDR)
                retry = Req(req.kind, req.ids, req.path, req.body, epoch)
                try:
                    classify(retry, r)
                except (ValueError, KeyError, AssertionError) as e:
                    retry.state, retry.detail = "fail", f"{e}: {rh.short(r)}"
                if retry.state != "ok":
                    self.problem(f"epoch {epoch}: retrying an in-doubt {req.kind} with the same eventIds and "
                                 f"content did not succeed: {retry.detail or rh.short(r)}", "in_doubt_retry_failures")
                    continue
                req.resolved = "retried"
                for x in req.ids:
                    ids[x] = max(ids[x], 1)  # just stored by the retry if it was absent
            else:
                req.resolved = "present" if present else "absent"
            rh.fig_add(F, "in_doubt_resolved")
        if any(r.resolved == "retried" for r in self.sh.snapshot_reqs()):
            ids, toks, hashes, roots = self.scan()

        # 2. every acked event exactly once with its hash; nothing stored for definite failures.
        lost, dups, bad_hash, stored_fail = [], [], [], []
        for req in self.sh.snapshot_reqs():
            must_exist = req.state == "ok" or req.resolved in ("retried", "present")
            must_not = req.state in ("fail", "unsent") or req.resolved == "absent"
            for x in req.ids:
                n = count(req, x)
                if must_exist:
                    if n == 0:
                        lost.append(f"{req.kind} {x} (acked in epoch {req.epoch}, HTTP {req.http})")
                    elif n > 1:
                        dups.append(f"{req.kind} {x} stored {n} times")
                    h = req.hashes.get(x)
                    if h and hashes.get(x) != h:
                        bad_hash.append(f"{x}: acked hash {h}, stored {hashes.get(x)}")
                elif must_not and n:
                    stored_fail.append(f"{req.kind} {x}: {req.state} ({req.detail[:120]}) but stored")
        dups += [f"event id {k} stored {v} times" for k, v in ids.items() if v > 1]
        dups += [f"token {k} stored {v} times" for k, v in toks.items() if v > 1]
        dups = sorted(set(dups))
        if lost:
            self.problem(f"epoch {epoch}: {len(lost)} acknowledged event(s) lost, e.g. {lost[:3]}")
        if dups:
            self.problem(f"epoch {epoch}: {len(dups)} duplicate(s), e.g. {dups[:3]}")
        if bad_hash:
            self.problem(f"epoch {epoch}: {len(bad_hash)} acked hash(es) differ from the stored ones, e.g. {bad_hash[:2]}")
        if stored_fail:
            self.problem(f"epoch {epoch}: {len(stored_fail)} event(s) of non-acknowledged (definite failure) "
                         f"requests are stored, e.g. {stored_fail[:3]}")
        rh.fig_set(F, "acked_then_lost_last_check", len(lost))
        rh.fig_max(F, "acked_then_lost", len(lost))
        rh.fig_max(F, "duplicates", len(dups))
        rh.fig_max(F, "acked_hash_mismatches", len(bad_hash))
        rh.fig_max(F, "failed_requests_but_stored_events", len(stored_fail))

        # 3. roots handed out before: same hash at the same size, in the database and via v1/root.
        with self.sh.lock:
            recorded = dict(self.sh.roots)
            live_forks = list(self.sh.live_forks)
        forks = [f"size {s}: handed out {h} (epoch {e}), database has {roots.get(s, 'nothing (rollback)')}"
                 for s, (h, e) in recorded.items() if roots.get(s) != h]
        forks += live_forks
        if forks:
            self.problem(f"epoch {epoch}: {len(forks)} root fork(s)/rollback(s): {forks[:3]}")
        rh.fig_max(F, "root_forks", len(forks))
        rh.fig_set(F, "roots_handed_out", len(recorded))
        recent = [s for s, (_, e) in recorded.items() if e >= epoch - 1]
        rng = random.Random(self.sh.seed + epoch)
        older = [s for s in recorded if s not in recent]
        sample = rng.sample(recent, min(25, len(recent))) + rng.sample(older, min(10, len(older)))
        for s in sample:
            r = api.root(s)
            try:
                got = r.json()["result"]["data"]["root_hash"]
            except (ValueError, KeyError, TypeError):
                got = None
            rh.fig_add(F, "roots_rechecked_via_api")
            if got != recorded[s][0]:
                self.problem(f"epoch {epoch}: v1/root tree_size={s} now gives {got} ({rh.short(r, 150)}); "
                             f"handed out {recorded[s][0]} before", "root_forks_via_api")

        # 4. the chain of consistency proofs across the crash (SDK's verify_consistency_proof).
        size = max(roots) if roots else 0
        start = max(2, self.chain_verified_to + 1)
        if size - start + 1 > MAX_CHAIN_STEPS_PER_EPOCH:
            start = size - MAX_CHAIN_STEPS_PER_EPOCH + 1  # older sizes are covered by hash equality + verify
        prev = roots.get(start - 1)
        for s in range(start, size + 1):
            r = api.root(s)
            try:
                d = r.json()["result"]["data"]
            except (ValueError, KeyError, TypeError):
                self.problem(f"epoch {epoch}: v1/root tree_size={s} failed: {rh.short(r, 150)}", "consistency_failures")
                break
            if d["root_hash"] != roots.get(s):
                self.problem(f"epoch {epoch}: v1/root size {s} = {d['root_hash']} but the database has {roots.get(s)}",
                             "consistency_failures")
            if prev is not None and not rh.check_consistency_step(prev, d):
                self.problem(f"epoch {epoch}: consistency proof {s - 1} -> {s} does not verify", "consistency_failures")
            rh.fig_add(F, "consistency_steps_verified")
            prev = d["root_hash"]
        self.chain_verified_to = max(self.chain_verified_to, size)

        # 5. the newest signed root's signature, with the public key of the first start.
        pk = api.request("GET", "/api/v1/public-key").json()["public_key"]
        if self.public_key is None:
            self.public_key = pk
        elif pk != self.public_key:
            self.problem(f"epoch {epoch}: the server's public key changed across a restart", "signature_failures")
        if size:
            r = api.request("GET", f"/api/v1/roots/{size}")
            ok = r.status_code == 200 and rh.verify_root_signature(self.public_key, r.json())
            rh.fig_add(F, "signatures_verified")
            if not ok or r.json().get("root_hash") != roots.get(size):
                self.problem(f"epoch {epoch}: signed root {size} does not verify: {rh.short(r, 200)}",
                             "signature_failures")
        rh.fig_add(F, "check_seconds", round(time.monotonic() - t0, 2))


def test_crash_loop(new_server, tk_tmp):
    rng = random.Random(SEED)
    srv = new_server("crash", start=True)
    key = srv.create_key(["ingest"], name="crash-ingest")
    sh = Shared(SEED)
    checker = Checker(sh, srv, key)
    rh.fig_set(F, "seed", SEED)
    rh.fig_set(F, "crashes_planned", K)
    kinds = ["h2o_single", "h2o_batch", "pg_single", "pg_bulk", "pg_async"]
    threads = [threading.Thread(target=client, args=(sh, k, key, SEED * 100 + i * 10 + j), daemon=True,
                                name=f"{k}-{j}")
               for i, k in enumerate(kinds) for j in range(CLIENTS_PER_KIND)]
    threads.append(threading.Thread(target=rh.watch_roots, args=(sh, key, 0.02), daemon=True, name="roots"))
    for t in threads:
        t.start()
    restart_times: List[float] = []
    verify_times: List[float] = []
    crashes = 0
    aborted = None
    try:
        for epoch in range(1, K + 1):
            checker.run(epoch)
            with sh.lock:
                sh.url, sh.epoch = srv.url, epoch
                sh.go.set()
            time.sleep(rng.uniform(*KILL_WINDOW_S))
            with sh.lock:
                sh.go.clear()
            srv.kill()
            crashes += 1
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                with sh.lock:
                    if sh.in_flight == 0:
                        break
                time.sleep(0.02)
            else:
                checker.problem(f"epoch {epoch}: client requests still pending 40 s after the kill", "hangs")
            t0 = time.monotonic()
            v = srv.verify()
            verify_times.append(time.monotonic() - t0)
            rh.fig_add(F, "verify_runs")
            if v.returncode != 0 or not v.stdout.startswith("ok:"):
                checker.problem(f"epoch {epoch}: `trailkeep verify` on the crashed data dir failed rc={v.returncode}: "
                                f"{(v.stdout + v.stderr).strip()[:400]}", "verify_failures")
            try:
                srv.start()
            except rh.ServerStartError as e:
                aborted = (f"epoch {epoch}: the server refused to restart after SIGKILL (rc={e.returncode}): "
                           f"{e.output.strip()[-600:]}")
                rh.fig_add(F, "restart_failures")
                break
            restart_times.append(srv.last_start_s)
            rh.fig_set(F, "crashes_survived", crashes)
        if aborted is None:
            checker.run(K + 1)
    finally:
        with sh.lock:
            sh.stop = True
            sh.go.set()
        for t in threads:
            t.join(timeout=30)

    reqs = sh.snapshot_reqs()
    st = Counter(r.state for r in reqs)
    rh.fig_set(F, "crashes_survived", crashes if aborted is None else crashes - 1)
    rh.fig_set(F, "requests_total", len(reqs))
    rh.fig_set(F, "acked_requests", st["ok"])
    rh.fig_set(F, "acked_events", sum(len(r.ids) for r in reqs if r.state == "ok"))
    rh.fig_set(F, "in_doubt_requests", st["info"])
    rh.fig_set(F, "in_doubt_events", sum(len(r.ids) for r in reqs if r.state == "info"))
    rh.fig_set(F, "failed_requests", st["fail"])
    rh.fig_set(F, "unsent_requests", st["unsent"])
    rh.fig_set(F, "client_timeouts", sh.hangs)
    rh.fig_set(F, "acked_by_kind", dict(Counter(r.kind for r in reqs if r.state == "ok")))
    if restart_times:
        rh.fig_set(F, "restart_s_p50", round(statistics.median(restart_times), 3))
        rh.fig_set(F, "restart_s_max", round(max(restart_times), 3))
    if verify_times:
        rh.fig_set(F, "verify_s_max", round(max(verify_times), 3))
    fails = [r for r in reqs if r.state == "fail"]
    for r in fails[:5]:
        checker.problem(f"a valid {r.kind} request got a definite failure (epoch {r.epoch}): {r.detail}")
    if fails:
        rh.fig_note(F, f"{len(fails)} valid request(s) answered non-2xx, e.g. {fails[0].detail[:150]}")

    # Graceful stop at the end: exit 0, and the data directory verifies.
    rc = srv.stop() if srv.running else None
    v = srv.verify()
    if srv.url and rc not in (0, None):
        checker.problem(f"the server exited {rc} after SIGTERM at the end: {srv.log_tail(10)}")
    if v.returncode != 0:
        checker.problem(f"final `trailkeep verify` failed rc={v.returncode}: {(v.stdout + v.stderr).strip()[:400]}",
                        "verify_failures")
    else:
        rh.fig_set(F, "final_verify", v.stdout.strip())
    ack_log = tk_tmp / "crash-ack-log.ndjson"
    with open(ack_log, "w") as f:
        for r in reqs:
            f.write(json.dumps({"kind": r.kind, "epoch": r.epoch, "state": r.state, "http": r.http, "n": len(r.ids),
                                "first": r.ids[0], "resolved": r.resolved, "detail": r.detail}) + "\n")
    assert aborted is None, aborted
    assert st["ok"] > K, f"too little load got through to judge anything: {dict(st)}"
    assert not checker.problems, rh.problems_msg(f"crash loop (seed {SEED})", checker.problems, 40)
