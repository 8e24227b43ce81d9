"""Storage faults (design/reliability.md §7 F4, F5, F6, F6b; §1.3 the checkpoint file).

* **Disk full** (F4): the data directory on an 8 MiB tmpfs. Ingestion until the disk is full must
  answer a clear, retryable 503 (507 also accepted, design F4) in the dialect's error shape, never
  a 500 or a 4xx; a rejected request stores nothing (no partial batch); reads keep working; when
  space returns (``mount -o remount,size=256m``) ingestion resumes within 5 s with the same PID;
  at the end every acknowledged event is there exactly once and ``trailkeep verify`` passes.
* **Checkpoint spare unavailable** (a checkpoint file that is not yet a two-slot file written in
  place is made from a spare allocated before the transaction, so this is where a full disk hits
  if SQLite itself did not; made deterministic): a clean 503 that stores nothing, writes resume
  without a restart.
* **Checkpoint file unwritable after COMMIT** (an I/O fault, made deterministic): not
  acknowledged and not a 5xx either (the reply is held: in doubt), a retry with the same id finds
  the event once, other writes get 503 and store nothing, writes resume without a restart.
* **Read-only database** (F5): while the server runs, the database files and the data directory
  are made immutable (``chattr +i`` on a loop-mounted ext4 image; a mounted filesystem cannot be
  remounted read-only while the server holds the database open for writing, and tmpfs does not
  enforce ``+i`` on open files). Writes must be refused with 503, reads still served, and writes
  resume without a restart once the flag is cleared. A start on a filesystem mounted read-only
  must either serve reads (writes 503) or exit non-zero with a clear message; never hang, never
  panic.
* **Corruption** (F6): with the server stopped, one event's stored bytes are altered (structure
  intact), a whole b-tree page is zeroed, or the database header is overwritten. ``verify`` must
  exit non-zero naming the problem (and, for the altered event, the event), without a panic; a
  start either refuses with a clear message or comes up and stays responsive.
* **Checkpoint mismatch** (§1.3, F6b): an older database restored under a newer
  ``checkpoint.latest`` → ``serve`` exits 2 with "rollback detected", ``verify`` reports
  ``size_regression`` (also with ``--against``); a checkpoint naming another root at its size →
  "fork detected" and ``inconsistent_with_trusted_checkpoint``; ``--accept-db-state`` overrides;
  a checkpoint behind the database (a crash between COMMIT and the file write) is accepted and
  rewritten; an unreadable checkpoint file is refused clearly.

Mount-based tests report SKIPPED with the reason when mounting is not permitted, never a pass.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import uuid
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

import relharness as rh

pytestmark = pytest.mark.faults
F = "faults"
RETRYABLE = (503, 507)


def _pad(n: int) -> str:
    return uuid.uuid4().hex * (n // 32 + 1)


def _h2o_batch_items(n: int, ws: str, pad: int) -> List[Tuple[str, dict]]:
    items = []
    for _ in range(n):
        eid = str(uuid.uuid4())
        items.append((eid, rh.h2o_event(ws, token=eid.replace("-", ""), metadata={"token": eid.replace("-", ""),
                                                                                    "pad": _pad(pad)[:pad]})))
    return items


def _pangea_bulk(n: int, tenant: str, pad: int) -> Tuple[List[str], dict]:
    toks = ["tk-" + uuid.uuid4().hex for _ in range(n)]
    return toks, {"events": [{"event": rh.pangea_event(tenant, message=t, new=_pad(pad)[:pad])} for t in toks]}


def _stored(srv: rh.Server) -> Tuple[set, set]:
    c = srv.db()
    try:
        ids, toks = set(), set()
        for eid, msg in c.execute("SELECT json_extract(envelope,'$.event.event_id'),"
                                  " json_extract(envelope,'$.event.message') FROM events"):
            if eid:
                ids.add(eid)
            elif msg:
                toks.add(msg)
        n = c.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        c.close()
    assert len(ids) + len(toks) <= n
    return ids, toks


class Ledger:
    """What the client was told: acknowledged and rejected ids/tokens."""

    def __init__(self):
        self.acked_ids, self.acked_toks, self.rejected_ids, self.rejected_toks = set(), set(), set(), set()

    def check(self, srv: rh.Server) -> List[str]:
        ids, toks = _stored(srv)
        c = srv.db()
        try:
            dup = c.execute("SELECT COUNT(*) - COUNT(DISTINCT uid) FROM events").fetchone()[0]
        finally:
            c.close()
        out = []
        lost = (self.acked_ids - ids) | (self.acked_toks - toks)
        extra = (self.rejected_ids & ids) | (self.rejected_toks & toks)
        if lost:
            out.append(f"{len(lost)} acknowledged event(s) missing, e.g. {sorted(lost)[:3]}")
        if extra:
            out.append(f"{len(extra)} event(s) of rejected requests stored anyway (a 5xx must store nothing), "
                       f"e.g. {sorted(extra)[:3]}")
        if dup:
            out.append(f"{dup} duplicate event id(s)")
        return out


class NoAnswer:
    """Stands for a request that got no HTTP answer in time (in doubt: booked neither way)."""

    status_code = 0

    def __init__(self, why: str):
        self.why = why


def _write_round(api: rh.Api, led: Ledger, pad: int, n: int, ws: str = "workspaces/faults") -> List[Tuple[str, object]]:
    """One request per ingest route; returns [(route, response)] and books acks/rejections."""
    import requests

    out = []

    def send(route, call, ids, acked, rejected, ok=lambda r: r.status_code == 200):
        try:
            r = call()
        except requests.exceptions.RequestException as e:
            out.append((route, NoAnswer(type(e).__name__)))
            return
        (acked if ok(r) else rejected).update(ids)
        out.append((route, r))

    items = _h2o_batch_items(n, ws, pad)
    send("h2o :batchCreate", lambda: api.h2o_batch(items), [i for i, _ in items], led.acked_ids, led.rejected_ids,
         ok=lambda r: r.status_code == 200 and not r.json().get("failedRequests"))
    eid, ev = _h2o_batch_items(1, ws, pad)[0]
    send("h2o create", lambda: api.h2o_create(ev, eid), [eid], led.acked_ids, led.rejected_ids)
    toks, body = _pangea_bulk(n, ws, pad)
    send("pangea v2/log", lambda: api.pangea("/v2/log", body), toks, led.acked_toks, led.rejected_toks)
    tok = "tk-" + uuid.uuid4().hex
    send("pangea v1/log", lambda: api.pangea("/v1/log", {"event": rh.pangea_event(ws, message=tok,
                                                                                  new=_pad(pad)[:pad])}),
         [tok], led.acked_toks, led.rejected_toks)
    return out


def _retryable_error_problems(route: str, r) -> List[str]:
    """A storage failure must be a retryable 503/507 in the dialect's error shape."""
    if isinstance(r, NoAnswer):
        return [f"{route}: no answer within the client timeout ({r.why}) instead of a retryable 503"]
    if r.status_code not in RETRYABLE:
        return [f"{route}: expected a retryable 503 while storage is unavailable, got {rh.short(r, 250)}"]
    probs = []
    try:
        j = r.json()
    except ValueError:
        return [f"{route}: {r.status_code} body is not JSON: {rh.short(r)}"]
    if route.startswith("h2o") and j.get("code") != 14:
        probs.append(f"{route}: H2O 503 should carry code 14 (UNAVAILABLE): {rh.short(r)}")
    if route.startswith("pangea") and j.get("status") != "ServiceNotAvailable":
        probs.append(f"{route}: Pangea 503 should have status ServiceNotAvailable: {rh.short(r)}")
    if rh.leaks(r):
        probs.append(f"{route}: error body leaks internals ({rh.leaks(r)}): {rh.short(r)}")
    return probs


