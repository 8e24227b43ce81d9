"""Shared machinery for the trailkeep reliability suite (``tests/reliability``).

Nothing here builds anything: the suite runs the binary named by ``TRAILKEEP_BIN`` (default
``<repo>/target/debug/trailkeep``) the same way the conformance suite does
(``trailkeep serve --listen 127.0.0.1:0 --data-dir DIR``, reading ``admin key: ...`` and
``listening on http://...`` from stdout), but a server here can also be SIGKILLed and restarted
on the same data directory, and its database can be read directly (read-only) to count what is
really stored.

Figures: every test adds to :data:`FIGURES`; ``conftest.py`` prints them at the end of the run
and writes them to ``target/reliability-figures.json``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "trailkeep"

# ----------------------------------------------------------------------------------------- tiers
LONG = os.environ.get("TRAILKEEP_LONG", "") not in ("", "0", "false", "no")


def tier(ci, long):
    """The CI value, or the long-tier value when ``TRAILKEEP_LONG=1``."""
    return long if LONG else ci


STARTUP_TIMEOUT_S = float(os.environ.get("TRAILKEEP_STARTUP_TIMEOUT", "60"))
STOP_TIMEOUT_S = 15.0
CLI_TIMEOUT_S = 120.0

_ADMIN_RE = re.compile(r"admin key:\s*(\S+)")
_LISTEN_RE = re.compile(r"listening on (https?://\S+)")
_H2O_ENV_VARS = (
    "H2O_CLOUD_TOKEN_ENDPOINT_URL",
    "H2O_CLOUD_DISCOVERY",
    "H2O_CLOUD_ENVIRONMENT",
    "H2O_CLOUD_CLIENT_PLATFORM_TOKEN",
)

# ----------------------------------------------------------------------------------------- figures
_fig_lock = threading.Lock()
FIGURES: Dict[str, Dict[str, Any]] = defaultdict(dict)


def fig_add(section: str, key: str, n: float = 1) -> None:
    with _fig_lock:
        FIGURES[section][key] = FIGURES[section].get(key, 0) + n


def fig_set(section: str, key: str, value: Any) -> None:
    with _fig_lock:
        FIGURES[section][key] = value


def fig_max(section: str, key: str, value: float) -> None:
    with _fig_lock:
        FIGURES[section][key] = max(FIGURES[section].get(key, value), value)


def fig_note(section: str, text: str) -> None:
    """A short free-text observation kept with the figures (e.g. a deviation found)."""
    with _fig_lock:
        FIGURES[section].setdefault("notes", []).append(text)


def trailkeep_bin() -> Path:
    return Path(os.environ.get("TRAILKEEP_BIN", str(DEFAULT_BIN)))


def child_env(extra: Optional[dict] = None) -> dict:
    env = dict(os.environ)
    for v in _H2O_ENV_VARS:
        env.pop(v, None)
    for v in [k for k in env if k.startswith("TRAILKEEP_")]:
        del env[v]
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if extra:
        env.update(extra)
    return env


def key_id_of(secret_or_id: str) -> str:
    if secret_or_id.startswith("tk_"):
        parts = secret_or_id.split("_", 2)
        if len(parts) == 3 and parts[1]:
            return parts[1]
    return secret_or_id


def forge_key(key_id: Optional[str] = None, secret: Optional[str] = None) -> str:
    """A well-formed key (``tk_<16 hex>_<64 hex><6 hex checksum>``) with a valid checksum.

    The checksum is public (README: "a bad checksum gives 401 without a database lookup"), so
    anyone can build one; with a random id it names no stored key, with a real id and a random
    secret it is a wrong secret for that key.
    """
    key_id = key_id or os.urandom(8).hex()
    secret = secret or os.urandom(32).hex()
    check = hashlib.sha256(f"{key_id}.{secret}".encode()).hexdigest()[:6]
    return f"tk_{key_id}_{secret}{check}"


CHECKPOINT_SLOT = 4096
CHECKPOINT_MAGIC = b"#trailkeep-checkpoint "


def parse_checkpoint(data: bytes) -> dict:
    """A checkpoint file's newest signed root, read as ``ledger::parse_checkpoint`` reads it: two
    4 KiB slots, each ``#trailkeep-checkpoint gen=<n> len=<bytes> sha256=<hex>``, the JSON and
    whitespace, the valid slot with the highest generation winning; or one JSON document (an
    earlier release's file, a backup's ``.checkpoint``)."""
    if len(data) == 2 * CHECKPOINT_SLOT and any(
            data[i:].startswith(CHECKPOINT_MAGIC) for i in (0, CHECKPOINT_SLOT)):
        best: Optional[Tuple[int, dict]] = None
        for i in (0, CHECKPOINT_SLOT):
            slot = data[i:i + CHECKPOINT_SLOT]
            if not slot.startswith(CHECKPOINT_MAGIC) or b"\n" not in slot:
                continue
            nl = slot.index(b"\n")
            try:
                fields = dict(f.split("=", 1) for f in slot[len(CHECKPOINT_MAGIC):nl].decode().split())
                body = slot[nl + 1:nl + 1 + int(fields["len"])]
                if hashlib.sha256(body).hexdigest() != fields["sha256"]:
                    continue
                gen, cp = int(fields["gen"]), json.loads(body)
            except (ValueError, KeyError, UnicodeDecodeError):
                continue
            if best is None or gen > best[0]:
                best = (gen, cp)
        if best is None:
            raise ValueError("neither slot of the checkpoint file is intact")
        return best[1]
    return json.loads(data)


class ServerStartError(RuntimeError):
    def __init__(self, msg: str, returncode: Optional[int], output: str):
        super().__init__(msg)
        self.returncode = returncode
        self.output = output


class Server:
    """One ``trailkeep serve`` on a data directory; can be killed (SIGKILL) and started again."""

    def __init__(self, data_dir: Path, extra_args: Sequence[str] = (), env: Optional[dict] = None,
                 log_dir: Optional[Path] = None):
        self.bin = trailkeep_bin()
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.env_extra = dict(env or {})
        self.url: Optional[str] = None
        self.admin_key: Optional[str] = None
        self.proc: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None
        self.stdout_lines: List[str] = []
        self.starts = 0
        self.log_path = (Path(log_dir) if log_dir else self.data_dir.parent) / f"{self.data_dir.parent.name}-{self.data_dir.name}.stderr.log"
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._reader: Optional[threading.Thread] = None
        self._stderr = None
        self.last_start_s: float = 0.0

    # -------------------------------------------------------------------------------- process
    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> "Server":
        if not self.bin.exists():
            raise ServerStartError(f"trailkeep binary not found at {self.bin} (set TRAILKEEP_BIN)", None, "")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.url = None
        self.returncode = None
        self._lines = queue.Queue()
        self._stderr = open(self.log_path, "ab")
        start_mark = self._stderr.tell()
        cmd = [str(self.bin), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir), *self.extra_args]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr, env=child_env(self.env_extra)
        )
        self.starts += 1
        self._reader = threading.Thread(target=self._read_stdout, args=(self.proc, self._lines), daemon=True)
        self._reader.start()
        deadline = t0 + timeout
        eof = False
        while self.url is None and not eof and time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                eof = True
                break
            self._parse(line)
        if self.url is None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.returncode = self.proc.wait()
            self._close()
            out = self.log_since(start_mark)
            why = "exited" if eof else f"did not print 'listening on' within {timeout:.0f} s"
            raise ServerStartError(f"`{' '.join(cmd)}` {why} (rc={self.returncode}):\n{out}", self.returncode, out)
        self.last_start_s = time.monotonic() - t0
        self.listening_at = time.monotonic()
        grace = time.monotonic() + (2.0 if self.starts == 1 else 0.0)
        while self.admin_key is None and time.monotonic() < grace:
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            self._parse(line)
        return self

    def _read_stdout(self, proc: subprocess.Popen, lines: "queue.Queue") -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.stdout_lines.append(line)
            lines.put(line)
        lines.put(None)

    def _parse(self, line: str) -> None:
        m = _ADMIN_RE.search(line)
        if m and self.admin_key is None:
            self.admin_key = m.group(1)
        m = _LISTEN_RE.search(line)
        if m and self.url is None:
            self.url = m.group(1).rstrip("/")

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or checkpoint anything."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc is not None:
            self.returncode = self.proc.returncode
        self._close()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> Optional[int]:
        """SIGTERM, wait, then SIGKILL. Returns the exit code (-9 when it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            # SIGTERM in the first few ms after "listening on" kills the process before its signal
            # handler is installed (see test_faults.py::test_sigterm_right_after_listening_is_graceful);
            # the other tests stop gracefully, so give it that moment.
            wait = 0.3 - (time.monotonic() - getattr(self, "listening_at", 0.0))
            if wait > 0:
                time.sleep(wait)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        self._close()
        return self.returncode

    def log_since(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        return text

    def log_tail(self, n: int = 30) -> str:
        lines = self.log_since().splitlines()
        return "\n".join(lines[-n:])

    def log_errors(self, n: int = 4) -> List[str]:
        """The distinct ERROR/WARN messages in the server log (timestamps dropped), oldest first."""
        seen: List[str] = []
        for line in self.log_since().splitlines():
            m = re.search(r"\b(ERROR|WARN)\b\s*(.*)", line)
            if m:
                msg = f"{m.group(1)} {m.group(2).strip()}"[:200]
                if msg not in seen:
                    seen.append(msg)
        return seen[:n]

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    # -------------------------------------------------------------------------------- CLI
    def cli(self, *args: str, check: bool = True, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
        cmd = [str(self.bin), *args]
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                             env=child_env(self.env_extra))
        if check and res.returncode != 0:
            raise AssertionError(f"`{' '.join(cmd)}` rc={res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}")
        return res

    def create_key(self, scopes: Iterable[str], workspaces: Iterable[str] = (), name: Optional[str] = None) -> str:
        args = ["keys", "create", "--name", name or f"rel-{uuid.uuid4().hex[:10]}"]
        for s in scopes:
            args += ["--scope", s]
        for w in workspaces:
            args += ["--workspace", w]
        args += ["--data-dir", str(self.data_dir)]
        res = self.cli(*args)
        lines = [l.strip() for l in res.stdout.splitlines() if l.strip()]
        return lines[-1]

    def revoke_key(self, secret_or_id: str) -> None:
        self.cli("keys", "revoke", key_id_of(secret_or_id), "--data-dir", str(self.data_dir))

    def verify(self, *extra: str) -> subprocess.CompletedProcess:
        return self.cli("verify", "--data-dir", str(self.data_dir), *extra, check=False)

    # -------------------------------------------------------------------------------- database
    def db(self) -> sqlite3.Connection:
        """A read-only connection to the live database (WAL allows it next to the writer)."""
        uri = f"file:{self.data_dir / 'trailkeep.db'}?mode=ro"
        c = sqlite3.connect(uri, uri=True, timeout=10)
        c.execute("PRAGMA busy_timeout=10000")
        return c

    def snapshot(self) -> Tuple[int, int, Optional[str]]:
        """(events stored, tree size, latest root hash), read straight from the database."""
        c = self.db()
        try:
            n = c.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            row = c.execute("SELECT idx, lower(hex(root_hash)) FROM buffers ORDER BY idx DESC LIMIT 1").fetchone()
        finally:
            c.close()
        return (n, (row[0] + 1) if row else 0, row[1] if row else None)

    def key_snapshot(self) -> Tuple[int, int]:
        """(API keys stored, keys revoked), read straight from the database."""
        c = self.db()
        try:
            return c.execute("SELECT COUNT(*), COUNT(revoked_at) FROM api_keys").fetchone()
        finally:
            c.close()

    def checkpoint(self) -> Optional[dict]:
        p = self.data_dir / "checkpoint.latest"
        try:
            return parse_checkpoint(p.read_bytes())
        except FileNotFoundError:
            return None

    def __repr__(self) -> str:
        return f"Server(url={self.url!r}, data_dir={str(self.data_dir)!r}, pid={self.pid})"


# ----------------------------------------------------------------------------------------- HTTP
def bearer(key: Optional[str]) -> dict:
    return {"Authorization": f"Bearer {key}"} if key else {}


JSON_HDR = {"Content-Type": "application/json"}


def short(resp: Optional[requests.Response], n: int = 300) -> str:
    """One line describing a response, for failure messages."""
    if resp is None:
        return "<no response>"
    if not hasattr(resp, "content"):
        return f"<no answer: {getattr(resp, 'why', resp)}>"
    body = resp.content[:n].decode("utf-8", "replace").replace("\n", "\\n")
    return f"HTTP {resp.status_code} {body}"


def canon(obj) -> bytes:
    """Canonical JSON as Pangea hashes it (spec §8.1)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True).encode()


def envelope_hash(env: dict) -> str:
    return hashlib.sha256(canon(env)).hexdigest()


def now_rfc3339(offset_s: float = 0.0) -> str:
    t = time.time() + offset_s
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"


def h2o_event(ws: str = "", token: str = "", **over) -> dict:
    """An H2O Event with all 12 keys the official client sends (spec §5.1), its resource in `ws`."""
    ws_part = f"/{ws}" if ws else ""
    ev = {
        "eventTime": now_rfc3339(-5),
        "eventSource": "reliability-suite",
        "action": "actions/reliability/things/CREATE",
        "readOnly": False,
        "principal": "users/reliability",
        "sourceIpAddress": "203.0.113.7",
        "status": {"code": 0, "message": ""},
        "resource": f"//svc{ws_part}/things/{token or 't'}",
        "requestParameters": {},
        "userAgent": "reliability/1.0",
        "metadata": {"token": token} if token else {},
        "type": "TYPE_API",
    }
    ev.update(over)
    return ev


def pangea_event(tenant: str = "", message: str = "hello", **over) -> dict:
    ev = {"message": message, "actor": "reliability", "action": "test", "status": "success"}
    if tenant:
        ev["tenant_id"] = tenant
    ev.update(over)
    return ev


class _SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Connects from a given local address, e.g. 127.0.0.2 (all of 127.0.0.0/8 is loopback), so
    a test can be several clients as the server sees them (peer address)."""

    def __init__(self, source: str, **kw):
        self.source = source
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kw)


class Api:
    """A thin wrapper over one requests.Session bound to a server URL and a key (and optionally
    a local source address, see :class:`_SourceAddressAdapter`)."""

    def __init__(self, url: str, key: Optional[str] = None, timeout: float = 30.0, source: Optional[str] = None):
        self.url = url
        self.key = key
        self.timeout = timeout
        self.source = source
        self.s = requests.Session()
        self.s.trust_env = False
        if source:
            self.s.mount("http://", _SourceAddressAdapter(source))

    def with_key(self, key: Optional[str]) -> "Api":
        return Api(self.url, key, self.timeout, self.source)

    def request(self, method: str, path: str, *, key: Any = "default", headers: Optional[dict] = None,
                **kw) -> requests.Response:
        h = {}
        k = self.key if key == "default" else key
        h.update(bearer(k))
        if headers:
            h.update(headers)
        kw.setdefault("timeout", self.timeout)
        return self.s.request(method, self.url + path, headers=h, **kw)

    def post_json(self, path: str, body: Any, **kw) -> requests.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        hdr = dict(JSON_HDR)
        hdr.update(kw.pop("headers", {}) or {})
        return self.request("POST", path, data=data, headers=hdr, **kw)

    # H2O
    def h2o_create(self, ev: dict, event_id: Optional[str] = None, **kw) -> requests.Response:
        eid = event_id or str(uuid.uuid4())
        return self.post_json(f"/v1/events?eventId={eid}", ev, **kw)

    def h2o_batch(self, items: List[Tuple[str, dict]], **kw) -> requests.Response:
        return self.post_json("/v1/events:batchCreate",
                              {"requests": [{"eventId": i, "event": e} for i, e in items]}, **kw)

    def h2o_search(self, flt: Optional[dict] = None, page_size: int = 1000, token: str = "", **kw):
        return self.post_json("/v1/events:search", {"filter": flt or {}, "pageSize": page_size, "pageToken": token},
                              **kw)

    def h2o_search_all(self, flt: Optional[dict] = None) -> List[dict]:
        out, tok = [], ""
        for _ in range(1000):
            r = self.h2o_search(flt, 1000, tok)
            assert r.status_code == 200, f"H2O search failed: {short(r)}"
            j = r.json()
            out += j["events"]
            tok = j["nextPageToken"]
            if not tok:
                return out
        raise AssertionError("H2O search paging did not end")

    # Pangea
    def pangea(self, path: str, body: Any, **kw) -> requests.Response:
        return self.post_json("/pangea" + path, body, **kw)

    def root(self, size: Optional[int] = None) -> requests.Response:
        return self.pangea("/v1/root", {"tree_size": size} if size else {})


def problems_msg(title: str, problems: List[str], limit: int = 30) -> str:
    """First line: the count and the first problem (what the summary shows); then the rest."""
    if not problems:
        return ""
    head = f"{title}: {len(problems)} problem(s); first: {problems[0]}"
    return head + ("\n" + "\n".join(problems[1:limit]) if len(problems) > 1 else "")


def pangea_ok(r: requests.Response) -> dict:
    assert r.status_code == 200 and r.json().get("status") == "Success", f"Pangea call failed: {short(r)}"
    return r.json()["result"]


# ----------------------------------------------------------------------------------------- roots
def verify_root_signature(public_key_b64: str, signed: dict) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        pk = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        pk.verify(base64.b64decode(signed["signature"]), signed["signed_message"].encode())
    except (InvalidSignature, ValueError, KeyError):
        return False
    msg = json.loads(signed["signed_message"])
    return msg.get("root_hash") == signed.get("root_hash") and msg.get("size") == signed.get("size")


def check_consistency_step(prev_hash_hex: str, root: dict) -> bool:
    """Pangea's consistency proof of ``root`` (size s) from size s-1, checked with the SDK's code."""
    from pangea.services.audit.util import decode_consistency_proof, decode_hash, verify_consistency_proof

    proof = root.get("consistency_proof")
    if not proof:
        return False
    return verify_consistency_proof(decode_hash(root["root_hash"]), decode_hash(prev_hash_hex),
                                    decode_consistency_proof(proof))


# ------------------------------------------------------------------------------------- load gate
class Gate:
    """What client threads share across server restarts: requests go out only while ``go`` is set,
    each to the current ``url`` and tagged with the current ``epoch`` (one per server start);
    ``in_flight`` counts those not answered yet. Also the signed roots :func:`watch_roots` saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.go = threading.Event()
        self.stop = False
        self.url = ""
        self.epoch = 0
        self.in_flight = 0
        self.roots: Dict[int, Tuple[str, int]] = {}  # size -> (root hash, epoch first seen)
        self.live_forks: List[str] = []  # a size handed out with two different roots
        self.roots_seen = 0  # signed roots handed out (a test may drop some from `roots`)

    def begin(self) -> Optional[Tuple[str, int]]:
        """The url and epoch for one request, or ``None`` while the gate is closed."""
        with self.lock:
            if self.stop or not self.go.is_set():
                return None
            self.in_flight += 1
            return self.url, self.epoch

    def end(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def note_root(self, size: int, root_hash: str, epoch: int) -> None:
        with self.lock:
            prev = self.roots.get(size)
            if prev is None:
                self.roots[size] = (root_hash, epoch)
                self.roots_seen += 1
            elif prev[0] != root_hash:
                self.live_forks.append(f"size {size}: {prev[0]} (epoch {prev[1]}) then {root_hash} (epoch {epoch})")


def watch_roots(gate: Gate, key: str, pause: float) -> None:
    """A thread's body: asks ``v1/root`` for the newest signed root whenever the gate is open and
    notes each one (:meth:`Gate.note_root`), until ``gate.stop``."""
    s = requests.Session()
    s.trust_env = False
    hdr = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    while True:
        gate.go.wait(timeout=0.5)
        if gate.stop:
            return
        got = gate.begin()
        if got is None:
            continue
        url, epoch = got
        try:
            r = s.post(url + "/pangea/v1/root", data=b"{}", headers=hdr, timeout=(2, 30))
            if r.status_code == 200:
                d = r.json()["result"]["data"]
                gate.note_root(int(d["size"]), d["root_hash"], epoch)
        except (requests.exceptions.RequestException, ValueError, KeyError):
            pass
        finally:
            gate.end()
        time.sleep(pause)


# ----------------------------------------------------------------------------------------- mounts
def run(cmd: Sequence[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed rc={res.returncode}: {res.stderr.strip()}")
    return res


def mount_tmpfs(path: Path, size: str) -> Optional[str]:
    """Mounts a tmpfs; returns None on success, else why it is not possible here."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if not shutil.which("mount"):
        return "no mount command"
    res = run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=False)
    if res.returncode != 0:
        return f"mount -t tmpfs not permitted here: {res.stderr.strip()}"
    return None


def umount(path: Path) -> None:
    for _ in range(20):
        res = run(["umount", str(path)], check=False)
        if res.returncode == 0 or "not mounted" in res.stderr:
            return
        time.sleep(0.25)
    run(["umount", "-l", str(path)], check=False)


def proc_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


FORBIDDEN_TEXT = ("sqlite", "rusqlite", "panicked", "stack backtrace", "no such column", "fts5",
                  "syntax error near", "src/", ".rs:")


def leaks(resp: requests.Response) -> Optional[str]:
    """Internal detail in a response body: SQLite text, a panic, a source path."""
    text = resp.content[:200_000].decode("utf-8", "replace").lower()
    for bad in FORBIDDEN_TEXT:
        if bad in text:
            return bad
    return None
