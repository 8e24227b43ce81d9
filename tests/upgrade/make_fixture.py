"""Writes an upgrade fixture with a given trailkeep binary (called by make_fixture.sh).

The data directory is written the way a user of that release would have: `trailkeep serve` under
umask 022, events through both dialects (H2O create and batchCreate; Pangea v1/log and v2/log,
signed on the client with the official SDK), API keys created with the CLI (scopes, workspace
limits, one revoked), H2O searches (self-audit events) and a retention purge. After a graceful
stop the directory is packed with manifest.json into a .tar.gz.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import requests

import pangea.services.audit.audit as audit_module

audit_module.get_arweave_published_roots = lambda *a, **k: {}  # offline
from pangea.config import PangeaConfig  # noqa: E402
from pangea.services import Audit  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reliability"))
from relharness import parse_checkpoint  # noqa: E402
TESTKEY = HERE.parent / "conformance" / "testkey.pem"
H2O_CREATE = 200
H2O_BATCHES = (10, 100)
PANGEA_SIGNED = 100
PANGEA_BULK = (10, 100)
PURGED = 40
WORKSPACES = ["workspaces/w1", "workspaces/w2", "workspaces/w3"]
PURGE_WS = "workspaces/purge"


class Server:
    def __init__(self, bin_path: Path, data: Path, config: Path):
        self.bin = bin_path
        self.data = data
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILKEEP_")}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        self.env = env
        self.proc = subprocess.Popen(
            [str(bin_path), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data), "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self.admin = None
        self.url = None
        deadline = time.monotonic() + 120
        while self.url is None and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if m := re.search(r"admin key:\s*(\S+)", line):
                self.admin = m.group(1)
            if m := re.search(r"listening on (http://\S+)", line):
                self.url = m.group(1)
        if not (self.url and self.admin):
            raise SystemExit(f"the server did not start (rc={self.proc.poll()})")
        self.s = requests.Session()
        self.s.trust_env = False

    def cli(self, *args: str) -> str:
        r = subprocess.run([str(self.bin), *args, "--data-dir", str(self.data)], capture_output=True, text=True,
                           env=self.env, timeout=120)
        if r.returncode != 0:
            raise SystemExit(f"trailkeep {' '.join(args)} failed: {r.stderr}")
        return r.stdout

    def post(self, path: str, body, key: str) -> dict:
        r = self.s.post(self.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        if r.status_code not in (200, 201):
            raise SystemExit(f"POST {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        if self.proc.wait(timeout=60) != 0:
            raise SystemExit(f"the server exited with {self.proc.returncode}")


def h2o_event(ws: str, i: int, tag: str) -> dict:
    return {
        "eventTime": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)).isoformat().replace("+00:00", "Z"),
        "eventSource": "upgrade-fixture",
        "action": f"actions/fixture/things/{tag}",
        "readOnly": i % 2 == 0,
        "principal": f"users/u{i % 7}",
        "sourceIpAddress": "203.0.113.7",
        "status": {"code": i % 3, "message": "" if i % 3 == 0 else f"status {i}"},
        "resource": f"//fixture/{ws}/things/{tag}-{i}",
        "requestParameters": {"i": str(i)},
        "userAgent": "fixture/1.0",
        "metadata": {"message": f"{tag} event {i}", "n": str(i)},
        "type": "TYPE_API",
    }


def ingest(srv: Server, keys: dict) -> None:
    admin, ingest_all, ingest_w1 = srv.admin, keys["ingest-all"]["secret"], keys["ingest-w1"]["secret"]
    for i in range(H2O_CREATE):
        ws = WORKSPACES[i % 3]
        key = ingest_w1 if ws == "workspaces/w1" and i % 2 else ingest_all
        srv.post(f"/v1/events?eventId={uuid.uuid4()}", h2o_event(ws, i, "CREATE"), key)
    n, size = H2O_BATCHES
    for b in range(n):
        ws = WORKSPACES[b % 3]
        reqs = [{"eventId": str(uuid.uuid4()), "event": h2o_event(ws, b * size + i, "BATCH")} for i in range(size)]
        res = srv.post("/v1/events:batchCreate", {"requests": reqs}, admin)
        if res.get("failedRequests"):
            raise SystemExit(f"batchCreate failed items: {res['failedRequests']}")
    base = srv.url + "/pangea"
    for t, tenant in enumerate(WORKSPACES):
        a = Audit(ingest_all, config=PangeaConfig(base_url_template=base), tenant_id=tenant,
                  private_key_file=str(TESTKEY))
        for i in range(PANGEA_SIGNED // 3 + (1 if t < PANGEA_SIGNED % 3 else 0)):
            a.log(message=f"signed {tenant} {i}", actor=f"alice{i % 5}", action="login", target="db1",
                  source="198.51.100.4", status="success", new={"i": i}, old="before", sign_local=True, verbose=True)
    n, size = PANGEA_BULK
    for b in range(n):
        tenant = WORKSPACES[b % 3]
        a = Audit(admin, config=PangeaConfig(base_url_template=base), private_key_file=str(TESTKEY))
        events = [{"message": f"bulk {b}-{i}", "actor": "bob", "action": "sync", "status": "ok", "tenant_id": tenant}
                  for i in range(size)]
        a.log_bulk(events, sign_local=b % 2 == 0, verbose=False)
    # H2O searches record self-audit events; one key limited to w1 searches its workspace.
    srv.post("/v1/events:search", {"filter": {"workspaceExact": "workspaces/w1"}, "pageSize": 10}, keys["search-w1"]["secret"])
    srv.post("/v1/events:search", {"filter": {}, "pageSize": 10}, admin)


def purge(srv: Server) -> None:
    for i in range(PURGED):
        srv.post(f"/v1/events?eventId={uuid.uuid4()}", h2o_event(PURGE_WS, i, "PURGED"), srv.admin)
    time.sleep(2.5)  # older than the workspace's 1 s retention
    r = srv.s.post(srv.url + "/api/v1/retention/purge", headers={"Authorization": f"Bearer {srv.admin}"}, timeout=60)
    if r.status_code != 200:
        raise SystemExit(f"purge: {r.status_code} {r.text[:300]}")


def manifest_of(data: Path, srv: Server, keys: dict, tag: str, commit: str, version: str) -> dict:
    c = sqlite3.connect(f"file:{data / 'trailkeep.db'}?mode=ro", uri=True)
    rows = c.execute(
        "SELECT e.seq, e.uid, e.origin, lower(hex(e.hash)), w.value, e.purged_at IS NOT NULL FROM events e "
        "JOIN strings w ON w.id = e.workspace ORDER BY e.seq").fetchall()
    user_version = c.execute("PRAGMA user_version").fetchone()[0]
    c.close()
    cp = parse_checkpoint((data / "checkpoint.latest").read_bytes())
    events = [{"seq": s, "id": str(uuid.UUID(bytes=bytes(u))), "origin": ["h2o", "pangea", "server"][o], "hash": h,
               "workspace": w, "purged": bool(p)} for s, u, o, h, w, p in rows]
    return {
        "release": tag, "commit": commit, "binary": version, "schema_version": user_version,
        "written_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "admin_key": srv.admin,
        "api_keys": keys,
        "tree": {"tree_name": cp["tree_name"], "size": cp["size"], "root_hash": cp["root_hash"],
                 "public_key": cp["public_key"]},
        "counts": {k: sum(1 for e in events if e["origin"] == k) for k in ("h2o", "pangea", "server")}
                  | {"events": len(events), "purged": sum(e["purged"] for e in events)},
        "events": events,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, type=Path)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args()
    os.umask(0o022)  # what most shells give: the old release's modes as users got them
    with tempfile.TemporaryDirectory(prefix="trailkeep-fixture-data-") as tmp:
        root = Path(tmp)
        data = root / "data"
        config = root / "trailkeep.toml"
        config.write_text(f'[retention]\ninterval = "1h"\n[retention.workspaces]\n"{PURGE_WS}" = "1s"\n')
        srv = Server(a.bin, data, config)
        try:
            keys = {}
            for name, scopes, wss in [("ingest-all", ["ingest"], []), ("ingest-w1", ["ingest"], ["workspaces/w1"]),
                                      ("search-all", ["search"], []), ("search-w1", ["search"], ["workspaces/w1"]),
                                      ("admin-2", ["admin"], []), ("revoked", ["ingest", "search"], [])]:
                args = ["keys", "create", "--name", name] + sum((["--scope", s] for s in scopes), []) \
                    + sum((["--workspace", w] for w in wss), [])
                secret = srv.cli(*args).strip().splitlines()[-1]
                keys[name] = {"secret": secret, "scopes": scopes, "workspaces": wss, "revoked": False}
            srv.cli("keys", "revoke", keys["revoked"]["secret"].split("_")[1])
            keys["revoked"]["revoked"] = True
            ingest(srv, keys)
            purge(srv)
        finally:
            srv.stop()
        version = subprocess.run([str(a.bin), "--version"], capture_output=True, text=True).stdout.strip()
        manifest = manifest_of(data, srv, keys, a.tag, a.commit, version)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(a.out, "w:gz", compresslevel=9) as tar:
            tar.add(data, arcname="data")
            body = json.dumps(manifest, indent=1, sort_keys=True).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mode, info.mtime = len(body), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(body))
        print(json.dumps(manifest["counts"]), file=sys.stderr)


if __name__ == "__main__":
    main()