def _reads_ok(api: rh.Api) -> List[str]:
    probs = []
    checks = [
        ("h2o search", lambda: api.h2o_search({"workspaceExact": "workspaces/faults"}, 10)),
        ("pangea search", lambda: api.pangea("/v1/search", {"query": "", "limit": 5})),
        ("pangea root", lambda: api.root()),
        ("healthz", lambda: api.request("GET", "/healthz")),
    ]
    for name, call in checks:
        r = call()
        if r.status_code != 200:
            probs.append(f"read '{name}' failed while writes are refused: {rh.short(r, 250)}")
    return probs


def _resume(api: rh.Api, led: Ledger, within_s: float = 5.0) -> Tuple[Optional[float], str]:
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < within_s + 5:
        tok = "tk-" + uuid.uuid4().hex
        r = api.pangea("/v1/log", {"event": rh.pangea_event("workspaces/faults", message=tok)})
        if r.status_code == 200:
            led.acked_toks.add(tok)
            return time.monotonic() - t0, ""
        led.rejected_toks.add(tok)
        last = rh.short(r, 200)
        time.sleep(0.25)
    return None, last


# ------------------------------------------------------------------------------------ disk full
def test_disk_full_503_then_recovers(new_server, tk_tmp):
    mnt = tk_tmp / "diskfull"
    why = rh.mount_tmpfs(mnt, "8m")
    if why:
        pytest.skip(f"disk-full test needs a small tmpfs: {why}")
    srv = None
    try:
        srv = new_server("diskfull", data_dir=mnt / "data")
        api = rh.Api(srv.url, srv.admin_key)
        led = Ledger()
        for route, r in _write_round(api, led, 200, 10):
            assert r.status_code == 200, f"{route} before the disk filled up: {rh.short(r)}"
        pid = srv.pid
        # Fill the disk with ingestion itself (no filler file): ~256 KiB per batch.
        full_at = None
        problems: List[str] = []
        refusals: List[int] = []
        for i in range(400):
            results = _write_round(api, led, 2000, 100)
            bad = [(route, r) for route, r in results if r.status_code != 200]
            for route, r in bad:
                refusals.append(r.status_code)
                problems += _retryable_error_problems(route, r)
            if bad:
                full_at = i
                break
        rh.fig_set(F, "disk_full_rounds_until_full", full_at)
        assert full_at is not None, "8 MiB tmpfs never filled up: 400 rounds of ~1 MiB all acknowledged?"
        # While full: every write is refused the same way and nothing changes.
        for _ in range(3):
            for route, r in _write_round(api, led, 2000, 50):
                if r.status_code == 200:
                    continue  # freed space (e.g. a WAL reset) may let a small write through: fine
                refusals.append(r.status_code)
                problems += _retryable_error_problems(route, r)
        rh.fig_set(F, "disk_full_refusals_by_status", {str(c): refusals.count(c) for c in sorted(set(refusals))})
        problems += _reads_ok(api)
        assert srv.running and srv.pid == pid, f"the server died while the disk was full: {srv.log_tail(15)}"
        problems += led.check(srv)
        # Space returns: the server must resume by itself, same process.
        rh.run(["mount", "-o", "remount,size=256m", str(mnt)])
        took, last = _resume(api, led)
        rh.fig_set(F, "disk_full_resume_s", None if took is None else round(took, 2))
        if took is None or took > 5.0:
            problems.append(f"ingestion did not resume within 5 s after space returned "
                            f"(took {took}); last answer: {last}")
        for route, r in _write_round(api, led, 200, 10):
            if r.status_code != 200:
                problems.append(f"{route} after space returned: {rh.short(r, 250)}")
        assert srv.pid == pid, "the server restarted"
        problems += led.check(srv)
        rc = srv.stop()
        if rc != 0:
            problems.append(f"SIGTERM exit code {rc} after the disk-full episode: {srv.log_tail(8)}")
        v = srv.verify()
        rh.fig_set(F, "disk_full_verify", (v.stdout + v.stderr).strip()[:200])
        if v.returncode != 0:
            problems.append(f"`trailkeep verify` after disk full failed rc={v.returncode}: {v.stdout.strip()[:300]}")
        rh.fig_set(F, "disk_full_problems", len(problems))
        if problems:
            problems += [f"server log: {e}" for e in srv.log_errors()]
        assert not problems, rh.problems_msg("disk full", problems)
    finally:
        if srv is not None:
            srv.stop()
        rh.umount(mnt)


