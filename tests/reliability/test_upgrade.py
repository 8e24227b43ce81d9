"""Upgrades: data directories written by earlier releases open with this build (design §4, issue 17
item 5), and a database newer than the build is refused.

Each ``tests/upgrade/fixtures/<release>.tar.gz`` was written by that release's binary
(``tests/upgrade/make_fixture.sh <tag>`` builds it from the git tag): a data directory as the
release left it, under umask 022, and ``manifest.json`` with every event's id and hash, the API
keys' secrets (test data), the last signed root and the public key. For each fixture:

* ``trailkeep verify`` (this build) passes on the old database as it is (read-only);
* ``serve`` applies the migrations (the schema ends at this build's version) and moves the
  server's keys out of the database: key files (PKCS#8 for the root-signing key, readable by the
  ``cryptography`` package with the public key of the fixture), the rows gone and their bytes gone
  from every database file, the directory 0700 and its files 0600;
* both dialects find every fixture event: Pangea search by hash, H2O search by event id (events
  whose content retention removed are excluded from searches, as they were before);
* the root at the fixture's size is unchanged, new events (both dialects) append to the same trail:
  a Pangea log naming the fixture's last root as ``prev_root`` gets a consistency proof from it that
  the Pangea SDK's code verifies, every step from that root to the new one verifies too, and the
  new root is signed with the fixture's public key;
* every fixture API key still authenticates with its scopes and workspace limits, the revoked one
  does not;
* every fixture event belongs to the default audit config, the old keys use it, and a custom
  config made after the upgrade works next to it (migration 0010);
* ``verify`` passes after the new writes and the server restarts on the upgraded directory.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import tarfile
from pathlib import Path
from typing import List, Tuple

import pytest

import relharness as rh

F = "upgrade"
FIXTURES = rh.REPO_ROOT / "tests" / "upgrade" / "fixtures"
SCHEMA_VERSION = len(list((rh.REPO_ROOT / "migrations").glob("*.sql")))


def _fixtures() -> List[Path]:
    return sorted(FIXTURES.glob("*.tar.gz"))


@pytest.fixture(params=_fixtures(), ids=lambda p: p.name.removesuffix(".tar.gz"))
def release(request, tk_tmp) -> Tuple[str, Path, dict]:
    """(release name, extracted data directory, manifest)."""
    name = request.param.name.removesuffix(".tar.gz")
    dest = tk_tmp / f"upgrade-{name}-{os.urandom(3).hex()}"
    dest.mkdir()
    with tarfile.open(request.param) as tar:
        try:
            tar.extractall(dest, filter="tar")  # keep the modes the old release gave its files
        except TypeError:  # Python without extraction filters
            tar.extractall(dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    return name, dest / "data", manifest


def _settings(db: Path) -> dict:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {k: bytes(v) for k, v in c.execute("SELECT key, value FROM settings")}
    finally:
        c.close()


def _user_version(db: Path) -> int:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return c.execute("PRAGMA user_version").fetchone()[0]
    finally:
        c.close()


def _pangea_hashes(api: rh.Api) -> List[str]:
    r = api.pangea("/v1/search", {"query": "", "start": "2000-01-01T00:00:00Z", "limit": 1000, "max_results": 10000})
    res = rh.pangea_ok(r)
    hashes = [e["hash"] for e in res["events"]]
    while len(hashes) < res["count"]:
        page = rh.pangea_ok(api.pangea("/v1/results", {"id": res["id"], "limit": 1000, "offset": len(hashes)}))
        if not page["events"]:
            break
        hashes += [e["hash"] for e in page["events"]]
    return hashes


def _modes(data: Path) -> List[str]:
    """Paths under the data directory whose mode grants anything to group or others."""
    bad = []
    for p in [data, *data.rglob("*")]:
        m = p.lstat().st_mode
        if stat.S_IMODE(m) & 0o077:
            bad.append(f"{p.relative_to(data.parent)} {stat.S_IMODE(m):04o}")
    return bad


def test_release_fixture_upgrades_and_continues_its_trail(release, new_server):
    from cryptography.hazmat.primitives import serialization
    from pangea.services.audit.util import decode_consistency_proof, decode_hash, verify_consistency_proof

    name, data, m = release
    problems: List[str] = []
    db = data / "trailkeep.db"
    before = _settings(db)
    seed, token = before.get("signing_key"), before.get("page_token_key")
    assert seed and token and _user_version(db) == m["schema_version"] < SCHEMA_VERSION, (
        f"{name}: the fixture should be a database from before the key store (schema {_user_version(db)})")
    rh.fig_set(F, f"{name}_events", m["counts"]["events"])
    rh.fig_set(F, f"{name}_modes_before", sorted({f"{stat.S_IMODE(p.stat().st_mode):04o}" for p in [data, db]}))

    srv = new_server(data_dir=data, start=False, extra_args=["--no-self-audit"])
    v = srv.verify()
    if v.returncode != 0:
        problems.append(f"verify on the {name} database as the old release left it: {v.stdout.strip()[-300:]}")
    srv.start()
    srv.admin_key = m["admin_key"]
    api = rh.Api(srv.url, srv.admin_key)

    # Migrations and the key move.
    after = _settings(db)
    if _user_version(db) != SCHEMA_VERSION:
        problems.append(f"schema version {_user_version(db)} after the upgrade, expected {SCHEMA_VERSION}")
    if set(after) != {"public_key", "tree_name"}:
        problems.append(f"settings after the upgrade: {sorted(after)} (the private keys should be gone)")
    public = base64.b64decode(m["tree"]["public_key"])
    if after.get("public_key") != public:
        problems.append("the recorded public key is not the fixture's")
    for f in sorted(data.glob("trailkeep.db*")):
        raw = f.read_bytes()
        for what, secret in (("signing key", seed), ("page-token key", token)):
            if secret in raw:
                problems.append(f"the {what}'s bytes are still in {f.name}")
    problems += [f"not private after the upgrade: {b}" for b in _modes(data)]
    # The substring index's groups (migration 0013): none yet below 64 complete segments.
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        groups = c.execute("SELECT group_segments, grouped_to FROM ngram_group_state").fetchall()
    finally:
        c.close()
    if groups != [(64, -1)]:
        problems.append(f"ngram_group_state after the upgrade: {groups}, expected [(64, -1)]")
    keys = data / "keys"
    try:
        pk = serialization.load_pem_private_key((keys / "root-signing.1.pem").read_bytes(), password=None)
        raw_pub = pk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if raw_pub != public:
            problems.append("keys/root-signing.1.pem does not hold the fixture's signing key")
        body = (keys / "page-token.1.pem").read_text().splitlines()
        if body[0] != "-----BEGIN TRAILKEEP HMAC KEY-----" or base64.b64decode("".join(body[1:-1])) != token:
            problems.append("keys/page-token.1.pem does not hold the fixture's page-token key")
    except (OSError, ValueError) as e:
        problems.append(f"the key files are not readable as PEM/PKCS#8: {e}")

    # Both dialects find every fixture event.
    live = [e for e in m["events"] if not e["purged"]]
    found = set(_pangea_hashes(api))
    missing = [e["hash"] for e in live if e["hash"] not in found]
    if missing:
        problems.append(f"Pangea search misses {len(missing)} of {len(live)} fixture events, e.g. {missing[:3]}")
    ids = {e["name"].removeprefix("events/") for e in api.h2o_search_all({})}
    missing = [e["id"] for e in live if e["id"] not in ids]
    if missing:
        problems.append(f"H2O search misses {len(missing)} of {len(live)} fixture events, e.g. {missing[:3]}")
    rh.fig_set(F, f"{name}_events_found", {"pangea": len(found), "h2o": len(ids), "fixture_searchable": len(live)})

    # Audit configs (migration 0010): every fixture event is the default config's, the old keys
    # use the default config, and a custom config works next to it on the upgraded trail.
    default_id = next(c["id"] for c in api.request("GET", "/api/v1/whoami").json()["configs"] if c["default"])
    shown = json.loads(srv.cli("configs", "show", default_id, "--data-dir", str(data)).stdout)
    if shown["events"] < m["counts"]["events"]:
        problems.append(f"the default config counts {shown['events']} events, the fixture has {m['counts']['events']}")
    for kname, k in m["api_keys"].items():
        if k["revoked"] or "admin" in k.get("scopes", []):
            continue
        got = [c["id"] for c in api.request("GET", "/api/v1/whoami", key=k["secret"]).json()["configs"]]
        if got != [default_id]:
            problems.append(f"API key {kname}: configs {got}, expected the default config only")
    made = rh.pangea_ok(api.pangea("/v1beta/config/create", {"name": "after-upgrade", "schema": {"fields": [
        {"id": "message", "type": "text", "required": True}, {"id": "n", "type": "integer"}]}}))
    r = api.pangea("/v1/log", {"event": {"message": "custom after the upgrade", "n": 7}, "config_id": made["id"]})
    if r.status_code != 200:
        problems.append(f"log into a new config after the upgrade: {rh.short(r)}")
    got = rh.pangea_ok(api.pangea("/v1/search", {"query": "n=7", "config_id": made["id"]}))
    if got["count"] != 1:
        problems.append(f"the new config's search found {got['count']} events, expected 1")
    if any(e["hash"] in found for e in got["events"]):
        problems.append("a fixture event shows in the new config's search")

    # The trail goes on from the fixture's last signed root.
    size, root_hash = m["tree"]["size"], m["tree"]["root_hash"]
    r = api.root(size)
    if rh.pangea_ok(r)["data"]["root_hash"] != root_hash:
        problems.append(f"the root at the fixture's size {size} changed: {rh.short(r)}")
    r = api.h2o_create(rh.h2o_event("workspaces/w3", token="after-upgrade-first"))
    if r.status_code != 200:
        problems.append(f"H2O create after the upgrade: {rh.short(r)}")
    # The Pangea client's check: a log naming the fixture's root as prev_root gets the consistency
    # proof from it to the new root, verified with the SDK's code.
    r = api.pangea("/v1/log", {"event": rh.pangea_event("workspaces/w1", message="after the upgrade"),
                               "verbose": True, "prev_root": root_hash})
    res = rh.pangea_ok(r) if r.status_code == 200 else {}
    if not res.get("consistency_proof") or not verify_consistency_proof(
            decode_hash(res["unpublished_root"]), decode_hash(root_hash),
            decode_consistency_proof(res["consistency_proof"])):
        problems.append(f"no verifiable consistency proof from the fixture's root: {rh.short(r)}")
    r = api.h2o_create(rh.h2o_event("workspaces/w2", token="after-upgrade"))
    if r.status_code != 200:
        problems.append(f"H2O create after the upgrade: {rh.short(r)}")
    new = rh.pangea_ok(api.root())["data"]
    if new["size"] <= size:
        problems.append(f"the tree did not grow: {new['size']} after {size}")
    prev = root_hash
    for s in range(size + 1, new["size"] + 1):
        step = rh.pangea_ok(api.root(s))["data"]
        if not rh.check_consistency_step(prev, step):
            problems.append(f"consistency from size {s - 1} to {s} does not verify")
        prev = step["root_hash"]
    signed = api.request("GET", f"/api/v1/roots/{new['size']}")
    if signed.status_code != 200 or not rh.verify_root_signature(m["tree"]["public_key"], signed.json()):
        problems.append(f"the new root is not signed with the fixture's key: {rh.short(signed)}")
    rh.fig_set(F, f"{name}_consistency_steps_verified", new["size"] - size)

    # The old API keys still authenticate, with their scopes and workspace limits.
    checked = 0
    for kname, k in m["api_keys"].items():
        r = api.request("GET", "/api/v1/whoami", key=k["secret"])
        want = 401 if k["revoked"] else 200
        checked += 1
        if r.status_code != want:
            problems.append(f"API key {kname}: whoami {r.status_code}, expected {want}")
            continue
        if not k["revoked"] and sorted(r.json().get("workspaces") or []) != sorted(k["workspaces"]):
            problems.append(f"API key {kname}: workspaces {r.json().get('workspaces')}, expected {k['workspaces']}")
    w1 = rh.Api(srv.url, m["api_keys"]["search-w1"]["secret"]).h2o_search_all({})
    if not w1 or any(e.get("workspace") != "workspaces/w1" for e in w1):
        problems.append(f"the W1 search key sees {len(w1)} events, some outside workspaces/w1")
    rh.fig_set(F, f"{name}_api_keys_checked", checked)

    # Verify after the new writes; the upgraded directory starts again (keys from the files).
    assert srv.stop() == 0
    v = srv.verify()
    if v.returncode != 0:
        problems.append(f"verify after the upgrade and new writes: {v.stdout.strip()[-300:]}")
    srv.start()
    if rh.pangea_ok(rh.Api(srv.url, srv.admin_key).root())["data"]["size"] != new["size"]:
        problems.append("the size changed across a restart")
    srv.stop()
    rh.fig_set(F, f"{name}_problems", len(problems))
    assert not problems, rh.problems_msg(f"upgrade from {name}", problems)


def test_a_database_newer_than_this_build_is_refused(new_server, release):
    """Downgrade: what an older binary meets on a newer database, met by this build on a schema
    version above its own: it refuses clearly and changes nothing."""
    name, data, m = release
    srv = new_server(data_dir=data, start=False, extra_args=["--no-self-audit"])
    srv.start()
    assert srv.stop() == 0
    db = data / "trailkeep.db"
    c = sqlite3.connect(db)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.commit()
    c.close()
    with pytest.raises(rh.ServerStartError) as ei:
        srv.start(timeout=30)
    out = ei.value.output
    assert ei.value.returncode == 2 and "newer than this trailkeep supports" in out, out[-600:]
    assert _user_version(db) == SCHEMA_VERSION + 1
    rh.fig_set(F, "newer_schema_refusal", next((l for l in out.splitlines() if "newer" in l), "")[:200])
