"""Conformance: the real Pangea SDK (PyPI ``pangea-sdk==6.13.0``, Audit service) against ``trailkeep serve``.

The spec is ``shared/spec/pangea-api.md``; section numbers below (§n) refer to it.  Everything runs
offline: the SDK's Arweave look-up is patched out (§12), so published roots come from ``v1/root``.

Fixtures ``server`` (session) and ``fresh_server`` (factory for a server on a new data dir) come
from ``conftest.py``.  Each test logs into its own random ``tenant_id`` (a workspace,
``workspaces/<uuid>``) and filters on it, so tests neither see nor disturb each other's data.
Tests that need the whole trail to be theirs (``dump_audit`` + ``deep_verify``, whose
``buffer_missing`` check counts gaps in leaf indexes) use ``fresh_server()``.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import time
import uuid
from pathlib import Path

import pytest
import requests

# --- offline: never ask Arweave for published roots (§12); patch before any client is used ----
import pangea.services.audit.audit as audit_module


def _no_arweave(tree_name, tree_sizes):  # noqa: ARG001
    return {}


audit_module.get_arweave_published_roots = _no_arweave

import pangea.exceptions as pe  # noqa: E402
from pangea import deep_verify, dump_audit, verify_audit  # noqa: E402
from pangea.asyncio.services import AuditAsync  # noqa: E402
from pangea.config import PangeaConfig  # noqa: E402
from pangea.services import Audit  # noqa: E402
from pangea.services.audit.models import (  # noqa: E402
    DownloadFormat,
    LogBulkResult,
    SearchOrder,
    SearchOrderBy,
)
from pangea.services.audit.models import EventVerification as V  # noqa: E402
from pangea.services.audit.util import (  # noqa: E402
    decode_consistency_proof,
    decode_hash,
    decode_membership_proof,
    verify_consistency_proof,
    verify_envelope_hash,
    verify_membership_proof,
)

verify_audit.get_arweave_published_roots = _no_arweave

HERE = Path(__file__).resolve().parent
TESTKEY = str(HERE / "testkey.pem")

ENVELOPE_KEYS = {"request_id", "request_time", "response_time", "status", "summary", "result"}
HEX64 = re.compile(r"[0-9a-f]{64}")
RECEIVED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
# §11.1: the public_key string the SDK sends for the test key (148 chars), echoed byte for byte.
PUBLIC_KEY_JSON = (
    r'{"algorithm":"ED25519","key":"-----BEGIN PUBLIC KEY-----\n'
    r'MCowBQYDK2VwAyEAlvOyDMpK2DQ16NI8G41yINl01wMHzINBahtDPoh4+mE=\n-----END PUBLIC KEY-----\n"}'
)
CSV_COLUMNS = [
    "received_at", "hash", "published", "leaf_index", "membership_proof", "tree_size", "timestamp",
    "actor", "action", "status", "source", "target", "tenant_id", "message", "new", "old",
    "signature", "public_key",
]  # fmt: skip


# ------------------------------------------------------------------------------------ helpers


def canon(obj) -> bytes:
    """Canonical JSON of §8.1 (what the SDK hashes and signs)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True).encode()


def envelope_hash(envelope: dict) -> str:
    """§8.3: lowercase hex SHA-256 of the canonical envelope, computed on the RAW JSON."""
    return hashlib.sha256(canon(envelope)).hexdigest()


def new_tenant() -> str:
    return f"workspaces/{uuid.uuid4()}"


def cfg(srv, **kw) -> PangeaConfig:
    return PangeaConfig(base_url_template=srv.url + "/pangea", **kw)


def client(srv, key, **kw) -> Audit:
    return Audit(key, config=cfg(srv), **kw)


def tq(tenant: str, query: str = "") -> str:
    """Restrict a query to one tenant: ``tenant_id:"T" (query)``."""
    query = query.strip()
    return f'tenant_id:"{tenant}"' + (f" ({query})" if query else "")


def raw(srv, method, path, *, key=None, body=None, data=None, headers=None) -> requests.Response:
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    if data is None and body is not None:
        data = json.dumps(body)
    return requests.request(method, f"{srv.url}/pangea/{path}", data=data, headers=h, timeout=60)


def envelope(r: requests.Response, http: int | tuple | None = None, status: str | None = None) -> dict:
    """Check the §3.1 envelope of a raw response and return its JSON."""
    assert r.status_code < 500, f"5xx: {r.status_code} {r.text[:300]}"
    if http is not None:
        codes = http if isinstance(http, tuple) else (http,)
        assert r.status_code in codes, f"HTTP {r.status_code}, wanted {codes}: {r.text[:300]}"
    assert r.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", r.headers
    j = r.json()
    assert isinstance(j, dict) and set(j) == ENVELOPE_KEYS, j
    for k in ("request_id", "request_time", "response_time", "status", "summary"):
        assert isinstance(j[k], str) and j[k], (k, j)
    assert j["result"] is None or isinstance(j["result"], dict), j
    if status is not None:
        assert j["status"] == status, j
    return j


def error_codes(j: dict) -> list[tuple[str, str]]:
    res = j.get("result") or {}
    errs = res.get("errors") or []
    assert errs, f"ValidationError without errors: {j}"
    for e in errs:
        for k in ("code", "detail", "source"):
            assert isinstance(e.get(k), str), e
    return [(e["code"], e["source"]) for e in errs]


def validation(r: requests.Response, code: str | None = None, source_prefix: str | None = None) -> dict:
    j = envelope(r, 400 if code != "AboveMaxLength" else (400, 413), "ValidationError")
    codes = error_codes(j)
    if code is not None:
        assert any(c == code for c, _ in codes), codes
    if source_prefix is not None:
        assert any(s.startswith(source_prefix) for c, s in codes if code is None or c == code), codes
    return j


def exc_codes(exc: pe.PangeaAPIException) -> list[tuple[str, str]]:
    return [(e.code, e.source) for e in exc.errors]


def search_all(audit: Audit, query: str, **kw) -> tuple[list, dict]:
    """All events of a search (first page + v1/results pages), plus the raw search result."""
    s = audit.search(query=query, limit=kw.pop("limit", 1000), **kw)
    events = list(s.result.events)
    while len(events) < s.result.count:
        p = audit.results(s.result.id, limit=1000, offset=len(events))
        assert p.result.events, "results page is empty before count was reached"
        events += p.result.events
    assert len(events) == s.result.count
    return events, s.json["result"]


def count_of(audit: Audit, query: str) -> int:
    return audit.search(query=query, limit=1).result.count