def _checkpoint_matches_db(srv: rh.Server) -> List[str]:
    n, size, root = srv.snapshot()
    cp = srv.checkpoint()
    if not cp or cp["size"] != size or cp["root_hash"] != root:
        return [f"checkpoint.latest ({cp and cp['size']}) does not record the newest root (size {size})"]
    return []


def test_checkpoint_spare_unavailable_refuses_cleanly(new_server):
    """When ``checkpoint.latest`` is not a two-slot file written in place (the first write, an
    earlier release's file; here it is moved away), the new file is written into a spare
    allocated before the transaction (what a full disk hits first; here made impossible
    deterministically: a directory squats on the spare's name). The write must be refused with a
    retryable 503 before anything is committed (a 5xx stores nothing, §1.1), reads keep working,
    and writes resume without a restart once it can be made."""
    srv = new_server("cpspare")
    api = rh.Api(srv.url, srv.admin_key)
    led = Ledger()
    for route, r in _write_round(api, led, 50, 5):
        assert r.status_code == 200, f"{route}: {rh.short(r)}"
    pid = srv.pid
    cp_file = srv.data_dir / "checkpoint.latest"
    saved = srv.data_dir / "checkpoint.saved"
    cp_file.rename(saved)
    squat = srv.data_dir / "checkpoint.latest.tmp"
    if squat.is_file():
        squat.unlink()
    squat.mkdir()
    problems: List[str] = []
    try:
        snap = srv.snapshot()
        for route, r in _write_round(rh.Api(srv.url, srv.admin_key, timeout=10), led, 50, 5):
            problems += _retryable_error_problems(route, r)
        if srv.snapshot() != snap:
            problems.append(f"the stored state changed although every write was refused: {snap} -> {srv.snapshot()}")
        problems += _reads_ok(api)
        problems += led.check(srv)
    finally:
        squat.rmdir()
        saved.rename(cp_file)
    took, last = _resume(api, led)
    rh.fig_set(F, "checkpoint_spare_resume_s", None if took is None else round(took, 2))
    if took is None or took > 5.0:
        problems.append(f"writes did not resume within 5 s once the spare could be made "
                        f"(took {took}); last answer: {last}")
    problems += _checkpoint_matches_db(srv)
    assert srv.pid == pid
    problems += led.check(srv)
    srv.stop()
    v = srv.verify()
    if v.returncode != 0:
        problems.append(f"verify failed: {v.stdout.strip()[:300]}")
    if problems:
        problems += [f"server log: {e}" for e in srv.log_errors()]
    assert not problems, rh.problems_msg("checkpoint spare unavailable", problems)


