"""F3: power cuts (design/reliability.md §1.2, §2 ``lossyfs``, §7 F3; issue 17 item 4).

``kill -9`` never loses what the kernel already holds, so it cannot tell ``synchronous=FULL`` from
``NORMAL``. Here the server's data directory is a FUSE mount (``lossyfs.py``) that keeps every
write not yet fsynced in memory and throws it away at a power cut (file data, sizes, truncations
and directory operations not made durable by a directory fsync: LazyFS semantics). Each cut:

1. clients ingest through both APIs (H2O create and ``:batchCreate``, Pangea ``v1/log``,
   ``v2/log`` and ``v2/log_async``, verbose or not) and keep an ack log: what was acknowledged,
   with the hashes, envelopes and roots the replies carried; a watcher records every signed
   root ``v1/root`` hands out;
2. after a seeded random moment (U(0.3 s, 2.5 s)) the server is SIGKILLed with requests in flight
   and the file system drops everything unsynced (its report of what it dropped is kept); it is
   mounted again from what was durable;
3. ``trailkeep verify`` runs on the surviving data directory; the checkpoint file is compared with
   the database (never ahead of it, same root at its size); the server starts on it;
4. every acknowledged event is present exactly once, byte-identical (Pangea: the stored envelope
   hashes to the acknowledged hash and equals the acknowledged envelope; H2O: same id and receive
   time) and at the same position as first seen; in-doubt batches are all or nothing; nothing of
   a definitely failed request is stored; every root handed out before (``v1/root`` and the
   ``unpublished_root`` of verbose replies) is still the root of its size, in the database and
   through ``v1/root``; the chain of Pangea consistency proofs verifies with the SDK's code, and
   the newest root's signature with the unchanged public key.

With ``synchronous=FULL`` (the server's setting) every cut must pass. With ``NORMAL`` (the
testing knob ``TRAILKEEP_UNSAFE_SQLITE_SYNCHRONOUS=normal``) the same checks must find losses:
acknowledged events gone or the checkpoint file ahead of the database, at least once; what was
lost is printed. After such a cut the NORMAL run restarts with ``--accept-db-state``, counts the
losses and carries on from what survived.

Tiers: CI 20 FULL cuts and 5 NORMAL cuts; long (``TRAILKEEP_LONG=1``) 200 and 20;
``TRAILKEEP_POWER_CUTS`` / ``TRAILKEEP_POWER_CUTS_NORMAL`` override, ``TRAILKEEP_SEED`` sets the
seed (printed). Every 40 cuts (``TRAILKEEP_POWER_CUTS_PER_DIR``) the run moves to a fresh data
directory, so the checks of later cuts do not read an ever longer log. Needs root, ``/dev/fuse`` and Debian's ``fuse3``, ``python3-pyfuse3`` and
``python3-trio`` (``tests/run.sh`` installs them); without them the tests are SKIPPED with the
reason.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest
import requests

import relharness as rh

pytestmark = pytest.mark.powercut

CUTS = int(os.environ.get("TRAILKEEP_POWER_CUTS", rh.tier(20, 200)))
NORMAL_CUTS = int(os.environ.get("TRAILKEEP_POWER_CUTS_NORMAL", rh.tier(5, 20)))
SEED = int(os.environ.get("TRAILKEEP_SEED", str(int(time.time()))))
LOAD_WINDOW_S = (0.3, 2.5)
CLIENTS_PER_KIND = rh.tier(1, 2)
MAX_BATCH = rh.tier(30, 60)
WORKSPACES = ["workspaces/cut-a", "workspaces/cut-b", ""]
MAX_CHAIN_STEPS = rh.tier(150, 400)
ROUND_CUTS = max(1, int(os.environ.get("TRAILKEEP_POWER_CUTS_PER_DIR", "40")))  # see power_cut_loop
KINDS = ["h2o_single", "h2o_batch", "pg_single", "pg_bulk", "pg_async"]

DEBIAN_PYTHON = "/usr/bin/python3"
LOSSYFS = Path(__file__).resolve().parent / "lossyfs.py"
SYNC_ENV = "TRAILKEEP_UNSAFE_SQLITE_SYNCHRONOUS"


# ----------------------------------------------------------------------------------------- the mount
def lossyfs_unavailable(scratch: Path) -> Optional[str]:
    """None when a lossyfs mount works here, else why not (the tests then SKIP with it)."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine (FUSE is needed to simulate power cuts)"
    if not os.path.exists(DEBIAN_PYTHON):
        return f"{DEBIAN_PYTHON} not found (Debian's python3 carries python3-pyfuse3)"
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import pyfuse3, trio"], capture_output=True, text=True)
    if probe.returncode != 0:
        return ("Debian's python3-pyfuse3 and python3-trio are not installed "
                f"(apt-get install fuse3 python3-pyfuse3 python3-trio): {(probe.stderr.strip().splitlines() or [''])[-1][:200]}")
    if os.geteuid() != 0 and not shutil.which("fusermount3"):
        return "not root and no fusermount3 (package fuse3)"
    m = LossyMount(scratch, "probe")
    try:
        m.mount()
        (m.mnt / "probe").write_bytes(b"x")
    except Exception as e:  # noqa: BLE001 - any failure to mount is the reason to skip
        return f"a FUSE mount is not permitted here: {e}"
    finally:
        m.close()
    return None