def wait_count(audit: Audit, query: str, n: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        c = count_of(audit, query)
        if c >= n or time.monotonic() > deadline:
            return c
        time.sleep(0.2)


def reset_verify_audit(audit: Audit | None):
    verify_audit.arweave_roots.clear()
    verify_audit.pangea_roots.clear()
    verify_audit.audit = audit


def parse_time(s: str) -> dt.datetime:
    """RFC 3339 -> aware datetime (fraction truncated to µs; no offset = UTC)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)?", s)
    assert m, f"not RFC 3339: {s!r}"
    frac = (m.group(3) or "")[:6].ljust(6, "0")
    off = m.group(4) or "Z"
    off = "+00:00" if off in ("Z", "z") else off
    return dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}.{frac}{off}")


def fetch_gz(url: str) -> bytes:
    r = requests.get(url, timeout=60)  # no Authorization: it is a capability URL (§6.7)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.content[:2] == b"\x1f\x8b", f"not gzip: {r.content[:20]!r} {r.headers}"
    return gzip.decompress(r.content)


def poll_until_done(audit: Audit, request_id: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return audit.poll_result(request_id=request_id)
        except pe.AcceptedRequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def key(server) -> str:
    """An unrestricted ingest + search key."""
    return server.create_key(["ingest", "search"], name="pangea-conformance")


@pytest.fixture()
def tenant() -> str:
    return new_tenant()


@pytest.fixture()
def audit(server, key, tenant) -> Audit:
    """A fresh SDK client with the test signing key, logging into this test's tenant."""
    return client(server, key, private_key_file=TESTKEY, tenant_id=tenant)


# ============================================================================ §14.1 basic flow


def test_testkey_matches_spec():
    from pangea.services.audit.signing import Signer

    signer = Signer(TESTKEY)
    assert "MCowBQYDK2VwAyEAlvOyDMpK2DQ16NI8G41yINl01wMHzINBahtDPoh4+mE=" in signer.get_public_key_PEM()
    pki = json.dumps({"algorithm": "ED25519", "key": signer.get_public_key_PEM()}, separators=(",", ":"), sort_keys=True)
    assert pki == PUBLIC_KEY_JSON and len(pki) == 148


def test_log_verify_membership_signature_consistency(audit, tenant):
    r1 = audit.log(message="first", verify=True, sign_local=True)
    assert r1.http_status == 200 and r1.status == "Success"
    res = r1.result
    assert HEX64.fullmatch(res.hash)
    assert res.membership_verification == V.PASS
    assert res.signature_verification == V.PASS
    # a fresh client sends no prev_root, so there is no consistency proof (§6.1)
    assert res.consistency_proof is None and res.consistency_verification == V.NONE
    env = r1.json["result"]["envelope"]
    assert set(env) == {"event", "received_at", "signature", "public_key"}
    assert env["event"] == {"message": "first", "tenant_id": tenant}
    assert env["public_key"] == PUBLIC_KEY_JSON
    assert RECEIVED_AT.fullmatch(env["received_at"]), env["received_at"]
    assert envelope_hash(env) == res.hash
    assert HEX64.fullmatch(r1.json["result"]["unpublished_root"])

    r2 = audit.log(message="second", actor="alice", verify=True, sign_local=True)
    res2 = r2.result
    assert res2.consistency_verification == V.PASS
    assert res2.membership_verification == V.PASS
    assert res2.signature_verification == V.PASS
    assert isinstance(r2.json["result"]["consistency_proof"], list) and r2.json["result"]["consistency_proof"]
    assert r2.json["result"]["envelope"]["event"] == {"message": "second", "actor": "alice", "tenant_id": tenant}
    assert envelope_hash(r2.json["result"]["envelope"]) == res2.hash

    r3 = audit.log(message="third, unsigned", verify=True)
    assert r3.result.consistency_verification == V.PASS
    assert r3.result.membership_verification == V.PASS
    assert r3.result.signature_verification == V.NONE
    assert set(r3.json["result"]["envelope"]) == {"event", "received_at"}
    # received_at strictly increases (P11)
    ts = [r.json["result"]["envelope"]["received_at"] for r in (r1, r2, r3)]
    assert ts == sorted(ts) and len(set(ts)) == 3


def test_log_non_verbose_returns_hash_only(audit):
    r = audit.log(message="plain")
    assert set(r.json["result"]) == {"hash"}
    assert HEX64.fullmatch(r.result.hash)


def test_log_unknown_prev_root_omits_consistency_proof(server, key, tenant):
    r = raw(server, "POST", "v1/log", key=key,
            body={"event": {"message": "m", "tenant_id": tenant}, "verbose": True, "prev_root": "0" * 64})
    j = envelope(r, 200, "Success")
    res = j["result"]
    assert "consistency_proof" not in res
    assert {"hash", "envelope", "unpublished_root", "membership_proof"} <= set(res)
    assert all(v is not None for v in res["envelope"].values())
    assert envelope_hash(res["envelope"]) == res["hash"]
    proof = decode_membership_proof(res["membership_proof"])
    assert verify_membership_proof(decode_hash(res["hash"]), decode_hash(res["unpublished_root"]), proof)


def test_log_prev_root_from_another_client_chain(server, key, tenant):
    """A client's prev_root stays usable after other clients' writes (consistency across seals)."""
    a = client(server, key, tenant_id=tenant)
    b = client(server, key, tenant_id=tenant)
    assert a.log(message="a1", verify=True).result.membership_verification == V.PASS
    for i in range(3):
        b.log(message=f"b{i}")
    r = a.log(message="a2", verify=True)
    assert r.result.consistency_verification == V.PASS
    assert r.result.membership_verification == V.PASS


def test_log_bulk_verbose(audit, tenant):
    events = [{"message": "b1"}, {"message": "b2", "actor": "x", "new": {"k": [1, {"z": 1, "y": 2}]}}]
    r = audit.log_bulk(events, verbose=True, sign_local=True)
    assert r.http_status == 200 and r.status == "Success"
    raw_results = r.json["result"]["results"]
    assert len(r.result.results) == 2 == len(raw_results)
    for i, (res, rr) in enumerate(zip(r.result.results, raw_results)):
        assert HEX64.fullmatch(res.hash)
        assert envelope_hash(rr["envelope"]) == rr["hash"] == res.hash
        assert verify_envelope_hash(res.envelope, res.hash)
        assert res.signature_verification == V.PASS
        assert rr["envelope"]["event"]["message"] == f"b{i + 1}"
        assert rr["envelope"]["event"]["tenant_id"] == tenant
        assert rr["envelope"]["public_key"] == PUBLIC_KEY_JSON
    assert raw_results[1]["envelope"]["event"]["new"] == '{"k":[1,{"y":2,"z":1}]}'
    # as Pangea: per-item hash (+ envelope when verbose), no proofs or roots (§6.2)
    for rr in raw_results:
        assert not {"membership_proof", "unpublished_root", "consistency_proof"} & set(rr), rr

    r2 = audit.log_bulk([{"message": "b3"}])
    items = r2.json["result"]["results"]
    assert len(items) == 1 and "envelope" not in items[0] and HEX64.fullmatch(items[0]["hash"])


def test_log_bulk_async_accepted_then_poll(server, key, audit, tenant):
    events = [{"message": f"async{i}"} for i in range(3)]
    r = audit.log_bulk_async(events, sign_local=True, verbose=True)
    assert r.http_status == 202
    assert r.status == "Accepted"
    assert r.result is None
    assert set(r.json) == ENVELOPE_KEYS
    acc = r.accepted_result
    assert acc is not None and isinstance(acc.ttl_mins, int) and isinstance(acc.retry_counter, int)
    assert acc.location.endswith(f"request/{r.request_id}"), acc.location
    rid = r.request_id

    # the raw poll returns the LogBulkResult (P19)
    g = raw(server, "GET", f"request/{rid}", key=key)
    j = envelope(g, 200, "Success")
    polled = j["result"]["results"]
    assert len(polled) == 3
    for item in polled:
        assert HEX64.fullmatch(item["hash"])

    # the SDK's own poll parses it as LogBulkResult
    p = audit.poll_result(request_id=rid, result_class=LogBulkResult)
    assert p.status == "Success" and [x.hash for x in p.result.results] == [x["hash"] for x in polled]

    # the events become searchable, with the same hashes
    assert wait_count(audit, tq(tenant), 3) == 3
    found, _ = search_all(audit, tq(tenant), order="asc")
    assert [e.hash for e in found] == [x["hash"] for x in polled]
    assert [e.envelope.event["message"] for e in found] == ["async0", "async1", "async2"]
    assert all(e.signature_verification == V.PASS for e in found)

    # another key may not poll it; unknown ids are NotFound (§4)
    other = server.create_key(["ingest", "search"])
    j = envelope(raw(server, "GET", f"request/{rid}", key=other), (401, 403), "Unauthorized")
    assert j["result"] is None
    envelope(raw(server, "GET", "request/prq_" + "0" * 32, key=key), 404, "NotFound")


def test_search_verify_and_results_paging(audit, tenant):
    audit.log(message="e0", verify=True, sign_local=True)
    audit.log(message="e1", actor="alice", verify=True)
    audit.log_bulk([{"message": "e2"}, {"message": "e3"}, {"message": "e4"}], sign_local=True)

    s = audit.search(query=tq(tenant, 'message:""'), order="asc", limit=2, max_results=3, verify_consistency=True)
    assert s.status == "Success"
    assert len(s.result.events) == 2 and s.result.count == 3
    assert re.fullmatch(r"pas_[a-z0-9]{32}", s.result.id), s.result.id
    exp = s.result.expires_at
    assert exp.tzinfo is not None
    hours = (exp - dt.datetime.now(dt.timezone.utc)).total_seconds() / 3600
    assert 47 < hours < 49, exp
    assert [e.envelope.event["message"] for e in s.result.events] == ["e0", "e1"]
    for e in s.result.events:
        assert e.published is True
        assert isinstance(e.leaf_index, int)
        assert e.membership_verification == V.PASS
        assert e.consistency_verification == V.PASS
    assert s.result.events[0].signature_verification == V.PASS
    assert s.result.events[1].signature_verification == V.NONE
    raw_res = s.json["result"]
    assert HEX64.fullmatch(raw_res["root"]["tree_name"]) and HEX64.fullmatch(raw_res["root"]["root_hash"])
    assert raw_res["root"]["size"] >= 1
    assert {"tree_name", "size", "root_hash"} <= set(raw_res["unpublished_root"])
    # P2: every write seals, so the unpublished tree equals the newest published one
    assert raw_res["unpublished_root"]["root_hash"] == raw_res["root"]["root_hash"]
    for ev in raw_res["events"]:
        assert envelope_hash(ev["envelope"]) == ev["hash"]

    p = audit.results(s.result.id, limit=1, offset=2, verify_consistency=True)
    assert p.result.count == 3
    assert [e.envelope.event["message"] for e in p.result.events] == ["e2"]
    assert p.result.events[0].membership_verification == V.PASS
    assert p.result.events[0].consistency_verification == V.PASS
    assert p.json["result"]["root"]["size"] == raw_res["root"]["size"]  # frozen roots (P9)

    empty = audit.results(s.result.id, offset=3)
    assert empty.status == "Success" and empty.result.events == [] and empty.result.count == 3
    with pytest.raises(pe.BadOffsetException):
        audit.results(s.result.id, offset=4)

    # no max_results: everything, paged through v1/results, in log order; desc is the exact reverse
    s_all = audit.search(query=tq(tenant), order="asc", limit=2, verify_consistency=True)
    assert s_all.result.count == 5
    msgs = [e.envelope.event["message"] for e in s_all.result.events]
    for off in (2, 4):
        page = audit.results(s_all.result.id, limit=2, offset=off, verify_consistency=True)
        assert all(e.membership_verification == V.PASS for e in page.result.events)
        msgs += [e.envelope.event["message"] for e in page.result.events]
    assert msgs == ["e0", "e1", "e2", "e3", "e4"]
    desc, _ = search_all(audit, tq(tenant), order="desc")
    assert [e.envelope.event["message"] for e in desc] == msgs[::-1]
    default_order, _ = search_all(audit, tq(tenant))
    assert [e.envelope.event["message"] for e in default_order] == msgs[::-1]  # default desc (P6)


def test_search_verbosity(audit, tenant):
    audit.log_bulk([{"message": "v1"}, {"message": "v2"}])
    default = audit.search(query=tq(tenant)).json["result"]  # verbose by default (§6.4)
    assert "root" in default and "unpublished_root" in default
    for ev in default["events"]:
        assert ev["published"] is True and isinstance(ev["leaf_index"], int) and "membership_proof" in ev
    quiet = audit.search(query=tq(tenant), verbose=False).json["result"]
    assert "root" not in quiet and "unpublished_root" not in quiet
    assert len(quiet["events"]) == 2
    for ev in quiet["events"]:
        assert ev["published"] is True
        assert "membership_proof" not in ev and "leaf_index" not in ev
        assert HEX64.fullmatch(ev["hash"]) and envelope_hash(ev["envelope"]) == ev["hash"]
    # results follow the verbosity of the original search
    q = audit.search(query=tq(tenant), verbose=False, limit=1)
    page = audit.results(q.result.id, offset=1).json["result"]
    assert "root" not in page and all("membership_proof" not in ev for ev in page["events"])


def test_results_are_frozen_at_search_time(audit, tenant):
    audit.log_bulk([{"message": "f1"}, {"message": "f2"}])
    s = audit.search(query=tq(tenant), limit=1)
    size = s.json["result"]["root"]["size"]
    audit.log(message="f3")
    p = audit.results(s.result.id, limit=10, offset=0)
    assert p.result.count == 2 and len(p.result.events) == 2
    assert p.json["result"]["root"]["size"] == size
    assert count_of(audit, tq(tenant)) == 3


def test_search_default_limit_and_max_results(audit, tenant):
    audit.log_bulk([{"message": f"n{i:02d}"} for i in range(25)])
    s = audit.search(query=tq(tenant))
    assert s.result.count == 25 and len(s.result.events) == 20  # default limit 20 (P6)
    s = audit.search(query=tq(tenant), max_results=10, limit=4)
    assert s.result.count == 10 and len(s.result.events) == 4
    assert audit.results(s.result.id, offset=10).result.events == []
    with pytest.raises(pe.BadOffsetException):
        audit.results(s.result.id, offset=11)
    p = audit.results(s.result.id, offset=8, limit=5)
    assert len(p.result.events) == 2


def test_root_every_size_and_consistency(server, audit):
    audit.log(message="root-1")
    audit.log(message="root-2")
    r = audit.root()
    assert r.status == "Success"
    assert set(r.json["result"]) == {"data"}
    d = r.json["result"]["data"]
    n = d["size"]
    assert isinstance(n, int) and n >= 2
    assert HEX64.fullmatch(d["tree_name"]) and HEX64.fullmatch(d["root_hash"])
    assert isinstance(d["published_at"], str) and parse_time(d["published_at"])
    assert isinstance(d["url"], str) and d["url"]
    assert isinstance(d["consistency_proof"], list) and d["consistency_proof"]

    sizes = sorted(set(range(1, min(n, 120) + 1)) | set(range(max(1, n - 40), n + 1)) | {max(1, n // 2)})
    roots = {}
    for size in sizes:
        rr = audit.root(tree_size=size)
        data = rr.json["result"]["data"]
        assert data["size"] == size
        assert data["tree_name"] == d["tree_name"]
        assert isinstance(data["published_at"], str) and isinstance(data["url"], str) and data["url"]
        if size == 1:
            assert "consistency_proof" not in data or data["consistency_proof"] is None
        else:
            assert isinstance(data["consistency_proof"], list) and data["consistency_proof"]
        roots[size] = data
    assert roots[n]["root_hash"] == d["root_hash"]
    for size in sizes:
        if size >= 2 and size - 1 in roots:
            ok = verify_consistency_proof(
                new_root=decode_hash(roots[size]["root_hash"]),
                prev_root=decode_hash(roots[size - 1]["root_hash"]),
                proof=decode_consistency_proof(roots[size]["consistency_proof"]),
            )
            assert ok, f"consistency {size - 1} -> {size} fails"
    # roots never change once issued
    for size in (1, max(1, n // 2), n):
        assert audit.root(tree_size=size).json["result"]["data"] == roots[size]


def test_root_tree_not_found_and_bad_size(audit):
    with pytest.raises(pe.TreeNotFoundException) as ei:
        audit.root(tree_size=10**6)
    assert ei.value.response.http_status == 404
    with pytest.raises(pe.ValidationException) as ei:
        audit.root(tree_size=0)
    assert any(c == "NotWithinRange" for c, _ in exc_codes(ei.value))


def test_wrong_token_unauthorized(server):
    bad = client(server, "tk_not_a_real_key_0123456789")
    with pytest.raises(pe.UnauthorizedException) as ei:
        bad.log(message="nope")
    assert ei.value.response.http_status == 401
    with pytest.raises(pe.UnauthorizedException):
        bad.search(query="")
    with pytest.raises(pe.UnauthorizedException):
        bad.root()
    j = envelope(raw(server, "POST", "v1/log", body={"event": {"message": "x"}}), 401, "Unauthorized")
    assert j["result"] is None


def test_log_event_without_message_is_validation_error(audit):
    with pytest.raises(pe.ValidationException) as ei:
        audit.log_event({"actor": "x"})
    assert ("FieldRequired", "/event/message") in exc_codes(ei.value)
    assert ei.value.response.http_status == 400


def test_asyncio_client(server, key, tenant):
    async def main():
        a = AuditAsync(key, config=cfg(server), private_key_file=TESTKEY, tenant_id=tenant)
        try:
            r1 = await a.log(message="async-one", verify=True, sign_local=True)
            assert r1.result.membership_verification == V.PASS
            assert r1.result.signature_verification == V.PASS
            r2 = await a.log(message="async-two", actor="bob", verify=True, sign_local=True)
            assert r2.result.consistency_verification == V.PASS
            assert r2.result.membership_verification == V.PASS
            b = await a.log_bulk([{"message": "async-three"}, {"message": "async-four"}], verbose=True)
            assert len(b.result.results) == 2
            s = await a.search(query=tq(tenant), order=SearchOrder.ASC, limit=3, verify_consistency=True)
            assert s.result.count == 4 and len(s.result.events) == 3
            assert [e.envelope.event["message"] for e in s.result.events] == ["async-one", "async-two", "async-three"]
            for e in s.result.events:
                assert e.membership_verification == V.PASS
                assert e.consistency_verification == V.PASS
            assert s.result.events[0].signature_verification == V.PASS
            p = await a.results(s.result.id, limit=5, offset=3, verify_consistency=True)
            assert [e.envelope.event["message"] for e in p.result.events] == ["async-four"]
            assert p.result.events[0].membership_verification == V.PASS
            root = await a.root()
            assert root.result.data.size >= 4
            acc = await a.log_bulk_async([{"message": "async-five"}])
            assert acc.http_status == 202 and acc.result is None
        finally:
            await a.close()

    asyncio.run(main())


# ============================================================================ §8.4 vector A


def test_vector_a_signed_event(server, key):
    a = client(server, key, private_key_file=TESTKEY)
    r = a.log(
        message="hello world", actor="alice", action="login", new={"b": 2, "a": 1}, status="success",
        timestamp=dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc),
        sign_local=True, verify=True,
    )  # fmt: skip
    env = r.json["result"]["envelope"]
    assert env["event"] == {
        "action": "login", "actor": "alice", "message": "hello world", "new": '{"a":1,"b":2}',
        "status": "success", "timestamp": "2024-05-01T12:00:00.123456Z",
    }  # fmt: skip
    assert env["signature"] == (
        "IYDK5DI6n09gliJsXE8eGuHkERWcRoBKm5WEAW5hNdpBojHSq/gro9ejgviyFlsmurVXZprebf1k7V00QjXBCw=="
    )
    assert env["public_key"] == PUBLIC_KEY_JSON
    assert set(env) == {"event", "received_at", "signature", "public_key"}
    # the canonical bytes of §8.4 with this server's received_at
    expected = (
        '{"event":{"action":"login","actor":"alice","message":"hello world","new":"{\\"a\\":1,\\"b\\":2}",'
        '"status":"success","timestamp":"2024-05-01T12:00:00.123456Z"},"public_key":"{\\"algorithm\\":'
        '\\"ED25519\\",\\"key\\":\\"-----BEGIN PUBLIC KEY-----\\\\nMCowBQYDK2VwAyEAlvOyDMpK2DQ16NI8G41yINl01wMHzINBah'
        'tDPoh4+mE=\\\\n-----END PUBLIC KEY-----\\\\n\\"}","received_at":"' + env["received_at"] + '","signature":'
        '"IYDK5DI6n09gliJsXE8eGuHkERWcRoBKm5WEAW5hNdpBojHSq/gro9ejgviyFlsmurVXZprebf1k7V00QjXBCw=="}'
    )
    assert canon(env) == expected.encode()
    assert r.result.hash == hashlib.sha256(expected.encode()).hexdigest()
    # sanity of the expected bytes: with the spec's received_at they hash to the spec's value
    spec_bytes = expected.replace(env["received_at"], "2024-05-01T12:00:01.000001Z").encode()
    assert hashlib.sha256(spec_bytes).hexdigest() == "5410ef7c0caebf6c3d1f11374983e1f5cb967e33e7952711bdc4e1952cfa053d"
    assert verify_envelope_hash(r.result.envelope, r.result.hash)
    assert r.result.signature_verification == V.PASS
    assert r.result.membership_verification == V.PASS

    # raw, byte for byte: the SDK's own request body (Python separators)
    body = json.dumps({"event": env["event"], "verbose": True, "signature": env["signature"],
                       "public_key": PUBLIC_KEY_JSON})  # fmt: skip
    j = envelope(raw(server, "POST", "v1/log", key=key, data=body), 200, "Success")
    env2 = j["result"]["envelope"]
    assert env2["public_key"] == PUBLIC_KEY_JSON and env2["signature"] == env["signature"]
    assert env2["event"] == env["event"]
    assert j["result"]["hash"] == envelope_hash(env2)

    # and search returns it unchanged, verifying
    s = a.search(query='actor:alice action:login message:"hello world" timestamp:"2024-05-01T12:00:00.123456Z"',
                 verify_consistency=True, limit=1000)  # fmt: skip
    mine = [e for e in s.result.events if e.hash == r.result.hash]
    assert len(mine) == 1
    assert mine[0].signature_verification == V.PASS and mine[0].membership_verification == V.PASS


def test_minimal_event_hash_shape(server, key):
    j = envelope(raw(server, "POST", "v1/log", key=key, body={"event": {"message": "test"}, "verbose": True}), 200)
    env = j["result"]["envelope"]
    assert set(env) == {"event", "received_at"} and env["event"] == {"message": "test"}
    assert j["result"]["hash"] == envelope_hash(env)
    assert j["summary"]


def test_signed_event_unverifiable_is_still_stored(audit, tenant):
    """P16: never reject because of a signature, store verbatim (zero-µs datetimes sign a different text)."""
    ts = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    r = audit.log(message="zero-us", timestamp=ts, sign_local=True, verify=True)
    assert r.json["result"]["envelope"]["event"]["timestamp"] == "2024-01-02T03:04:05Z"
    assert r.result.signature_verification == V.FAIL
    r2 = audit.log(message="offset", timestamp=dt.datetime(2024, 1, 2, 3, 4, 5, 7, tzinfo=dt.timezone(dt.timedelta(hours=2))),
                   sign_local=True, verify=True)  # fmt: skip
    assert r2.json["result"]["envelope"]["event"]["timestamp"] == "2024-01-02T03:04:05.000007+02:00"
    assert r2.result.signature_verification == V.PASS


# ============================================================================ §7 query language

QDATA = [
    {"message": "alpha login ok", "actor": "alice", "action": "login", "status": "success", "source": "web",
     "target": "db1", "timestamp": "2024-01-01T00:00:00Z"},
    {"message": "beta logout", "actor": "bob", "action": "logout", "status": "failure", "source": "cli",
     "target": "db2", "timestamp": "2024-12-31T23:59:59.5+02:00"},
    {"message": "gamma changed", "actor": "Jane Doe", "action": "update", "status": "success", "source": "web",
     "target": "db3", "new": "newval-xyz", "old": "oldval-abc"},
    {"message": "delta removed", "actor": "Dennis", "action": "delete", "status": "success", "source": "api",
     "target": "db1"},
    {"message": "epsilon upper", "actor": "ALICE", "action": "login", "status": "pending", "source": "web"},
    {"message": "zeta bare"},
    {"message": "ticket OPS-306 closed", "actor": "carol", "action": "close", "source": "api"},
    {"message": 'quote "inner" and back\\slash', "actor": "dave"},
]  # fmt: skip
QKEYS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "ticket", "quote"]
ALL = set(QKEYS)


@pytest.fixture(scope="module")
def qdata(server, key):
    tenant = new_tenant()
    a = client(server, key, tenant_id=tenant)
    for ev in QDATA:  # one request each: distinct buffers and received_at
        a.log_event(dict(ev))
    events, _ = search_all(a, tq(tenant), order="asc")
    assert [e.envelope.event["message"].split()[0] for e in events] == QKEYS
    raw_received = [e["envelope"]["received_at"] for e in a.search(query=tq(tenant), order="asc").json["result"]["events"]]
    return {"audit": a, "tenant": tenant, "raw_received": raw_received}


def q(qd, query, **kw) -> list[str]:
    events, _ = search_all(qd["audit"], tq(qd["tenant"], query), order=kw.pop("order", "asc"), **kw)
    return [e.envelope.event["message"].split()[0] for e in events]


QUERIES = [
    ("actor:alice", {"alpha"}),
    ("actor:ali", {"alpha"}),
    ('actor:"Jane Doe"', {"gamma"}),
    ('actor:"Jane"', {"gamma"}),
    ('-actor:"Dennis"', ALL - {"delta"}),
    ("-actor:alice", ALL - {"alpha"}),
    ("login", {"alpha", "epsilon"}),
    ("logi", {"alpha", "epsilon"}),
    ("ogou", {"beta"}),
    ("ALICE", {"epsilon"}),
    ("alice", {"alpha"}),
    ("db1", {"alpha", "delta"}),
    ("actor:alice OR actor:bob", {"alpha", "beta"}),
    ("(actor:alice OR actor:bob) status:success", {"alpha"}),
    ("actor:alice AND action:login", {"alpha"}),
    ("action:login -actor:alice", {"epsilon"}),
    ("-(action:login OR action:logout)", ALL - {"alpha", "beta", "epsilon"}),
    ("actor:bob OR actor:carol OR actor:dave", {"beta", "ticket", "quote"}),
    ("source:web status:success OR source:api", {"alpha", "gamma", "delta", "ticket"}),
    ('message:""', ALL),
    ('actor:""', ALL - {"zeta"}),
    ('-actor:""', {"zeta"}),
    ("new:newval", {"gamma"}),
    ("old:oldval", {"gamma"}),
    ("newval", {"gamma"}),
    ("source:web target:db1", {"alpha"}),
    ("status:succ", {"alpha", "gamma", "delta"}),
    ("OPS-306", {"ticket"}),
    ("message:OPS-306", {"ticket"}),
    ('message:"\\"inner\\""', {"quote"}),
    ("back\\slash", {"quote"}),
    ('message:"alpha login"', {"alpha"}),
    ('"login ok"', {"alpha"}),
    ("alice or bob", set()),
    ("actor=alice", {"alpha"}),
    ("actor=ali", set()),
    # comparisons: bounded on both sides, so that events without a timestamp give the same answer
    # whether a missing timestamp is "no match" or falls back to received_at (architecture.md mapping)
    ("timestamp>2024-06-01T00:00:00Z timestamp<2025-06-01T00:00:00Z", {"beta"}),
    ("timestamp<2024-06-01T00:00:00Z", {"alpha"}),
    ("timestamp>=2024-01-01T00:00:00Z timestamp<2025-06-01T00:00:00Z", {"alpha", "beta"}),
    ("timestamp>2024-01-01T00:00:00Z timestamp<2025-06-01T00:00:00Z", {"beta"}),
    ("received_at>=2024-01-01T00:00:00Z", ALL),
    ("received_at<2024-01-01T00:00:00Z", set()),
    ("timestamp<=2024-12-31T21:59:59.5Z", {"alpha", "beta"}),
    ("timestamp<2024-12-31T21:59:59.5Z", {"alpha"}),
    ("nomatchxyz", set()),
    ("", ALL),
]


@pytest.mark.parametrize(("query", "expected"), QUERIES, ids=[x[0] or "<empty>" for x in QUERIES])
def test_query_language(qdata, query, expected):
    got = q(qdata, query)
    assert set(got) == expected, f"{query!r}: got {got}"
    assert len(got) == len(set(got))


def test_query_empty_matches_everything(qdata):
    a = qdata["audit"]
    assert a.search(query="", search_restriction={"tenant_id": [qdata["tenant"]]}).result.count == len(QKEYS)
    assert a.search(query='message:""', search_restriction={"tenant_id": [qdata["tenant"]]}).result.count == len(QKEYS)


SYNTAX_ERRORS = ['"alice', "alice AND", "(", ")", "alice OR", "(alice", "alice)", "AND", 'actor:"x', "()"]


@pytest.mark.parametrize("query", SYNTAX_ERRORS)
def test_query_syntax_error(server, key, query):
    a = client(server, key)
    with pytest.raises(pe.ValidationException) as ei:
        a.search(query=query)
    assert ei.value.response.http_status == 400
    assert ("BadFormat", "/query") in exc_codes(ei.value)
    validation(raw(server, "POST", "v1/search", key=key, body={"query": query}), "BadFormat", "/query")


@pytest.mark.parametrize("query", ["foo:bar", "actors:alice", "-foo:bar", "(foo:bar OR actor:x)", "foo=bar", "hash:abc"])
def test_query_unknown_field(server, key, query):
    with pytest.raises(pe.ValidationException) as ei:
        client(server, key).search(query=query)
    codes = exc_codes(ei.value)
    assert ("BadFormat", "/query") in codes
    assert any("unknown field" in e.detail for e in ei.value.errors), ei.value.errors


HOSTILE_QUERIES = [
    "OPS-306", "a*", '"a" NEAR b', "NEAR(a b)", "^x", "{x}", "'x'", "\\", "x\\", "NOT alice", "message:a:b",
    "col:val", "a AND AND b", "- alice", "--alice", "-", "::", ":x", "x:", '""', '"\\"', "\x00", "é☃😀", "a" * 5000,
    " ".join(["t"] * 100), "(" * 100 + "x" + ")" * 100, "timestamp>yesterday", "received_at<=2024-01-01T00:00:00Z",
    "actor>alice", "%", "_", "x' OR '1'='1", "\"; DROP TABLE events; --",
]  # fmt: skip


@pytest.mark.parametrize("query", HOSTILE_QUERIES, ids=[f"h{i}" for i in range(len(HOSTILE_QUERIES))])
def test_query_never_5xx(server, key, query):
    r = raw(server, "POST", "v1/search", key=key, body={"query": query, "limit": 1})
    j = envelope(r, (200, 400))
    if j["status"] != "Success":
        assert j["status"] == "ValidationError", j
        for e in j["result"]["errors"]:
            assert len(e["detail"]) <= 200
            assert "sqlite" not in e["detail"].lower() and "no such column" not in e["detail"].lower()


def test_query_fts_lookalike_matches_literally(qdata):
    assert q(qdata, "OPS-306") == ["ticket"]
    assert q(qdata, '"OPS-306 closed"') == ["ticket"]


# --- start / end (§6.4.1) -----------------------------------------------------------------


@pytest.mark.parametrize("rel", ["1h", "7d", "2days", "90min", "3600s", "1w", "1mo", "1y", "2hours", "10minutes"])
def test_start_relative_includes_recent(qdata, rel):
    assert set(q(qdata, "", start=rel)) == ALL


@pytest.mark.parametrize(("start", "end"), [(None, "1h"), (None, "7d"), ("2d", "1d")])
def test_end_relative_excludes_recent(qdata, start, end):
    kw = {"end": end}
    if start:
        kw["start"] = start
    assert q(qdata, "", **kw) == []


def test_start_end_rfc3339_inclusive(qdata):
    rr = qdata["raw_received"]
    assert q(qdata, "", start=rr[2]) == QKEYS[2:]
    assert q(qdata, "", end=rr[2]) == QKEYS[:3]
    assert q(qdata, "", start=rr[3], end=rr[3]) == [QKEYS[3]]
    assert q(qdata, "", start=rr[1], end=rr[4]) == QKEYS[1:5]
    # naive means UTC; other offsets are converted; datetimes go through the SDK's formatter
    assert q(qdata, "", start=rr[2][:-1]) == QKEYS[2:]
    t = parse_time(rr[2]).astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert q(qdata, "", start=t.isoformat()) == QKEYS[2:]
    assert q(qdata, "", start=parse_time(rr[2]), end=parse_time(rr[5])) == QKEYS[2:6]
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
    assert q(qdata, "", start=future - dt.timedelta(hours=1), end=future) == []


@pytest.mark.parametrize("bad", ["yesterday", "7 days", "7x", "2024-13-45T00:00:00Z", "d7", "-1d"])
@pytest.mark.parametrize("field", ["start", "end"])
def test_start_end_bad_format(server, key, field, bad):
    with pytest.raises(pe.ValidationException) as ei:
        client(server, key).search(query="", **{field: bad})
    assert ("BadFormatDateTime", f"/{field}") in exc_codes(ei.value)


def test_start_after_end_is_validation_error(server, key):
    with pytest.raises(pe.ValidationException):
        client(server, key).search(query="", start="2024-02-01T00:00:00Z", end="2024-01-01T00:00:00Z")


# --- order_by (§6.4) ----------------------------------------------------------------------


@pytest.mark.parametrize("field", [f.value for f in SearchOrderBy])
def test_order_by(qdata, field):
    a, t = qdata["audit"], qdata["tenant"]
    for order in ("asc", "desc"):
        events, _ = search_all(a, tq(t), order=order, order_by=field)
        assert len(events) == len(QKEYS)
        if field == "received_at":
            vals = [e.envelope.received_at for e in events]
        else:
            vals = [e.envelope.event[field] for e in events if field in e.envelope.event]
        if field == "timestamp":
            vals = [parse_time(v) for v in vals]
        want = sorted(vals, reverse=(order == "desc"))
        assert vals == want, f"order_by={field} {order}: {vals}"
    asc, _ = search_all(a, tq(t), order="asc", order_by=field)
    desc, _ = search_all(a, tq(t), order="desc", order_by=field)
    if field == "received_at":
        assert [e.hash for e in asc] == [e.hash for e in desc][::-1]
        assert [e.envelope.event["message"].split()[0] for e in asc] == QKEYS
    # sorted pages stay verifiable
    s = a.search(query=tq(t), order="asc", order_by=field, limit=3, verify_consistency=True)
    assert all(e.membership_verification == V.PASS for e in s.result.events)


def test_order_by_invalid(server, key):
    validation(raw(server, "POST", "v1/search", key=key, body={"query": "", "order_by": "hash"}))
    validation(raw(server, "POST", "v1/search", key=key, body={"query": "", "order": "sideways"}), "NotEnumMember")


# --- search_restriction (§6.4, P10) --------------------------------------------------------


def test_search_restriction(qdata):
    assert set(q(qdata, "", search_restriction={"actor": ["alice", "bob"]})) == {"alpha", "beta"}
    assert set(q(qdata, "", search_restriction={"actor": ["alice", "bob"], "status": ["success"]})) == {"alpha"}
    assert set(q(qdata, "", search_restriction={"source": []})) == ALL
    assert q(qdata, "", search_restriction={"actor": ["ali"]}) == []  # equality, not substring
    assert set(q(qdata, "action:login", search_restriction={"source": ["web"]})) == {"alpha", "epsilon"}
    assert set(q(qdata, "", search_restriction={"action": ["login"], "target": ["db1"]})) == {"alpha"}
    a, t = qdata["audit"], qdata["tenant"]
    events, _ = search_all(a, "", search_restriction={"tenant_id": [t]})
    assert {e.envelope.event["message"].split()[0] for e in events} == ALL


def test_assert_search_restriction(qdata):
    a, t = qdata["audit"], qdata["tenant"]
    sr = {"tenant_id": [t], "source": ["web"]}
    s = a.search(query="", search_restriction=sr, limit=1)
    assert s.result.count == 3
    p = a.results(s.result.id, offset=1, assert_search_restriction=sr)
    assert len(p.result.events) == 2
    with pytest.raises(pe.ValidationException) as ei:
        a.results(s.result.id, assert_search_restriction={"tenant_id": [t], "source": ["api"]})
    assert any(c == "BadState" for c, _ in exc_codes(ei.value))


@pytest.mark.parametrize(
    "body",
    [
        {"query": "", "limit": 0},
        {"query": "", "limit": 1001},
        {"query": "", "max_results": 0},
        {"query": "", "max_results": 10001},
        {"query": "", "limit": "5"},
        {"query": 5},
        {"query": "", "search_restriction": {"actor": "alice"}},
        {"query": "", "verbose": "yes"},
        {"query": "", "bogus": 1},
    ],
)
def test_search_bad_parameters(server, key, body):
    validation(raw(server, "POST", "v1/search", key=key, body=body))


# ============================================================================ §14.2 / §14.3 tools


def _log_both_ways(a: Audit):
    a.log(message="one", actor="alice", verify=True, sign_local=True)
    a.log(message="two", new={"x": 1}, old="o", verify=True)
    a.log_bulk([{"message": f"bulk{i}", "status": "ok"} for i in range(4)], sign_local=True)
    a.log(message="three", timestamp=dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc), sign_local=True)
    a.log_bulk([{"message": "bulk-b0"}, {"message": "bulk-b1"}])
    acc = a.log_bulk_async([{"message": f"async{i}"} for i in range(3)], sign_local=True)
    assert acc.http_status == 202
    return 2 + 4 + 1 + 2 + 3


def test_verify_audit_verify_multiple(server, key, audit, tenant):
    n = _log_both_ways(audit)
    assert wait_count(audit, tq(tenant), n) == n
    reset_verify_audit(audit)
    resp = audit.search(query=tq(tenant), verbose=True, limit=1000)
    rawres = resp.json["result"]
    assert len(rawres["events"]) == n
    status = verify_audit.verify_multiple(rawres.get("root"), rawres.get("unpublished_root"), rawres["events"])
    assert status == verify_audit.Status.SUCCEEDED

    # a results page verifies too
    page = audit.results(resp.result.id, limit=4, offset=3).json["result"]
    assert verify_audit.verify_multiple(page.get("root"), page.get("unpublished_root"), page["events"]) == (
        verify_audit.Status.SUCCEEDED
    )

    # single artifact (as the console exports it)
    ev = dict(audit.search(query=tq(tenant), limit=1).json["result"]["events"][0])
    art = dict(ev, root=rawres["root"])
    reset_verify_audit(audit)
    assert verify_audit.verify_single(art) == verify_audit.Status.SUCCEEDED

    # the oracle is not vacuous: a tampered envelope fails
    bad = json.loads(json.dumps(rawres["events"][0]))
    bad["envelope"]["event"]["message"] = "tampered"
    assert verify_audit.verify_multiple(rawres.get("root"), rawres.get("unpublished_root"), [bad]) == (
        verify_audit.Status.FAILED
    )


def _dump_and_deep_verify(a: Audit, tmp_path: Path, expected: int) -> list[dict]:
    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    start = end - dt.timedelta(hours=1)
    path = tmp_path / "dump.jsonl"
    with open(path, "w") as out:
        dump_audit.dump_audit(a, out, start, end)  # its return value undercounts a last page: not checked
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == expected, (len(rows), expected)
    deep_verify.root_hashes.clear()
    with open(path) as f:
        errors = deep_verify.deep_verify(a, f)
    assert all(v == 0 for v in errors.values()), errors
    return rows


def test_dump_audit_and_deep_verify(fresh_server, tmp_path):
    f = fresh_server()
    k = f.create_key(["ingest", "search"])
    t = new_tenant()
    a = client(f, k, private_key_file=TESTKEY, tenant_id=t)
    n = _log_both_ways(a)
    assert wait_count(a, tq(t), n) == n
    total = count_of(a, "")  # the whole (fresh) trail: ours, plus whatever the server logs itself
    rows = _dump_and_deep_verify(a, tmp_path, total)
    rows = [r for r in rows if r["envelope"]["event"].get("tenant_id") == t]
    assert len(rows) == n
    # buffers: one request = one buffer; sequential requests = distinct, increasing leaves (P2)
    by_msg = {r["envelope"]["event"]["message"]: r for r in rows}
    assert len({by_msg[f"bulk{i}"]["leaf_index"] for i in range(4)}) == 1
    singles = [by_msg[m]["leaf_index"] for m in ("one", "two")]
    assert singles[0] < singles[1] < by_msg["bulk0"]["leaf_index"] < by_msg["three"]["leaf_index"]
    assert all(r["published"] is True for r in rows)
    assert [r["envelope"]["received_at"] for r in rows] == sorted(r["envelope"]["received_at"] for r in rows)

    # verify_audit on the whole (fresh) trail
    reset_verify_audit(a)
    res = a.search(query="", limit=1000).json["result"]
    assert verify_audit.verify_multiple(res.get("root"), res.get("unpublished_root"), res["events"]) == (
        verify_audit.Status.SUCCEEDED
    )


def test_dump_audit_with_workspace_key_on_fresh_server(fresh_server, tmp_path):
    """Same, through a workspace-limited key, when its tenant is the whole trail."""
    f = fresh_server()
    t = new_tenant()
    k = f.create_key(["ingest", "search"], [t])
    a = client(f, k, private_key_file=TESTKEY, tenant_id=t)
    n = _log_both_ways(a)
    assert wait_count(a, "", n) == n
    _dump_and_deep_verify(a, tmp_path, n)


# ============================================================================ §6.7 / §6.8 downloads


def test_download_results_json_and_csv(server, key, audit, tenant):
    audit.log(message="d1", actor="alice", sign_local=True)
    audit.log_bulk([{"message": "d2", "new": {"a": 1}}, {"message": "d3, with comma", "old": 'q"uote'}])
    audit.log(message="d4\nline")
    s = audit.search(query=tq(tenant), limit=2)
    assert s.result.count == 4
    all_events, _ = search_all(audit, tq(tenant))
    hashes = {e.hash for e in all_events}

    d = audit.download_results(result_id=s.result.id, format=DownloadFormat.JSON)
    assert d.status == "Success"
    assert set(d.json["result"]) >= {"dest_url", "expires_at"}
    assert parse_time(d.json["result"]["expires_at"])
    url = d.result.dest_url
    assert url.split("?")[0].endswith(".json.gz"), url
    lines = [json.loads(x) for x in fetch_gz(url).decode().splitlines() if x.strip()]
    assert len(lines) == s.result.count
    assert {x["hash"] for x in lines} == hashes
    for x in lines:
        assert envelope_hash(x["envelope"]) == x["hash"]
        assert x["envelope"]["event"]["tenant_id"] == tenant
        assert x["published"] is True and isinstance(x["leaf_index"], int) and isinstance(x["tree_size"], int)
        assert verify_membership_proof(
            decode_hash(x["hash"]),
            decode_hash(audit.root(tree_size=x["tree_size"]).result.data.root_hash),
            decode_membership_proof(x["membership_proof"]),
        )
    # the SDK's downloader (no Authorization) names the file after the last path segment
    att = audit.download_file(url)
    assert att.filename == url.split("?")[0].rsplit("/", 1)[-1] and gzip.decompress(att.file)

    c = audit.download_results(result_id=s.result.id, format=DownloadFormat.CSV)
    curl = c.result.dest_url
    assert curl.split("?")[0].endswith(".csv.gz"), curl
    text = fetch_gz(curl).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == CSV_COLUMNS
    body = rows[1:]
    assert len(body) == s.result.count
    col = {name: i for i, name in enumerate(CSV_COLUMNS)}
    assert {r[col["hash"]] for r in body} == hashes
    assert {r[col["message"]] for r in body} == {"d1", "d2", "d3, with comma", "d4\nline"}
    assert {r[col["tenant_id"]] for r in body} == {tenant}
    assert '{"a":1}' in {r[col["new"]] for r in body} and 'q"uote' in {r[col["old"]] for r in body}
    signed = [r for r in body if r[col["message"]] == "d1"][0]
    assert signed[col["public_key"]] == PUBLIC_KEY_JSON and signed[col["actor"]] == "alice"

    # default format is csv
    dflt = audit.download_results(result_id=s.result.id)
    assert dflt.result.dest_url.split("?")[0].endswith(".csv.gz")


def test_download_garbled_url_is_404(audit, tenant):
    audit.log(message="g1")
    s = audit.search(query=tq(tenant))
    url = audit.download_results(result_id=s.result.id, format=DownloadFormat.JSON).result.dest_url
    base, name = url.rsplit("/", 1)
    prefix, token = base.rsplit("/", 1)
    flipped = token[:-1] + ("a" if token[-1] != "a" else "b")
    for bad in (f"{prefix}/{flipped}/{name}", f"{prefix}/{'0' * len(token)}/{name}", f"{prefix}/x/{name}",
                f"{prefix}/{token[:-4]}/{name}"):  # fmt: skip
        r = requests.get(bad, timeout=30)
        assert r.status_code == 404, (bad, r.status_code)
    with pytest.raises(pe.DownloadFileError):
        audit.download_file(f"{prefix}/{flipped}/{name}")


def test_download_results_validation(server, key, audit, tenant):
    audit.log(message="v")
    sid = audit.search(query=tq(tenant)).result.id
    validation(raw(server, "POST", "v1/download_results", key=key, body={"format": "csv"}), "MustProvideOne")
    validation(raw(server, "POST", "v1/download_results", key=key,
                   body={"result_id": sid, "request_id": "prq_" + "a" * 32, "format": "csv"}), "MutuallyExclusive")  # fmt: skip
    validation(raw(server, "POST", "v1/download_results", key=key, body={"result_id": sid, "format": "xml"}),
               "NotEnumMember")  # fmt: skip
    with pytest.raises(pe.NotFound):
        audit.download_results(result_id="pas_" + "0" * 32)


@pytest.mark.parametrize("fmt", [DownloadFormat.JSON, DownloadFormat.CSV])
def test_export_poll_download(server, fmt):
    t = new_tenant()
    k = server.create_key(["ingest", "search"], [t])
    a = client(server, k, tenant_id=t)
    t0 = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    a.log(message="x1")
    a.log_bulk([{"message": "x2"}, {"message": "x3"}])
    t1 = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    ex = a.export(format=fmt, start=t0, end=t1, order=SearchOrder.ASC, order_by="received_at", verbose=True)
    assert ex.http_status == 202 and ex.status == "Accepted"
    assert set(ex.json) == ENVELOPE_KEYS
    done = poll_until_done(a, ex.request_id)
    assert done.status == "Success" and done.json["result"] == {}
    d = a.download_results(request_id=ex.request_id, format=fmt)
    data = fetch_gz(d.result.dest_url).decode()
    if fmt == DownloadFormat.JSON:
        lines = [json.loads(x) for x in data.splitlines() if x.strip()]
        assert [x["envelope"]["event"]["message"] for x in lines] == ["x1", "x2", "x3"]
        for x in lines:
            assert envelope_hash(x["envelope"]) == x["hash"] and x["envelope"]["event"]["tenant_id"] == t
    else:
        rows = list(csv.reader(io.StringIO(data)))
        assert rows[0] == CSV_COLUMNS
        msg = CSV_COLUMNS.index("message")
        assert [r[msg] for r in rows[1:]] == ["x1", "x2", "x3"]


# ============================================================================ §13 authorization


def test_ingest_only_key_cannot_search(server):
    t = new_tenant()
    k = server.create_key(["ingest"])
    a = client(server, k, tenant_id=t)
    a.log(message="ingest-only")
    with pytest.raises(pe.UnauthorizedException) as ei:
        a.search(query="")
    assert ei.value.response.http_status == 403
    with pytest.raises(pe.UnauthorizedException):
        a.results("pas_" + "0" * 32)
    with pytest.raises(pe.UnauthorizedException):
        a.download_results(result_id="pas_" + "0" * 32)
    ex = raw(server, "POST", "v1/export", key=k, body={"format": "csv", "verbose": True})
    envelope(ex, 403, "Unauthorized")
    assert a.root().status == "Success"  # any valid key


def test_search_only_key_cannot_log(server):
    k = server.create_key(["search"])
    a = client(server, k)
    for call in (lambda: a.log(message="x"), lambda: a.log_bulk([{"message": "x"}]),
                 lambda: a.log_bulk_async([{"message": "x"}])):  # fmt: skip
        with pytest.raises(pe.UnauthorizedException) as ei:
            call()
        assert ei.value.response.http_status == 403
    assert a.search(query="", limit=1).status == "Success"
    assert a.root().status == "Success"


def test_admin_key_can_log_and_search(server):
    t = new_tenant()
    a = client(server, server.admin_key, tenant_id=t)
    a.log(message="admin")
    assert count_of(a, tq(t)) == 1


def test_revoked_key_is_unauthorized(server):
    k = server.create_key(["ingest", "search"])
    a = client(server, k)
    a.log(message="before revoke")
    server.revoke_key(k)
    with pytest.raises(pe.UnauthorizedException) as ei:
        a.log(message="after revoke")
    assert ei.value.response.http_status == 401


def test_workspace_limited_key(server, tmp_path):
    t1, t2 = new_tenant(), new_tenant()
    k1 = server.create_key(["ingest", "search"], [t1])
    k2 = server.create_key(["ingest", "search"], [t2])
    a1 = client(server, k1, tenant_id=t1)
    a2 = client(server, k2, tenant_id=t2)
    admin = client(server, server.admin_key)

    a1.log(message="w1-a", actor="alice")
    a1.log_bulk([{"message": "w1-b"}, {"message": "w1-c"}])
    a2.log(message="w2-a", actor="alice")
    admin.log_event({"message": "w2-b", "tenant_id": t2})
    admin.log_event({"message": "no-tenant", "actor": "alice"})

    # logging into another tenant is refused, and nothing of the request is stored
    sneaky = f"sneaky{uuid.uuid4().hex}"
    with pytest.raises(pe.UnauthorizedException) as ei:
        a1.log_event({"message": f"{sneaky} 1", "tenant_id": t2})
    assert ei.value.response.http_status == 403
    with pytest.raises(pe.UnauthorizedException):
        a1.log_bulk([{"message": f"{sneaky} 2", "tenant_id": t1}, {"message": f"{sneaky} 3", "tenant_id": t2}])
    with pytest.raises(pe.UnauthorizedException):
        a1.log_bulk_async([{"message": f"{sneaky} 4", "tenant_id": t2}])
    assert count_of(admin, sneaky) == 0

    # searches see only the key's tenant, whatever the query says
    ev1, _ = search_all(a1, "")
    assert sorted(e.envelope.event["message"] for e in ev1) == ["w1-a", "w1-b", "w1-c"]
    assert all(e.envelope.event["tenant_id"] == t1 for e in ev1)
    assert count_of(a1, tq(t2)) == 0
    assert count_of(a1, "actor:alice") == 1
    assert count_of(a1, "no-tenant") == 0
    assert a1.search(query="", search_restriction={"tenant_id": [t2]}).result.count == 0
    s1 = a1.search(query="", limit=1, verify_consistency=True)
    assert s1.result.count == 3 and s1.result.events[0].membership_verification == V.PASS
    p1 = a1.results(s1.result.id, limit=10, offset=0)
    assert {e.envelope.event["tenant_id"] for e in p1.result.events} == {t1}
    ev2, _ = search_all(a2, "")
    assert sorted(e.envelope.event["message"] for e in ev2) == ["w2-a", "w2-b"]

    # downloads and exports too
    lines = fetch_gz(a1.download_results(result_id=s1.result.id, format=DownloadFormat.JSON).result.dest_url)
    assert {json.loads(x)["envelope"]["event"]["tenant_id"] for x in lines.decode().splitlines() if x.strip()} == {t1}
    ex = a1.export(format=DownloadFormat.JSON, start=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10))
    poll_until_done(a1, ex.request_id)
    data = fetch_gz(a1.download_results(request_id=ex.request_id, format=DownloadFormat.JSON).result.dest_url)
    exported = [json.loads(x) for x in data.decode().splitlines() if x.strip()]
    assert sorted(x["envelope"]["event"]["message"] for x in exported) == ["w1-a", "w1-b", "w1-c"]

    # a search id (or export request id) of one tenant is NotFound for another tenant's key
    with pytest.raises(pe.NotFound):
        a2.results(s1.result.id)
    with pytest.raises(pe.NotFound):
        a2.download_results(result_id=s1.result.id, format=DownloadFormat.JSON)
    with pytest.raises((pe.NotFound, pe.UnauthorizedException)):
        a2.download_results(request_id=ex.request_id, format=DownloadFormat.JSON)

    # the unrestricted view sees all of them
    assert count_of(admin, tq(t1)) == 3 and count_of(admin, tq(t2)) == 2

    # dump_audit/deep_verify through the limited key: only its tenant, every event verifies
    # (leaf indexes of one tenant have gaps on a shared tree, so buffer_missing is not checked here)
    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    path = tmp_path / "w1.jsonl"
    with open(path, "w") as out:
        dump_audit.dump_audit(a1, out, end - dt.timedelta(hours=1), end)
    assert len(path.read_text().splitlines()) == 3
    deep_verify.root_hashes.clear()
    with open(path) as fh:
        errors = deep_verify.deep_verify(a1, fh)
    assert all(v == 0 for k, v in errors.items() if k != "buffer_missing"), errors


# ============================================================================ §16 / §5.2 bad input


def test_unknown_top_level_key(server, key):
    r = raw(server, "POST", "v1/log", key=key, body={"event": {"message": "x"}, "foo": 1})
    j = validation(r, "UnexpectedProperty")
    assert any("foo" in s for c, s in error_codes(j) if c == "UnexpectedProperty")
    r = raw(server, "POST", "v2/log", key=key, body={"events": [{"event": {"message": "x"}}], "extra": True})
    validation(r, "UnexpectedProperty")


def test_unknown_event_key(audit):
    with pytest.raises(pe.ValidationException) as ei:
        audit.log_event({"message": "x", "foo": "bar"})
    assert ("UnexpectedProperty", "/event/foo") in exc_codes(ei.value)


def test_config_id_selects_the_config(server, key, tenant):
    """`config_id` on every call selects the audit config (test_configs.py covers custom configs);
    the default config's id works for a key bound to no config, other ids are refused."""
    who = requests.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
    default_id = next(c["id"] for c in who["configs"] if c["default"])
    j = envelope(raw(server, "POST", "v1/log", key=key,
                     body={"event": {"message": "cfg", "tenant_id": tenant}, "config_id": default_id}), 200, "Success")  # fmt: skip
    assert HEX64.fullmatch(j["result"]["hash"])
    refused = raw(server, "POST", "v1/log", key=key,
                  body={"event": {"message": "x", "tenant_id": tenant}, "config_id": "pci_" + "0" * 32})  # fmt: skip
    envelope(refused, 403, "Unauthorized")
    validation(raw(server, "POST", "v1/log", key=key, body={"event": {"message": "x"}, "config_id": "pci_abc"}),
               "BadFormat", "/config_id")  # fmt: skip
    a = Audit(key, config=cfg(server), config_id=default_id, tenant_id=tenant)
    a.log(message="cfg2")
    a.log_bulk([{"message": "cfg3"}])
    s = a.search(query=tq(tenant), verify_consistency=True)
    assert s.result.count == 3
    a.results(s.result.id)
    a.root()


@pytest.mark.parametrize(
    ("field", "limit"),
    [("message", 32766), ("actor", 128), ("action", 32), ("new", 32766), ("old", 32766), ("source", 128),
     ("status", 32), ("target", 128), ("tenant_id", 128)],
)  # fmt: skip
def test_field_too_long(server, key, field, limit):
    ev = {"message": "m", field: "a" * (limit + 1)}
    r = raw(server, "POST", "v1/log", key=key, body={"event": ev})
    validation(r, "AboveMaxLength", f"/event/{field}")


def test_max_length_counts_code_points(server):
    t = new_tenant()
    k = server.create_key(["ingest", "search"])
    ev = {"message": "é" * 32766, "actor": "😀" * 128, "tenant_id": t}
    j = envelope(raw(server, "POST", "v1/log", key=k, body={"event": ev, "verbose": True}), 200, "Success")
    assert j["result"]["envelope"]["event"] == ev
    assert j["result"]["hash"] == envelope_hash(j["result"]["envelope"])


@pytest.mark.parametrize("field", ["message", "actor", "action", "new", "old", "source", "status", "target",
                                   "tenant_id", "timestamp"])  # fmt: skip
def test_null_field_is_invalid_string(server, key, field):
    ev = {"message": "m", field: None}
    validation(raw(server, "POST", "v1/log", key=key, body={"event": ev}), "InvalidString", f"/event/{field}")


@pytest.mark.parametrize("value", [5, True, ["a"], 1.5])
def test_wrong_type_is_invalid_string(server, key, value):
    validation(raw(server, "POST", "v1/log", key=key, body={"event": {"message": "m", "actor": value}}),
               "InvalidString", "/event/actor")  # fmt: skip


@pytest.mark.parametrize("ts", ["yesterday", "2024-05-01", "2024-05-01 12:00:00Z", "12:00:00", ""])
def test_bad_timestamp(server, key, ts):
    validation(raw(server, "POST", "v1/log", key=key, body={"event": {"message": "m", "timestamp": ts}}),
               "BadFormatDateTime", "/event/timestamp")  # fmt: skip


@pytest.mark.parametrize("ts", ["2024-05-01T12:00:00", "2024-5-1T1:2:3.5+2", "2024-05-01T12:00:00.123456-07:00",
                                "2024-05-01T12:00:00Z"])  # fmt: skip
def test_timestamp_stored_verbatim(server, key, tenant, ts):
    j = envelope(raw(server, "POST", "v1/log", key=key,
                     body={"event": {"message": "ts", "timestamp": ts, "tenant_id": tenant}, "verbose": True}), 200)  # fmt: skip
    assert j["result"]["envelope"]["event"]["timestamp"] == ts
    a = client(server, key)
    s = a.search(query=tq(tenant))
    assert s.json["result"]["events"][0]["envelope"]["event"]["timestamp"] == ts


def test_object_message_is_canonicalised(server, key, tenant):
    body = {"event": {"message": {"b": 1, "a": ["x", {"d": None, "c": True}]}, "tenant_id": tenant}, "verbose": True}
    j = envelope(raw(server, "POST", "v1/log", key=key, body=body), 200, "Success")
    assert j["result"]["envelope"]["event"]["message"] == '{"a":["x",{"c":true,"d":null}],"b":1}'
    assert j["result"]["hash"] == envelope_hash(j["result"]["envelope"])
    validation(raw(server, "POST", "v1/log", key=key, body={"event": {"message": {"f": 1.5}}}))
    validation(raw(server, "POST", "v1/log", key=key, body={"event": {"message": "m", "actor": {"a": "b"}}}),
               "InvalidString")  # fmt: skip


def test_bulk_limits(server, key):
    r = raw(server, "POST", "v2/log", key=key, body={"events": [{"event": {"message": f"m{i}"}} for i in range(1001)]})
    validation(r, "AboveMaxItems")
    validation(raw(server, "POST", "v2/log", key=key, body={"events": []}), "BelowMinItems")
    validation(raw(server, "POST", "v2/log_async", key=key,
                   body={"events": [{"event": {"message": "m"}}] * 1001}), "AboveMaxItems")  # fmt: skip
    validation(raw(server, "POST", "v2/log", key=key, body={"events": [{"event": {"message": "m"}}], "prev_root": "0" * 64}),
               "UnexpectedProperty")  # fmt: skip


def test_bulk_of_1000_is_accepted(audit, tenant):
    r = audit.log_bulk([{"message": f"k{i}"} for i in range(1000)])
    assert len(r.result.results) == 1000
    assert count_of(audit, tq(tenant)) == 1000


def test_bulk_with_invalid_item_stores_nothing(audit, tenant):
    audit.log(message="before")
    assert count_of(audit, tq(tenant)) == 1
    with pytest.raises(pe.ValidationException) as ei:
        audit.log_bulk([{"message": "ok-1"}, {"message": "ok-2"}, {"message": "bad", "actor": "x" * 129}])
    assert ("AboveMaxLength", "/events/2/event/actor") in exc_codes(ei.value)
    with pytest.raises(pe.ValidationException) as ei:
        audit.log_bulk([{"message": "ok-3"}, {"actor": "no message"}])
    assert ("FieldRequired", "/events/1/event/message") in exc_codes(ei.value)
    with pytest.raises(pe.ValidationException):
        audit.log_bulk_async([{"message": "ok-4"}, {"message": "bad", "foo": "bar"}])
    assert count_of(audit, tq(tenant)) == 1


HOSTILE_BODIES = [
    ("bad-json", b'{"event": {"message": "x"}'),
    ("dup-key-event", b'{"event": {"message": "x", "message": "y"}}'),
    ("dup-key-top", b'{"event": {"message": "x"}, "event": {"message": "y"}}'),
    ("bom", b'\xef\xbb\xbf{"event": {"message": "x"}}'),
    ("trailing", b'{"event": {"message": "x"}} {}'),
    ("trailing-garbage", b'{"event": {"message": "x"}}x'),
    ("empty", b""),
    ("array", b'[{"event": {"message": "x"}}]'),
    ("string", b'"x"'),
    ("number", b"1"),
    ("null", b"null"),
    ("lone-surrogate", b'{"event": {"message": "\\ud800"}}'),
    ("invalid-utf8", b'{"event": {"message": "\xff\xfe"}}'),
    ("deep-nesting", b'{"event": {"message": ' + b'{"a": ' * 100 + b"1" + b"}" * 100 + b"}}"),
    ("huge-int", b'{"event": {"message": {"n": ' + b"9" * 5000 + b"}}}"),
    ("nan", b'{"event": {"message": {"n": NaN}}}'),
    ("single-quotes", b"{'event': {'message': 'x'}}"),
    ("dup-key-in-message-object", b'{"event": {"message": {"a": 1, "a": 2}}}'),
]


@pytest.mark.parametrize(("name", "data"), HOSTILE_BODIES, ids=[x[0] for x in HOSTILE_BODIES])
def test_hostile_body_is_bad_format(server, key, name, data):
    marker = f"hostile-{uuid.uuid4().hex}"
    data = data.replace(b'"x"', json.dumps(marker).encode())
    r = raw(server, "POST", "v1/log", key=key, data=data)
    j = validation(r)
    assert set(j) == ENVELOPE_KEYS
    assert j["status"] == "ValidationError" and r.status_code == 400
    if name not in ("array", "string", "number", "null"):  # valid JSON of the wrong type may say InvalidObject
        assert any(c == "BadFormat" and s == "/" for c, s in error_codes(j)), error_codes(j)
    for e in j["result"]["errors"]:
        assert len(e["detail"]) <= 200
    assert count_of(client(server, key), f'"{marker}"') == 0


@pytest.mark.parametrize("path", ["v1/log", "v2/log", "v2/log_async", "v1/search", "v1/results", "v1/root",
                                  "v1/download_results", "v1/export", "v1/log_stream"])  # fmt: skip
@pytest.mark.parametrize("data", [b"{", b'{"a": 1, "a": 2}', b"[]", b'{"unexpected": true}', b"\x00"])
def test_never_5xx_on_garbage(server, key, path, data):
    r = raw(server, "POST", path, key=key, data=data)
    envelope(r, 400, "ValidationError")


def test_body_too_large(server, key):
    big = json.dumps({"event": {"message": "m", "new": "x" * (1024 * 1024 + 10)}})
    r = raw(server, "POST", "v1/log", key=key, data=big)
    j = envelope(r, 413, "ValidationError")
    assert ("AboveMaxLength", "/") in error_codes(j)


def test_unknown_path_and_method(server, key):
    j = envelope(raw(server, "POST", "v1/nope", key=key, body={}), 404, "NotFound")
    assert j["result"] is None
    r = raw(server, "GET", "v1/log", key=key)
    assert r.status_code < 500 and r.status_code != 200


def test_response_headers(server, key):
    r = raw(server, "POST", "v1/log", key=key, body={"event": {"message": "hdr"}})
    j = envelope(r, 200, "Success")
    assert re.fullmatch(r"prq_[a-z0-9]{32}", j["request_id"]), j["request_id"]
    assert r.headers.get("x-request-id") == j["request_id"]
    for k in ("request_time", "response_time"):
        assert parse_time(j[k]).tzinfo is not None
    assert j["summary"] == "Logged 1 record(s)"


def test_retry_of_committed_log_is_not_logged_twice(server, key, tenant):
    """P27: a retry that names a committed log request (X-Pangea-Retried-Request-Ids, the x-request-id
    values of the earlier attempts) gets the stored result and logs nothing new."""
    body = {"event": {"message": "retry-me", "tenant_id": tenant}}
    first = raw(server, "POST", "v1/log", key=key, body=body)
    j1 = envelope(first, 200, "Success")
    rid = first.headers.get("x-request-id") or j1["request_id"]
    again = raw(server, "POST", "v1/log", key=key, body=body, headers={"X-Pangea-Retried-Request-Ids": rid})
    j2 = envelope(again, 200, "Success")
    assert j2["result"]["hash"] == j1["result"]["hash"]
    assert count_of(client(server, key), tq(tenant)) == 1
    # a new request (no retry header) with the same body is a new event
    j3 = envelope(raw(server, "POST", "v1/log", key=key, body=body), 200, "Success")
    assert j3["result"]["hash"] != j1["result"]["hash"]
    assert count_of(client(server, key), tq(tenant)) == 2


def test_log_stream_auth0(server, key):
    t0 = uuid.uuid4().hex
    a = client(server, key)
    data = {"logs": [{"log_id": "l1", "data": {"date": "2024-03-29T17:26:50.193Z", "type": "sapi",
                                               "description": f"Create a log stream {t0}", "client_id": "cid",
                                               "ip": "127.0.0.1", "user_agent": "ua", "user_id": "uid"}}]}  # fmt: skip
    r = a.log_stream(data)
    assert r.status == "Success"
    s = a.search(query=f"{t0}", verify_consistency=True)
    assert s.result.count == 1
    ev = s.result.events[0].envelope.event
    assert ev["message"] == f"Create a log stream {t0}" and ev["source"] == "auth0" and ev["actor"] == "uid"
    assert ev["action"] == "sapi" and ev["target"] == "cid" and ev["timestamp"] == "2024-03-29T17:26:50.193Z"
    assert s.result.events[0].membership_verification == V.PASS
    with pytest.raises(pe.ValidationException):
        a.log_stream({"foo": "bar"})