def test_checkpoint_write_failure_is_not_acknowledged_and_recovers(new_server):
    """The rare case that remains after COMMIT: the checkpoint file cannot be put in place (here
    made impossible deterministically: a directory stands where ``checkpoint.latest`` goes, so
    the rename fails). The write must not be acknowledged (design §1.3: ack only after the file
    records the root) and, being committed, must not get a 5xx either (§1.1): its reply is held,
    so a client sees no answer (in doubt) and a retry with the same event id finds it. Other
    writes meanwhile are refused with 503 and store nothing; once the file can be written, writes
    resume within 5 s without a restart, the held group is there exactly once and the checkpoint
    matches the database; verify passes."""
    srv = new_server("cpfail")
    api = rh.Api(srv.url, srv.admin_key)
    led = Ledger()
    for route, r in _write_round(api, led, 50, 5):
        assert r.status_code == 200, f"{route}: {rh.short(r)}"
    pid = srv.pid
    cp_file = srv.data_dir / "checkpoint.latest"
    saved = srv.data_dir / "checkpoint.saved"
    cp_file.rename(saved)
    cp_file.mkdir()
    problems: List[str] = []
    held: List[Tuple[str, dict]] = []
    try:
        short_api = rh.Api(srv.url, srv.admin_key, timeout=5)
        eid, ev = _h2o_batch_items(1, "workspaces/faults", 50)[0]
        try:
            r = short_api.h2o_create(ev, eid)
            problems.append(f"h2o create answered although the checkpoint file cannot be written: {rh.short(r)}")
        except Exception:  # noqa: BLE001 — the expected outcome: no answer (in doubt)
            held.append((eid, ev))
        for route, r in _write_round(short_api, led, 50, 5):
            if r.status_code == 200:
                problems.append(f"{route} acknowledged although the checkpoint file cannot be written")
            else:
                problems += _retryable_error_problems(route, r)
        problems += _reads_ok(api)
        problems += led.check(srv)
    finally:
        cp_file.rmdir()
        saved.unlink()
    took, last = _resume(api, led)
    rh.fig_set(F, "checkpoint_failure_resume_s", None if took is None else round(took, 2))
    if took is None or took > 5.0:
        problems.append(f"writes did not resume within 5 s once the checkpoint file could be written again "
                        f"(took {took}); last answer: {last}")
    # The held request was committed: retrying it with the same event id returns it, stored once.
    for eid, ev in held:
        r = api.h2o_create(ev, eid)
        if r.status_code != 200:
            problems.append(f"retry of the in-doubt create {eid}: {rh.short(r)}")
        led.acked_ids.add(eid)
    problems += _checkpoint_matches_db(srv)
    assert srv.pid == pid
    problems += led.check(srv)
    srv.stop()
    v = srv.verify()
    if v.returncode != 0:
        problems.append(f"verify failed: {v.stdout.strip()[:300]}")
    if problems:
        problems += [f"server log: {e}" for e in srv.log_errors()]
    assert not problems, rh.problems_msg("checkpoint write failure", problems)


# ------------------------------------------------------------------------------------ read-only
def _loop_ext4(tk_tmp: Path, name: str, size_mb: int = 64) -> Tuple[Path, Optional[str]]:
    img = tk_tmp / f"{name}.ext4"
    mnt = tk_tmp / name
    mnt.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return mnt, "loop mounts need root"
    for tool in ("mkfs.ext4", "mount", "chattr"):
        if not shutil.which(tool):
            return mnt, f"{tool} not installed"
    with open(img, "wb") as f:
        f.truncate(size_mb << 20)
    r = rh.run(["mkfs.ext4", "-q", "-F", str(img)], check=False)
    if r.returncode != 0:
        return mnt, f"mkfs.ext4 failed: {r.stderr.strip()}"
    r = rh.run(["mount", "-o", "loop", str(img), str(mnt)], check=False)
    if r.returncode != 0:
        return mnt, f"loop mount not permitted here: {r.stderr.strip()}"
    return mnt, None


def _chattr(flag: str, paths: List[Path]) -> None:
    for p in paths:
        if p.exists():
            rh.run(["chattr", flag, str(p)])


def test_read_only_database_while_serving(new_server, tk_tmp):
    mnt, why = _loop_ext4(tk_tmp, "ro-runtime")
    if why:
        pytest.skip(f"read-only test needs a loop-mounted ext4: {why}")
    srv = None
    data = mnt / "data"
    frozen: List[Path] = []
    try:
        srv = new_server("ro", data_dir=data)
        api = rh.Api(srv.url, srv.admin_key)
        led = Ledger()
        for route, r in _write_round(api, led, 100, 10):
            assert r.status_code == 200, f"{route}: {rh.short(r)}"
        pid = srv.pid
        snap = srv.snapshot()
        frozen = [data / "trailkeep.db", data / "trailkeep.db-wal", data / "checkpoint.latest", data]
        _chattr("+i", frozen)
        # The filesystem refuses writes to these files now (EPERM), as a read-only disk would.
        problems: List[str] = []
        refusals: List[int] = []
        for _ in range(2):
            for route, r in _write_round(api, led, 100, 10):
                refusals.append(r.status_code)
                problems += _retryable_error_problems(route, r)
        rh.fig_set(F, "read_only_writes_by_status", {str(c): refusals.count(c) for c in sorted(set(refusals))})
        if srv.snapshot() != snap:
            problems.append(f"the stored state changed while the database was read-only: {snap} -> {srv.snapshot()}")
        problems += _reads_ok(api)
        assert srv.running and srv.pid == pid, f"the server died on a read-only database: {srv.log_tail(15)}"
        _chattr("-i", frozen)
        frozen = []
        took, last = _resume(api, led)
        rh.fig_set(F, "read_only_resume_s", None if took is None else round(took, 2))
        if took is None or took > 5.0:
            problems.append(f"writes did not resume within 5 s once the database was writable again "
                            f"(took {took}); last answer: {last}")
        for route, r in _write_round(api, led, 100, 10):
            if r.status_code != 200:
                problems.append(f"{route} after the database became writable again: {rh.short(r, 250)}")
        problems += led.check(srv)
        rc = srv.stop()
        if rc != 0:
            problems.append(f"SIGTERM exit code {rc}: {srv.log_tail(8)}")
        v = srv.verify()
        if v.returncode != 0:
            problems.append(f"`trailkeep verify` after the read-only episode failed: {v.stdout.strip()[:300]}")
        rh.fig_set(F, "read_only_problems", len(problems))
        if problems:
            problems += [f"server log: {e}" for e in srv.log_errors()]
        assert not problems, rh.problems_msg("read-only database", problems)
    finally:
        if frozen:
            _chattr("-i", frozen)
        if srv is not None:
            srv.stop()
        rh.umount(mnt)