class LossyMount:
    """One lossyfs daemon over a STORE directory, mounted at MNT; ``cut()`` is the power cut."""

    def __init__(self, root: Path, name: str):
        self.store = root / f"{name}-store"
        self.mnt = root / f"{name}-mnt"
        self.report = root / f"{name}-cut-report.json"
        self.log = root / f"{name}-lossyfs.log"
        self.proc: Optional[subprocess.Popen] = None

    def mount(self, timeout: float = 30.0) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        if self.mounted():
            self._umount()
        self.mnt.mkdir(parents=True, exist_ok=True)
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([DEBIAN_PYTHON, str(LOSSYFS), str(self.store), str(self.mnt), "--cut-report",
                                      str(self.report)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=log)
        log.close()
        line = b""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line or b"mounted" in line:
                break
        if b"mounted" not in line:
            self.proc.kill()
            self.proc.wait()
            tail = self.log.read_text(errors="replace")[-600:]
            raise RuntimeError(f"lossyfs did not mount {self.mnt} (rc={self.proc.returncode}): {tail}")

    def cut(self) -> dict:
        """Power cut: the daemon drops everything unsynced and exits; the mount is torn down.
        Returns what it dropped (see ``lossyfs.py``)."""
        assert self.proc is not None
        try:
            self.report.unlink()
        except FileNotFoundError:
            pass
        self.proc.send_signal(signal.SIGUSR1)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self._umount()
        try:
            return json.loads(self.report.read_text())
        except (OSError, ValueError):
            return {}

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._umount()

    def mounted(self) -> bool:
        """From the mount table: ``os.path.ismount`` says False for a dead FUSE mount (ENOTCONN)."""
        target = os.path.realpath(self.mnt)
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4].replace("\\040", " ") == target for line in f)

    def _umount(self) -> None:
        for cmd in (["fusermount3", "-u", "-z", str(self.mnt)], ["umount", "-l", str(self.mnt)]):
            if not self.mounted():
                return
            if shutil.which(cmd[0]):
                rh.run(cmd, check=False)
        if self.mounted():
            raise RuntimeError(f"cannot unmount {self.mnt}")


@pytest.fixture(scope="module")
def lossy_root(tk_tmp):
    root = tk_tmp / "powercut"
    root.mkdir(exist_ok=True)
    why = lossyfs_unavailable(root)
    if why:
        rh.fig_note("power_cut", f"SKIPPED: {why}")
        pytest.skip(why)
    return root


# ----------------------------------------------------------------------------------------- load
@dataclass
class Req:
    kind: str
    ids: List[str]  # H2O event ids, or Pangea message tokens
    path: str
    body: str
    epoch: int
    verbose: bool = False
    state: str = "pending"  # ok | fail | unsent | info
    http: Optional[int] = None
    hashes: Dict[str, str] = field(default_factory=dict)  # Pangea: acked hash per token
    envelopes: Dict[str, str] = field(default_factory=dict)  # Pangea verbose: canonical acked envelope
    received: Dict[str, int] = field(default_factory=dict)  # H2O: acked receiveTime (µs) per event id
    root: Optional[str] = None  # Pangea v1/log verbose: unpublished_root
    detail: str = ""
    resolved: Optional[str] = None  # in doubt: present | absent
    lost_at: Optional[int] = None  # NORMAL: the cut that lost it (not checked again)

    @property
    def h2o(self) -> bool:
        return self.kind.startswith("h2o")

    def must_exist(self) -> bool:
        return self.lost_at is None and (self.state == "ok" or self.resolved == "present")

    def ack_record(self) -> dict:
        return {"kind": self.kind, "epoch": self.epoch, "state": self.state, "http": self.http, "ids": self.ids,
                "hashes": self.hashes, "received_us": self.received, "unpublished_root": self.root,
                "resolved": self.resolved, "lost_at_cut": self.lost_at, "detail": self.detail}


def parse_rfc3339_us(s: str) -> int:
    """'2026-12-06T13:40:49.123456789Z' -> microseconds since the epoch (fraction truncated)."""
    base, _, frac = s.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000 + int((frac + "000000")[:6])