def test_start_on_read_only_filesystem(new_server, tk_tmp):
    """Spec leaves open whether a read-only start serves reads or exits (design F5: "serves
    search or exits clearly"); either is accepted, a hang, a panic or exit 0 is not."""
    mnt, why = _loop_ext4(tk_tmp, "ro-start")
    if why:
        pytest.skip(f"read-only start test needs a loop-mounted ext4: {why}")
    srv = None
    try:
        srv = new_server("rostart", data_dir=mnt / "data")
        api = rh.Api(srv.url, srv.admin_key)
        led = Ledger()
        for route, r in _write_round(api, led, 100, 5):
            assert r.status_code == 200, f"{route}: {rh.short(r)}"
        admin = srv.admin_key
        assert srv.stop() == 0
        rh.run(["mount", "-o", "remount,ro", str(mnt)])
        try:
            srv.start(timeout=30)
        except rh.ServerStartError as e:
            out = e.output
            assert e.returncode not in (0, 101, None), f"read-only start: exit {e.returncode}\n{out[-800:]}"
            assert "panicked" not in out, f"read-only start panicked:\n{out[-800:]}"
            assert any(w in out.lower() for w in ("read-only", "readonly", "read only")), (
                f"read-only start exited {e.returncode} without saying the storage is read-only:\n{out[-800:]}")
            rh.fig_set(F, "read_only_start", f"exits clearly (rc={e.returncode})")
        else:
            api = rh.Api(srv.url, admin)
            probs = _reads_ok(api)
            for route, r in _write_round(api, Ledger(), 10, 2):
                probs += _retryable_error_problems(route, r)
            rh.fig_set(F, "read_only_start", "serves reads, refuses writes" if not probs else "deviates")
            srv.stop()
            assert not probs, rh.problems_msg("read-only start", probs)
        rh.run(["mount", "-o", "remount,rw", str(mnt)])
        srv.start()
        assert not led.check(srv)
        assert srv.stop() == 0
        v = srv.verify()
        assert v.returncode == 0, v.stdout
    finally:
        if srv is not None:
            srv.stop()
        rh.umount(mnt)


# ------------------------------------------------------------------------------------ corruption
def _seeded(new_server, name: str, n_events: int = 300) -> Tuple[rh.Server, str, int]:
    """A stopped server's data dir holding events, one of them carrying a unique marker."""
    srv = new_server(name)
    api = rh.Api(srv.url, srv.admin_key)
    for i in range(3):
        toks, body = _pangea_bulk(n_events // 3, "workspaces/corrupt", 200)
        assert api.pangea("/v2/log", body).status_code == 200
    marker = "MARK" + uuid.uuid4().hex.upper()
    r = api.pangea("/v1/log", {"event": rh.pangea_event("workspaces/corrupt", message=marker)})
    assert r.status_code == 200, rh.short(r)
    for i in range(2):
        toks, body = _pangea_bulk(n_events // 3, "workspaces/corrupt", 200)
        assert api.pangea("/v2/log", body).status_code == 200
    c = srv.db()
    seq = c.execute("SELECT seq FROM events WHERE json_extract(envelope,'$.event.message') = ?", (marker,)).fetchone()[0]
    c.close()
    assert srv.stop() == 0
    wal = srv.data_dir / "trailkeep.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "SIGTERM should checkpoint the WAL into the database"
    v = srv.verify()
    assert v.returncode == 0, v.stdout
    return srv, marker, seq


def _start_outcome(srv: rh.Server) -> str:
    """Starts the server on a damaged data dir: refuses clearly, or comes up and stays responsive."""
    try:
        srv.start(timeout=30)
    except rh.ServerStartError as e:
        assert e.returncode not in (0, 101, None), f"start on a damaged database: exit {e.returncode}\n{e.output[-600:]}"
        assert "panicked" not in e.output, f"start on a damaged database panicked:\n{e.output[-800:]}"
        return f"refuses (rc={e.returncode}): {e.output.strip().splitlines()[-1][:160]}"
    api = rh.Api(srv.url, srv.admin_key)
    r = api.request("GET", "/healthz")
    assert r.status_code == 200
    srv.stop()
    return "starts"


def test_corrupted_event_bytes_detected_by_verify(new_server):
    srv, marker, seq = _seeded(new_server, "corrupt-leaf")
    db = srv.data_dir / "trailkeep.db"
    raw = bytearray(db.read_bytes())
    pos = raw.find(marker.encode())
    assert pos > 0, "marker not found in the database file"
    raw[pos + 5] = ord("Z") if raw[pos + 5] != ord("Z") else ord("Y")  # same length: b-tree stays valid
    db.write_bytes(bytes(raw))
    v = srv.verify()
    out = v.stdout + v.stderr
    rh.fig_add(F, "corruptions_tried")
    assert v.returncode == 1, f"verify must exit 1 on an altered event (got {v.returncode}):\n{out[-600:]}"
    assert "leaf_mismatch" in out and f"event {seq}" in out, (
        f"verify must name the problem and the event (leaf_mismatch, event {seq}):\n{out[-600:]}")
    rh.fig_add(F, "corruptions_detected")
    rh.fig_set(F, "altered_event_start", _start_outcome(srv))


def test_zeroed_btree_page_detected(new_server):
    srv, marker, seq = _seeded(new_server, "corrupt-page")
    db = srv.data_dir / "trailkeep.db"
    raw = bytearray(db.read_bytes())
    page_size = int.from_bytes(raw[16:18], "big") or 65536
    pos = raw.find(marker.encode())
    assert pos > 0
    page = pos // page_size
    assert page > 0
    raw[page * page_size:(page + 1) * page_size] = bytes(page_size)
    db.write_bytes(bytes(raw))
    v = srv.verify()
    out = v.stdout + v.stderr
    rh.fig_add(F, "corruptions_tried")
    rh.fig_set(F, "zeroed_page_verify", f"rc={v.returncode}: " + (out.strip().splitlines() or [""])[0][:160])
    rh.fig_set(F, "zeroed_page_start", _start_outcome(srv))
    assert v.returncode != 0 and "panicked" not in out, f"verify on a zeroed page: exit {v.returncode}:\n{out[-600:]}"
    rh.fig_add(F, "corruptions_detected")
    # Reported precisely (design F6: "quick_check fails, refuses, verify names leaves"): verify
    # completes its report (exit 1) naming the problem (integrity, with SQLite's page-level
    # findings, or the affected events), rather than aborting on the first unreadable row.
    named = [w for w in ("integrity", "leaf_mismatch", "gap", "root_mismatch") if w in out]
    assert v.returncode == 1 and named, (
        f"verify on a zeroed events page aborted (exit {v.returncode}) without naming what is damaged: "
        f"{out.strip()[-300:]}")


def test_overwritten_header_refused_clearly(new_server):
    srv, marker, seq = _seeded(new_server, "corrupt-header", 60)
    db = srv.data_dir / "trailkeep.db"
    raw = bytearray(db.read_bytes())
    raw[0:100] = b"\xff" * 100
    db.write_bytes(bytes(raw))
    v = srv.verify()
    out = (v.stdout + v.stderr)
    rh.fig_add(F, "corruptions_tried")
    assert v.returncode in (1, 2) and "panicked" not in out, f"verify on a broken header: rc={v.returncode}\n{out[-600:]}"
    assert any(w in out.lower() for w in ("not a database", "malformed", "corrupt", "integrity")), out[-600:]
    with pytest.raises(rh.ServerStartError) as ei:
        srv.start(timeout=30)
    e = ei.value
    assert e.returncode not in (0, 101) and "panicked" not in e.output, e.output[-600:]
    assert any(w in e.output.lower() for w in ("not a database", "malformed", "corrupt")), e.output[-600:]
    rh.fig_add(F, "corruptions_detected")


# ------------------------------------------------------------------------------------ checkpoint
def _ingest(srv: rh.Server, n: int = 30) -> None:
    api = rh.Api(srv.url, srv.admin_key)
    toks, body = _pangea_bulk(n, "workspaces/cp", 50)
    assert api.pangea("/v2/log", body).status_code == 200
    items = _h2o_batch_items(n, "workspaces/cp", 50)
    assert api.h2o_batch(items).status_code == 200


def _copy_db(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("trailkeep.db", "trailkeep.db-wal"):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)


def _restore_db(backup: Path, data: Path) -> None:
    for name in ("trailkeep.db", "trailkeep.db-wal", "trailkeep.db-shm"):
        if (data / name).exists():
            (data / name).unlink()
    for name in ("trailkeep.db", "trailkeep.db-wal"):
        if (backup / name).exists():
            shutil.copy2(backup / name, data / name)


def test_old_backup_restored_is_refused_as_rollback(new_server, tk_tmp):
    srv = new_server("rollback")
    admin = srv.admin_key
    _ingest(srv)
    assert srv.stop() == 0
    backup = tk_tmp / f"backup-{uuid.uuid4().hex[:6]}"
    _copy_db(srv.data_dir, backup)
    srv.start()
    srv.admin_key = admin
    _ingest(srv)
    assert srv.stop() == 0
    newer_cp = tk_tmp / f"trusted-{uuid.uuid4().hex[:6]}.json"
    shutil.copy2(srv.data_dir / "checkpoint.latest", newer_cp)
    _restore_db(backup, srv.data_dir)
    with pytest.raises(rh.ServerStartError) as ei:
        srv.start(timeout=30)
    assert ei.value.returncode == 2 and "rollback detected" in ei.value.output, ei.value.output[-600:]
    v = srv.verify()
    assert v.returncode == 1 and "size_regression" in v.stdout, v.stdout
    (srv.data_dir / "checkpoint.latest").unlink()
    v = srv.verify("--against", str(newer_cp))
    assert v.returncode == 1 and "size_regression" in v.stdout, f"verify --against a newer checkpoint:\n{v.stdout}"
    shutil.copy2(newer_cp, srv.data_dir / "checkpoint.latest")
    srv.extra_args = ["--accept-db-state"]
    srv.start()
    r = rh.Api(srv.url, admin).root()
    assert r.status_code == 200, rh.short(r)
    rh.fig_add(F, "checkpoint_mismatches_detected", 3)


def test_forked_checkpoint_is_refused(new_server):
    srv = new_server("fork")
    _ingest(srv)
    assert srv.stop() == 0
    p = srv.data_dir / "checkpoint.latest"
    cp = rh.parse_checkpoint(p.read_bytes())
    cp["root_hash"] = ("0" if cp["root_hash"][0] != "0" else "1") + cp["root_hash"][1:]
    p.write_text(json.dumps(cp, indent=2))
    with pytest.raises(rh.ServerStartError) as ei:
        srv.start(timeout=30)
    assert ei.value.returncode == 2 and "fork detected" in ei.value.output, ei.value.output[-600:]
    v = srv.verify()
    assert v.returncode == 1 and "inconsistent_with_trusted_checkpoint" in v.stdout, v.stdout
    rh.fig_add(F, "checkpoint_mismatches_detected", 2)


def test_checkpoint_behind_database_is_accepted_and_rewritten(new_server, tk_tmp):
    """A crash between COMMIT and the checkpoint write leaves the file behind: legitimate (§1.3)."""
    srv = new_server("behind")
    admin = srv.admin_key
    _ingest(srv)
    old = (srv.data_dir / "checkpoint.latest").read_text()
    _ingest(srv)
    assert srv.stop() == 0
    (srv.data_dir / "checkpoint.latest").write_text(old)
    v = srv.verify()
    assert v.returncode == 0, f"verify with a checkpoint behind the database:\n{v.stdout}"
    srv.start()
    _ingest_by(srv, admin)
    n, size, root = srv.snapshot()
    cp = srv.checkpoint()
    assert cp["size"] == size and cp["root_hash"] == root, f"checkpoint not rewritten: {cp} vs size {size}"


def _ingest_by(srv: rh.Server, key: str) -> None:
    r = rh.Api(srv.url, key).pangea("/v1/log", {"event": rh.pangea_event("workspaces/cp", message="after")})
    assert r.status_code == 200, rh.short(r)


def test_unreadable_checkpoint_is_refused_clearly(new_server):
    srv = new_server("cpgarbage")
    _ingest(srv)
    assert srv.stop() == 0
    (srv.data_dir / "checkpoint.latest").write_text('{"tree_name": "x", "size": ')
    with pytest.raises(rh.ServerStartError) as ei:
        srv.start(timeout=30)
    e = ei.value
    assert e.returncode not in (0, 101) and "panicked" not in e.output, e.output[-600:]
    assert "checkpoint" in e.output.lower(), f"the refusal should name the checkpoint file:\n{e.output[-600:]}"
    v = srv.verify()
    assert v.returncode != 0 and "checkpoint" in (v.stdout + v.stderr).lower(), v.stdout + v.stderr
    rh.fig_add(F, "checkpoint_mismatches_detected")


# ------------------------------------------------------------------------------------ SIGTERM (F8)
def test_sigterm_right_after_listening_is_graceful(new_server):
    """`listening on` is the readiness signal; a SIGTERM right after it must still be a graceful
    stop (exit 0, WAL checkpointed), not death by the default signal action."""
    srv = new_server("sigterm-early", start=False)
    rcs = []
    for _ in range(5):
        srv.start()
        srv.proc.send_signal(15)  # deliberately without the grace the harness's stop() gives
        rc = srv.proc.wait(timeout=40)
        srv.returncode = rc
        srv._close()
        rcs.append(rc)
    rh.fig_set(F, "sigterm_right_after_listening_exits", rcs)
    assert rcs == [0] * 5, (f"SIGTERM right after 'listening on' ended the server with exit codes {rcs} "
                            f"(-15: killed by the signal before its handler is installed), not a graceful 0")


def test_sigterm_with_a_live_tail_open_exits_promptly(new_server):
    """A browser tab with the live tail open (or one just closed) must not hold up a graceful stop:
    exit 0 within 5 s."""
    import requests

    srv = new_server("sigterm-tail")
    r = requests.get(srv.url + "/api/v1/tail", headers=rh.bearer(srv.admin_key), stream=True, timeout=10)
    assert r.status_code == 200
    r.close()
    time.sleep(0.5)
    t0 = time.monotonic()
    srv.proc.send_signal(15)
    try:
        rc = srv.proc.wait(timeout=45)
    except Exception:  # noqa: BLE001
        rc = None
    took = time.monotonic() - t0
    rh.fig_set(F, "sigterm_with_tail_s", round(took, 1))
    assert rc == 0 and took < 5, f"SIGTERM with a (closed) live-tail connection took {took:.1f} s to exit (rc={rc})"


def test_sigterm_under_load_loses_no_acknowledged_event(new_server):
    """F8: SIGTERM while clients ingest: in-flight requests finish or fail, nothing acknowledged is
    lost, the process exits 0, the WAL is checkpointed and the trail verifies."""
    import threading

    srv = new_server("sigterm-load")
    led = Ledger()
    stop = threading.Event()
    lock = threading.Lock()

    def client(i):
        api = rh.Api(srv.url, srv.admin_key, timeout=30)
        while not stop.is_set():
            toks, body = _pangea_bulk(20, "workspaces/f8", 100)
            eid, ev = _h2o_batch_items(1, "workspaces/f8", 100)[0]
            try:
                r = api.pangea("/v2/log", body)
                with lock:
                    if r.status_code == 200:
                        led.acked_toks.update(toks)
                r = api.h2o_create(ev, eid)
                with lock:
                    if r.status_code == 200:
                        led.acked_ids.add(eid)
            except Exception:  # noqa: BLE001 — in doubt; only acknowledged events are checked
                pass

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    srv.proc.send_signal(15)
    rc = srv.proc.wait(timeout=45)
    srv.returncode = rc
    stop.set()
    for t in threads:
        t.join(timeout=40)
    assert rc == 0, f"SIGTERM under load: exit {rc}\n{srv.log_tail(10)}"
    wal = srv.data_dir / "trailkeep.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL was not checkpointed on SIGTERM"
    v = srv.verify()
    assert v.returncode == 0, v.stdout
    problems = led.check(srv)
    rh.fig_set(F, "sigterm_under_load_acked", len(led.acked_toks) + len(led.acked_ids))
    assert not problems, rh.problems_msg("SIGTERM under load", problems)


# ------------------------------------------------------------------------------- clock jumps
def _libfaketime() -> Optional[str]:
    for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
              "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"):
        if os.path.exists(p):
            return p
    return None


def test_clock_jumping_backwards_keeps_order_and_paging(new_server, tk_tmp):
    """The server's wall clock steps back 2 h mid-ingest (libfaketime; the monotonic clock is
    untouched, as with an NTP step): receive times stay strictly increasing with the log order,
    newest-first results stay in log order, H2O and Pangea paging return every event exactly
    once, and `verify` passes."""
    lib = _libfaketime()
    if not lib:
        pytest.skip("libfaketime not installed (Debian package `faketime`; tests/run.sh installs it)")
    clock = tk_tmp / f"faketime-{uuid.uuid4().hex[:6]}"
    clock.write_text("+0\n")
    srv = new_server("clock", ["--no-self-audit"], env={
        "LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": str(clock), "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    a = rh.Api(srv.url, srv.admin_key)
    ws = f"workspaces/clock-{uuid.uuid4().hex[:6]}"

    def ingest(phase: str):
        for i in range(3):
            body = {"events": [{"event": rh.pangea_event(ws, message=f"{phase} {i}.{j}")} for j in range(10)]}
            assert a.pangea("/v2/log", body).status_code == 200
        for i in range(10):
            assert a.h2o_create(rh.h2o_event(ws, token=f"{phase}{i}")).status_code == 200

    ingest("before")
    clock.write_text("-2h\n")
    time.sleep(0.3)
    ingest("after")

    # Pangea, newest first (log order): receive times strictly decreasing, every event once.
    res = rh.pangea_ok(a.pangea("/v1/search", {"query": f"tenant_id:{ws}", "limit": 7, "max_results": 1000}))
    sid, count = res["id"], res["count"]
    assert count == 80, res
    seen: List[dict] = list(res["events"])
    while len(seen) < count:
        page = rh.pangea_ok(a.pangea("/v1/results", {"id": sid, "limit": 7, "offset": len(seen)}))
        assert page["events"], f"results page at offset {len(seen)} is empty"
        seen += page["events"]
    received = [e["envelope"]["received_at"] for e in seen]
    assert len(set(received)) == 80, "a receive time repeats"
    assert received == sorted(received, reverse=True), "newest-first order is not the log order after the jump"
    messages = [e["envelope"]["event"].get("message", "") for e in seen]
    afters = [i for i, m in enumerate(messages) if m.startswith("after")]
    befores = [i for i, m in enumerate(messages) if m.startswith("before")]
    assert max(afters) < min(befores), "events logged after the jump sort before earlier ones"

    # H2O paging by (event time, seq), 7 per page: every event exactly once. The window is
    # explicit: by default H2O searches end at the server's (now earlier) clock.
    flt = {"workspaceExact": ws, "startEventTime": rh.now_rfc3339(-86400), "endEventTime": rh.now_rfc3339(86400)}
    names, tok = [], ""
    for _ in range(100):
        r = a.h2o_search(flt, page_size=7, token=tok)
        assert r.status_code == 200, rh.short(r)
        j = r.json()
        names += [e["name"] for e in j["events"]]
        tok = j["nextPageToken"]
        if not tok:
            break
    assert len(names) == 80 and len(set(names)) == 80, f"H2O paging returned {len(names)} ({len(set(names))} distinct)"

    assert srv.stop() == 0
    v = srv.verify()
    assert v.returncode == 0, v.stdout