def build(kind: str, rng: random.Random, epoch: int) -> Req:
    def token() -> str:
        return "pc-" + uuid.uuid4().hex

    if kind == "h2o_single":
        eid = str(uuid.uuid4())
        ev = rh.h2o_event(rng.choice(WORKSPACES), token=eid.replace("-", ""))
        return Req(kind, [eid], f"/v1/events?eventId={eid}", json.dumps(ev), epoch)
    if kind == "h2o_batch":
        items = []
        for _ in range(rng.randint(2, MAX_BATCH)):
            eid = str(uuid.uuid4())
            items.append({"eventId": eid, "event": rh.h2o_event(rng.choice(WORKSPACES), token=eid.replace("-", ""))})
        return Req(kind, [i["eventId"] for i in items], "/v1/events:batchCreate", json.dumps({"requests": items}), epoch)
    verbose = rng.random() < 0.5
    if kind == "pg_single":
        tok = token()
        body = {"event": rh.pangea_event(rng.choice(WORKSPACES), message=tok, target=f"single-{tok}"),
                "verbose": verbose}
        return Req(kind, [tok], "/pangea/v1/log", json.dumps(body), epoch, verbose=verbose)
    toks = [token() for _ in range(rng.randint(2, MAX_BATCH))]
    bid = "batch-" + uuid.uuid4().hex
    ws = rng.choice(WORKSPACES)
    events = [{"event": rh.pangea_event(ws, message=t, target=bid)} for t in toks]
    path = "/pangea/v2/log" if kind == "pg_bulk" else "/pangea/v2/log_async"
    return Req(kind, toks, path, json.dumps({"events": events, "verbose": verbose}), epoch, verbose=verbose)


def classify(req: Req, r: requests.Response) -> None:
    """Records a reply in the ack log (raises ValueError/KeyError/AssertionError on a cut reply)."""
    req.http = r.status_code
    if not 200 <= r.status_code < 300:
        req.state, req.detail = "fail", rh.short(r, 200)
        return
    j = r.json()
    if req.kind == "h2o_single":
        assert j["event"]["name"] == f"events/{req.ids[0]}"
        req.received[req.ids[0]] = parse_rfc3339_us(j["event"]["receiveTime"])
    elif req.kind == "h2o_batch":
        names = [e["name"] for e in j["events"]]
        if j.get("failedRequests") or names != [f"events/{i}" for i in req.ids]:
            req.state = "fail"
            req.detail = "valid batch partly failed: " + json.dumps(j.get("failedRequests"))[:200]
            return
        for i, e in zip(req.ids, j["events"]):
            req.received[i] = parse_rfc3339_us(e["receiveTime"])
    elif req.kind == "pg_single":
        res = j["result"]
        req.hashes[req.ids[0]] = res["hash"]
        if req.verbose:
            req.envelopes[req.ids[0]] = rh.canon(res["envelope"]).decode()
            req.root = res["unpublished_root"]
    elif req.kind == "pg_bulk":
        res = j["result"]["results"]
        assert len(res) == len(req.ids)
        for t, x in zip(req.ids, res):
            req.hashes[t] = x["hash"]
            if req.verbose:
                req.envelopes[t] = rh.canon(x["envelope"]).decode()
    else:  # pg_async: committed before the 202
        assert r.status_code == 202 and j["status"] == "Accepted", rh.short(r)
    req.state = "ok"


class Load(rh.Gate):
    """Clients (one thread per kind and slot) and a root watcher, gated by ``go``."""

    def __init__(self, key: str, seed: int):
        super().__init__()
        self.key = key
        self.reqs: List[Req] = []
        hdr = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.threads = [threading.Thread(target=self._client, args=(k, seed * 100 + i * 10 + j, hdr), daemon=True,
                                         name=f"pc-{k}-{j}")
                        for i, k in enumerate(KINDS) for j in range(CLIENTS_PER_KIND)]
        self.threads.append(threading.Thread(target=rh.watch_roots, args=(self, key, 0.05), daemon=True, name="pc-roots"))
        for t in self.threads:
            t.start()

    def run(self, url: str, epoch: int, seconds: float) -> None:
        with self.lock:
            self.url, self.epoch = url, epoch
            self.go.set()
        time.sleep(seconds)
        with self.lock:
            self.go.clear()

    def wait_idle(self, timeout: float = 40.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.in_flight == 0:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        with self.lock:
            self.stop = True
            self.go.set()
        for t in self.threads:
            t.join(timeout=30)

    def _client(self, kind: str, seed: int, hdr: dict) -> None:
        rng = random.Random(seed)
        s = requests.Session()
        s.trust_env = False
        while True:
            self.go.wait(timeout=0.5)
            if self.stop:
                return
            got = self.begin()
            if got is None:
                continue
            url, epoch = got
            req = build(kind, rng, epoch)
            try:
                try:
                    classify(req, s.post(url + req.path, data=req.body.encode(), headers=hdr, timeout=(2, 30)))
                except requests.exceptions.ConnectionError as e:
                    refused = "NewConnectionError" in repr(e) or "Connection refused" in repr(e)
                    req.state, req.detail = ("unsent" if refused else "info"), type(e).__name__
                except (ValueError, KeyError, AssertionError, requests.exceptions.RequestException) as e:
                    req.state, req.detail = "info", f"cut reply: {type(e).__name__}: {str(e)[:100]}"
            finally:
                self.end()
            with self.lock:
                self.reqs.append(req)
            if req.state == "unsent":
                time.sleep(0.02)

    def snapshot(self) -> List[Req]:
        with self.lock:
            return list(self.reqs)


# ----------------------------------------------------------------------------------------- checks
@dataclass
class Stored:
    ids: Counter  # H2O event id -> rows
    toks: Counter  # Pangea token -> rows
    rows: Dict[str, Tuple[int, int, str, int, str]]  # id/token -> (seq, buffer, hash, received_at, envelope)
    roots: Dict[int, str]  # tree size -> root hash
    root_set: Set[str]


def scan(srv: rh.Server) -> Stored:
    c = srv.db()
    try:
        ids, toks, rows = Counter(), Counter(), {}
        q = ("SELECT seq, buffer, origin, lower(hex(uid)), json_extract(envelope, '$.event.message'), lower(hex(hash)),"
             " received_at, envelope FROM events")
        for seq, buf, origin, uid, msg, h, recv, env in c.execute(q):
            if origin == 0:
                eid = str(uuid.UUID(uid))
                ids[eid] += 1
                rows[eid] = (seq, buf, h, recv, env)
            elif msg and msg.startswith("pc-"):
                toks[msg] += 1
                rows[msg] = (seq, buf, h, recv, env)
        roots = {idx + 1: h for idx, h in c.execute("SELECT idx, lower(hex(root_hash)) FROM buffers")}
    finally:
        c.close()
    return Stored(ids, toks, rows, roots, set(roots.values()))


class Run:
    """One power-cut run (FULL or NORMAL): the cut loop, the checks and their figures."""

    def __init__(self, mode: str, lossy: LossyMount, srv: rh.Server, load: Load, key: str, section: str):
        self.mode = mode
        self.lossy = lossy
        self.srv = srv
        self.load = load
        self.key = key
        self.F = section
        self.problems: List[str] = []
        self.first_seen: Dict[str, Tuple[int, int, str]] = {}  # id/token -> (seq, buffer, hash)
        self.chain_verified_to = 0
        self.public_key: Optional[str] = None
        self.losses: List[str] = []  # NORMAL: what each cut lost, for the report
        self.detected_cuts = 0

    def problem(self, text: str, figure: Optional[str] = None, n: int = 1) -> None:
        if figure:
            rh.fig_add(self.F, figure, n)
        if len(self.problems) < 300:
            self.problems.append(text)

    # ---------------------------------------------------------------- before the server starts
    def check_checkpoint_file(self, cut: int) -> Optional[str]:
        """The checkpoint file must not be ahead of (or forked from) the database."""
        cp = self.srv.checkpoint()
        if cp is None:
            return None
        st = scan(self.srv)
        size = max(st.roots) if st.roots else 0
        if cp["size"] > size:
            return (f"cut {cut}: the checkpoint file is ahead of the database: it records size {cp['size']}, "
                    f"the database holds {size} roots")
        if st.roots.get(cp["size"]) != cp["root_hash"]:
            return (f"cut {cut}: the checkpoint file's root at size {cp['size']} is {cp['root_hash']}, the database's "
                    f"is {st.roots.get(cp['size'])} (fork)")
        return None

    # ---------------------------------------------------------------- after the server started
    def check(self, cut: int) -> Dict[str, List[str]]:
        """Everything acknowledged before the cut is still there; returns what is not, by kind."""
        st = scan(self.srv)
        reqs = self.load.snapshot()

        def count(req: Req, x: str) -> int:
            return st.ids[x] if req.h2o else st.toks[x]

        found: Dict[str, List[str]] = {k: [] for k in ("lost", "dups", "changed", "stored_fail", "atomicity",
                                                        "forks")}
        for req in reqs:
            if req.state == "info" and req.resolved is None and req.lost_at is None:
                present = sum(1 for x in req.ids if count(req, x) >= 1)
                if present not in (0, len(req.ids)):
                    found["atomicity"].append(f"in-doubt {req.kind} of {len(req.ids)} events partly stored "
                                              f"({present} present)")
                req.resolved = "present" if present else "absent"
                rh.fig_add(self.F, f"in_doubt_{req.resolved}")
        for req in reqs:
            if req.must_exist():
                for x in req.ids:
                    n = count(req, x)
                    if n == 0:
                        found["lost"].append(f"{req.kind} {x} (acked before cut {req.epoch})")
                        continue
                    if n > 1:
                        found["dups"].append(f"{req.kind} {x} stored {n} times")
                    seq, buf, h, recv, env = st.rows[x]
                    bad = []
                    if hashlib.sha256(env.encode()).hexdigest() != h:
                        bad.append("stored envelope does not hash to the stored hash")
                    if x in req.hashes and req.hashes[x] != h:
                        bad.append(f"acked hash {req.hashes[x]}, stored {h}")
                    if x in req.envelopes and req.envelopes[x] != env:
                        bad.append("stored envelope differs from the acknowledged one")
                    if x in req.received and req.received[x] != recv:
                        bad.append(f"acked receiveTime {req.received[x]} µs, stored {recv}")
                    first = self.first_seen.setdefault(x, (seq, buf, h))
                    if first != (seq, buf, h):
                        bad.append(f"first seen at seq {first[0]} leaf {first[1]} hash {first[2][:16]}…, now seq {seq} "
                                   f"leaf {buf} hash {h[:16]}…")
                    if bad:
                        found["changed"].append(f"{req.kind} {x}: " + "; ".join(bad))
            elif req.state in ("fail", "unsent") or req.resolved == "absent":
                for x in req.ids:
                    if req.lost_at is None and count(req, x):
                        found["stored_fail"].append(f"{req.kind} {x}: {req.state} ({req.detail[:100]}) but stored")
        # Roots handed out: v1/root (size known) and verbose v1/log replies (unpublished_root).
        with self.load.lock:
            recorded = dict(self.load.roots)
            found["forks"] += self.load.live_forks
            self.load.live_forks.clear()
        for s, (h, e) in sorted(recorded.items()):
            if st.roots.get(s) != h:
                found["forks"].append(f"size {s}: handed out {h} (cut {e}), database has "
                                      f"{st.roots.get(s, 'nothing (rollback)')}")
        for req in reqs:
            if req.root and req.must_exist() and req.root not in st.root_set:
                found["forks"].append(f"unpublished_root {req.root} of a verbose v1/log acked before cut {req.epoch} "
                                      "is no root of the tree")
        self._check_via_api(cut, st, recorded)
        return found

    def _check_via_api(self, cut: int, st: Stored, recorded: Dict[int, Tuple[str, int]]) -> None:
        api = rh.Api(self.srv.url, self.key)
        rng = random.Random(SEED + cut)
        sizes = [s for s in recorded if s in st.roots]
        for s in rng.sample(sizes, min(20, len(sizes))):
            r = api.root(s)
            try:
                got = r.json()["result"]["data"]["root_hash"]
            except (ValueError, KeyError, TypeError):
                got = None
            rh.fig_add(self.F, "roots_rechecked_via_api")
            if got != recorded[s][0]:
                self.problem(f"cut {cut}: v1/root tree_size={s} gives {got} ({rh.short(r, 150)}); handed out "
                             f"{recorded[s][0]} before", "root_forks_via_api")
        size = max(st.roots) if st.roots else 0
        start = max(2, min(self.chain_verified_to, size) + 1, size - MAX_CHAIN_STEPS + 1)
        prev = st.roots.get(start - 1)
        for s in range(start, size + 1):
            r = api.root(s)
            try:
                d = r.json()["result"]["data"]
            except (ValueError, KeyError, TypeError):
                self.problem(f"cut {cut}: v1/root tree_size={s} failed: {rh.short(r, 150)}", "consistency_failures")
                break
            if d["root_hash"] != st.roots.get(s):
                self.problem(f"cut {cut}: v1/root size {s} = {d['root_hash']}, the database has {st.roots.get(s)}",
                             "consistency_failures")
            if prev is not None and not rh.check_consistency_step(prev, d):
                self.problem(f"cut {cut}: consistency proof {s - 1} -> {s} does not verify", "consistency_failures")
            rh.fig_add(self.F, "consistency_steps_verified")
            prev = d["root_hash"]
        self.chain_verified_to = size
        pk = api.request("GET", "/api/v1/public-key").json()["public_key"]
        if self.public_key is None:
            self.public_key = pk
        elif pk != self.public_key:
            self.problem(f"cut {cut}: the server's public key changed", "signature_failures")
        if size:
            r = api.request("GET", f"/api/v1/roots/{size}")
            rh.fig_add(self.F, "signatures_verified")
            if r.status_code != 200 or not rh.verify_root_signature(self.public_key, r.json()) \
                    or r.json().get("root_hash") != st.roots.get(size):
                self.problem(f"cut {cut}: signed root {size} does not verify: {rh.short(r, 200)}", "signature_failures")

    # ---------------------------------------------------------------- NORMAL: carry on after a loss
    def forget_lost(self, cut: int) -> None:
        """After a detected loss (NORMAL): what is gone is counted once and not expected again;
        roots handed out past the surviving tree are forgotten (they will be signed anew)."""
        st = scan(self.srv)
        for req in self.load.snapshot():
            if req.must_exist() and any((st.ids if req.h2o else st.toks)[x] == 0 for x in req.ids):
                req.lost_at = cut
        with self.load.lock:
            for s in [s for s, (h, _) in self.load.roots.items() if st.roots.get(s) != h]:
                del self.load.roots[s]
        for k in [k for k in self.first_seen if k not in st.rows]:
            del self.first_seen[k]
        self.chain_verified_to = min(self.chain_verified_to, max(st.roots) if st.roots else 0)


def start_server(srv: rh.Server, accept: bool = False) -> Optional[rh.ServerStartError]:
    args = list(srv.extra_args)
    if accept:
        srv.extra_args = args + ["--accept-db-state"]
    try:
        srv.start()
        return None
    except rh.ServerStartError as e:
        return e
    finally:
        srv.extra_args = args


def power_cut_loop(mode: str, cuts: int, root: Path, new_server, tk_tmp: Path) -> Tuple[List[str], List[str], int]:
    """All the cuts of one mode, in rounds of ``ROUND_CUTS`` on a fresh data directory each (every
    check reads the whole log, so one ever-growing log would make the long tier's later cuts slow).
    Returns (problems, what each detected cut lost, cuts with losses detected)."""
    section = f"power_cut_{mode.lower()}"
    t_start = time.monotonic()
    rng = random.Random(SEED if mode == "FULL" else SEED + 1)
    rh.fig_set(section, "seed", SEED)
    rh.fig_set(section, "synchronous", mode)
    rh.fig_set(section, "cuts_planned", cuts)
    problems: List[str] = []
    losses: List[str] = []
    detected = 0
    restart_s: List[float] = []
    done = 0
    while done < cuts and not (mode == "FULL" and problems):
        n = min(ROUND_CUTS, cuts - done)
        run = power_cut_round(mode, done // ROUND_CUTS, range(done + 1, done + n + 1), rng, root, new_server, tk_tmp,
                              restart_s)
        problems += run.problems
        losses += run.losses
        detected += run.detected_cuts
        done += n
    if restart_s:
        rh.fig_set(section, "restart_s_p50", round(statistics.median(restart_s), 3))
        rh.fig_set(section, "restart_s_max", round(max(restart_s), 3))
    rh.fig_set(section, "runtime_s", round(time.monotonic() - t_start, 1))
    return problems, losses, detected


def power_cut_round(mode: str, round_no: int, cut_numbers: range, rng: random.Random, root: Path, new_server,
                    tk_tmp: Path, restart_s: List[float]) -> Run:
    section = f"power_cut_{mode.lower()}"
    name = f"{mode.lower()}-{round_no}"
    lossy = LossyMount(root, name)
    lossy.mount()
    env = {SYNC_ENV: "normal"} if mode == "NORMAL" else {}
    srv = new_server(f"powercut-{name}", data_dir=lossy.mnt, start=False, env=env)
    load: Optional[Load] = None
    rh.fig_add(section, "data_directories")
    try:
        srv.start()
        key = srv.create_key(["ingest", "search"], name=f"powercut-{name}")
        srv.stop()  # a clean stop makes the key durable in either mode before the first cut
        srv.start()
        load = Load(key, SEED + round_no)
        run = Run(mode, lossy, srv, load, key, section)
        dropped_bytes, cuts_dropping_db = 0, 0
        for cut in cut_numbers:
            load.run(srv.url, cut, rng.uniform(*LOAD_WINDOW_S))
            srv.kill()
            if not load.wait_idle():
                run.problem(f"cut {cut}: client requests still pending 40 s after the kill", "hangs")
            report = lossy.cut()
            lost_db = sum(f["unsynced_bytes"] for f in report.get("files", [])
                          if f["path"].startswith("trailkeep.db") and not f["path"].endswith("-shm"))
            dropped_bytes += lost_db
            cuts_dropping_db += 1 if lost_db else 0
            lossy.mount()
            # 1. verify on the surviving data directory, the checkpoint file against the database
            v = srv.verify()
            rh.fig_add(section, "verify_runs")
            verify_ok = v.returncode == 0 and v.stdout.startswith("ok:")
            if not verify_ok:
                rh.fig_add(section, "verify_failures")
            ahead = run.check_checkpoint_file(cut)
            if ahead:
                rh.fig_add(section, "checkpoint_ahead_or_forked")
            # 2. restart on it
            err = start_server(srv)
            refused = err is not None
            if refused:
                rh.fig_add(section, "restarts_refused")
                if mode == "FULL":
                    run.problem(f"cut {cut}: the server refused to start after the power cut (rc={err.returncode}): "
                                f"{err.output.strip()[-500:]}", "restart_failures")
                    break
                err2 = start_server(srv, accept=True)
                if err2 is not None:
                    run.problem(f"cut {cut}: the server did not start even with --accept-db-state: "
                                f"{err2.output.strip()[-400:]}", "restart_failures")
                    break
            restart_s.append(srv.last_start_s)
            # 3. the acknowledged state
            found = run.check(cut)
            n_lost = len(found["lost"])
            rh.fig_add(section, "acked_then_lost", n_lost)
            rh.fig_add(section, "root_forks", len(found["forks"]))
            rh.fig_add(section, "duplicates", len(found["dups"]))
            rh.fig_add(section, "acked_changed", len(found["changed"]))
            rh.fig_add(section, "failed_requests_but_stored", len(found["stored_fail"]))
            rh.fig_add(section, "batch_atomicity_violations", len(found["atomicity"]))
            detected = bool(n_lost or ahead or refused or found["forks"] or not verify_ok)
            if mode == "FULL":
                if not verify_ok:
                    run.problem(f"cut {cut}: `trailkeep verify` failed rc={v.returncode}: "
                                f"{(v.stdout + v.stderr).strip()[:400]}")
                if ahead:
                    run.problem(ahead)
                for k, items in found.items():
                    if items:
                        run.problem(f"cut {cut}: {len(items)} {k.replace('_', ' ')}: {items[:3]}")
            elif detected:
                run.detected_cuts += 1
                what = []
                if n_lost:
                    kinds = Counter(x.split()[0] for x in found["lost"])
                    what.append(f"{n_lost} acknowledged event(s) lost ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))})")
                if ahead:
                    what.append(ahead.split(": ", 1)[1])
                if refused:
                    why = "rollback detected" if "rollback detected" in err.output else f"rc={err.returncode}"
                    what.append(f"serve refused to start ({why})")
                if found["forks"]:
                    what.append(f"{len(found['forks'])} root(s) handed out no longer in the tree")
                if not verify_ok:
                    out = (v.stdout + v.stderr).strip()
                    what.append(f"verify failed ({out.split(':', 1)[0][:40] if out else f'rc={v.returncode}'})")
                line = f"cut {cut}: " + "; ".join(what)
                run.losses.append(line)
                rh.fig_note(section, line)
                run.forget_lost(cut)
            rh.fig_add(section, "cuts_survived")
        # a last graceful stop: exit 0 and a data directory that verifies
        if srv.running:
            rc = srv.stop()
            if rc != 0 and mode == "FULL":
                run.problem(f"the server exited {rc} after SIGTERM at the end: {srv.log_tail(8)}")
            v = srv.verify()
            if mode == "FULL" and v.returncode != 0:
                run.problem(f"final `trailkeep verify` failed: {(v.stdout + v.stderr).strip()[:300]}", "verify_failures")
            rh.fig_set(section, "final_verify", (v.stdout or v.stderr).strip()[:120])
        reqs = load.snapshot()
        st = Counter(r.state for r in reqs)
        rh.fig_add(section, "requests_total", len(reqs))
        rh.fig_add(section, "acked_requests", st["ok"])
        rh.fig_add(section, "acked_events", sum(len(r.ids) for r in reqs if r.state == "ok"))
        by_kind = Counter(rh.FIGURES[section].get("acked_by_kind", {}))
        by_kind.update(r.kind for r in reqs if r.state == "ok")
        rh.fig_set(section, "acked_by_kind", dict(by_kind))
        rh.fig_add(section, "in_doubt_requests", st["info"])
        rh.fig_add(section, "failed_requests", st["fail"])
        rh.fig_add(section, "unsent_requests", st["unsent"])
        rh.fig_add(section, "roots_handed_out", load.roots_seen)
        rh.fig_add(section, "unpublished_roots_acked", sum(1 for r in reqs if r.root))
        rh.fig_add(section, "unsynced_db_wal_bytes_dropped", dropped_bytes)
        rh.fig_add(section, "cuts_that_dropped_unsynced_db_or_wal_bytes", cuts_dropping_db)
        fails = [r for r in reqs if r.state == "fail"]
        if fails and mode == "FULL":
            run.problem(f"{len(fails)} valid request(s) got a definite failure, e.g. {fails[0].detail[:200]}")
        with open(tk_tmp / f"powercut-{name}-ack-log.ndjson", "w") as f:
            for r in reqs:
                f.write(json.dumps(r.ack_record()) + "\n")
        return run
    finally:
        if load is not None:
            load.close()
        if srv.running:
            srv.kill()
        lossy.close()
        if os.environ.get("TRAILKEEP_KEEP_DATA") != "1":
            shutil.rmtree(lossy.store, ignore_errors=True)


def _put(path: Path, data: bytes, fsync: bool) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_lossyfs_keeps_exactly_what_was_made_durable(lossy_root):
    """The model itself: what fsync and directory fsync made durable survives a cut, nothing else."""
    m = LossyMount(lossy_root, "model")
    m.mount()
    try:
        d = m.mnt
        # Durable: data fsynced, names made durable by fsyncing the directory.
        _put(d / "kept", b"K" * 100_000, fsync=True)
        _put(d / "cp.tmp", b"v1", fsync=True)
        os.rename(d / "cp.tmp", d / "cp")
        _put(d / "doomed", b"D", fsync=True)
        os.mkdir(d / "sub")
        _fsync_dir(d)
        # Not durable: unsynced writes and truncation, a name never made durable, a rename and an
        # unlink without a directory fsync, an entry of a directory never fsynced, unsynced data.
        fd = os.open(d / "kept", os.O_RDWR)
        os.pwrite(fd, b"unsynced tail", 100_000)
        os.pwrite(fd, b"unsynced overwrite", 10)
        os.ftruncate(fd, 50_000)
        os.close(fd)
        _put(d / "nameless", b"fsynced data, name never made durable", fsync=True)
        _put(d / "cp.tmp", b"v2", fsync=True)
        os.rename(d / "cp.tmp", d / "cp")
        os.unlink(d / "doomed")
        _put(d / "sub" / "x", b"X", fsync=True)
        _put(d / "unsynced", b"U", fsync=False)
        # While mounted, readers see the latest state.
        assert (d / "kept").stat().st_size == 50_000
        assert (d / "kept").read_bytes()[:40] == b"K" * 10 + b"unsynced overwrite" + b"K" * 12
        assert (d / "cp").read_bytes() == b"v2" and not (d / "doomed").exists()
        assert sorted(os.listdir(d)) == ["cp", "kept", "nameless", "sub", "unsynced"]
        report = m.cut()
        m.mount()
        assert sorted(os.listdir(d)) == ["cp", "doomed", "kept", "sub"], report
        assert (d / "kept").read_bytes() == b"K" * 100_000, "unsynced writes and truncation must be dropped"
        assert (d / "cp").read_bytes() == b"v1", "a rename without a directory fsync must be undone"
        assert (d / "doomed").read_bytes() == b"D", "an unlink without a directory fsync must be undone"
        assert os.listdir(d / "sub") == [], "entries of a never-fsynced directory must be gone"
        dropped = {f["path"]: f for f in report["files"]}
        assert dropped["kept"]["truncated"] and dropped["kept"]["durable_size"] == 100_000, report
        assert "unsynced" in dropped, report
        root_change = next(x for x in report["dirs"] if x["path"] == "/")
        assert set(root_change["not_durable"]) == {"cp", "nameless", "unsynced"}, report
        assert root_change["comes_back"] == ["cp", "doomed"], report
    finally:
        m.close()


def test_power_cuts_lose_nothing_acknowledged_with_synchronous_full(lossy_root, new_server, tk_tmp):
    problems, _, _ = power_cut_loop("FULL", CUTS, lossy_root, new_server, tk_tmp)
    acked = rh.FIGURES["power_cut_full"].get("acked_requests", 0)
    assert not problems, rh.problems_msg(f"power cuts with synchronous=FULL (seed {SEED})", problems, 40)
    assert acked > CUTS, f"too little load got through to judge anything: {acked} acknowledged requests"


def test_power_cuts_with_synchronous_normal_are_detected(lossy_root, new_server, tk_tmp):
    """The same checks must catch what NORMAL loses: this is what shows the test can fail."""
    _, losses, detected = power_cut_loop("NORMAL", NORMAL_CUTS, lossy_root, new_server, tk_tmp)
    rh.fig_set("power_cut_normal", "cuts_with_losses_detected", detected)
    print(f"\nsynchronous=NORMAL (seed {SEED}), what the power cuts lost:")
    for line in losses or ["nothing"]:
        print(f"    {line}")
    assert detected >= 1, (
        f"{NORMAL_CUTS} power cuts with synchronous=NORMAL lost nothing the checks could see (seed {SEED}): "
        "the power-cut test would not notice unsynced commits")
