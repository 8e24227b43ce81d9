"""Conformance: one trail, two dialects.

Events created through the H2O API (raw HTTP, shared/spec/h2o-api.md §5) are leaves of the same
Merkle tree as Pangea events, are found by the real Pangea SDK (``pangea-sdk==6.13.0``) and verify
with it; Pangea events are found by H2O search.  The field mapping is the one of
shared/design/architecture.md ("The two dialects over one trail"):

    H2O principal <-> actor, action <-> action, resource <-> target, sourceIpAddress <-> source,
    workspace <-> tenant_id, eventTime <-> timestamp, status.code <-> status (string),
    metadata["message"] <-> message; other H2O fields travel as extra Pangea event keys.
    Pangea events seen through H2O: eventSource "pangea"; message/new/old in metadata under those
    keys; a non-integer Pangea status in metadata["status"].

Fixtures ``server`` and ``fresh_server`` come from conftest.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
import uuid
from pathlib import Path

import pytest
import requests

import pangea.services.audit.audit as audit_module


def _no_arweave(tree_name, tree_sizes):  # noqa: ARG001
    return {}


audit_module.get_arweave_published_roots = _no_arweave  # offline (pangea-api.md §12)

from pangea import deep_verify, dump_audit, verify_audit  # noqa: E402
from pangea.config import PangeaConfig  # noqa: E402
from pangea.services import Audit  # noqa: E402
from pangea.services.audit.models import EventVerification as V  # noqa: E402

verify_audit.get_arweave_published_roots = _no_arweave

HERE = Path(__file__).resolve().parent
TESTKEY = str(HERE / "testkey.pem")
H2O_EVENT_KEYS = {
    "eventTime", "eventSource", "action", "readOnly", "principal", "sourceIpAddress", "name", "receiveTime",
    "resource", "requestParameters", "loginPrincipal", "userAgent", "metadata", "workspace", "type",
}  # fmt: skip


# ------------------------------------------------------------------------------------ helpers


def canon(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True).encode()


def envelope_hash(env: dict) -> str:
    return hashlib.sha256(canon(env)).hexdigest()


def new_ws() -> str:
    return f"workspaces/{uuid.uuid4()}"


def parse_time(s: str) -> dt.datetime:
    """RFC 3339 → aware datetime (fraction truncated to µs; no offset = UTC)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)?", s)
    assert m, f"not RFC 3339: {s!r}"
    frac = (m.group(3) or "")[:6].ljust(6, "0")
    off = m.group(4) or "Z"
    off = "+00:00" if off in ("Z", "z") else off
    return dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}.{frac}{off}")


def pangea(srv, key, **kw) -> Audit:
    return Audit(key, config=PangeaConfig(base_url_template=srv.url + "/pangea"), **kw)


def tq(tenant: str, query: str = "") -> str:
    return f'tenant_id:"{tenant}"' + (f" ({query})" if query else "")


def h2o_headers(key: str) -> dict:
    return {"Content-Type": "application/json", "Accept": "application/json", "Authorization": f"Bearer {key}"}


def h2o_event(ws: str, uid: str, **over) -> dict:
    """An Event body exactly as the h2o-audit-trail client sends it (h2o-api.md §5.1)."""
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    ev = {
        "eventTime": now.isoformat(),
        "eventSource": "h2oai-conformance",
        "action": "actions/test/things/CREATE",
        "readOnly": False,
        "principal": f"users/{uid}",
        "sourceIpAddress": "203.0.113.7",
        "status": {"code": 0, "message": ""},
        "resource": f"//engine-manager/{ws}/daiEngines/e-{uid}",
        "requestParameters": {"p": f"param-{uid}"},
        "userAgent": f"ua-{uid}",
        "metadata": {"message": f"h2o says hi {uid}", "k_1": f"meta-{uid}"},
        "type": "TYPE_SYSTEM",
    }
    ev.update(over)
    return ev


def h2o_create(srv, key, ev: dict) -> dict:
    eid = str(uuid.uuid4())
    r = requests.post(f"{srv.url}/v1/events", params={"eventId": eid}, data=json.dumps(ev),
                      headers=h2o_headers(key), timeout=60)  # fmt: skip
    assert r.status_code == 200, (r.status_code, r.text[:500])
    out = r.json()["event"]
    assert out["name"] == f"events/{eid}"
    return out


def h2o_batch(srv, key, evs: list[dict]) -> list[dict]:
    body = {"requests": [{"eventId": str(uuid.uuid4()), "event": e} for e in evs]}
    r = requests.post(f"{srv.url}/v1/events:batchCreate", data=json.dumps(body), headers=h2o_headers(key), timeout=60)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    j = r.json()
    assert j["failedRequests"] == {}, j["failedRequests"]
    assert len(j["events"]) == len(evs)
    return j["events"]


def h2o_search(srv, key, flt: dict, page_size: int = 1000) -> list[dict]:
    events, token = [], ""
    while True:
        body = {"filter": flt, "pageSize": page_size, "pageToken": token}
        r = requests.post(f"{srv.url}/v1/events:search", data=json.dumps(body), headers=h2o_headers(key), timeout=60)
        assert r.status_code == 200, (r.status_code, r.text[:500])
        j = r.json()
        assert set(j) >= {"events", "nextPageToken", "searchedUntilTime"}, j
        events += j["events"]
        token = j["nextPageToken"]
        if not token:
            return events


def full_filter(**set_keys) -> dict:
    """The filter as the real client sends it: all 20 keys, unset scalars as null (§5.3)."""
    f = {k: None for k in (
        "startEventTime", "endEventTime", "eventSourceExact", "eventSourceRegex", "resourceExact", "resourceRegex",
        "readOnly", "statusCodeRegex", "principalExact", "principalRegex", "sourceIpAddressExact",
        "sourceIpAddressRegex", "workspaceExact", "workspaceRegex", "actionExact", "actionRegex")}  # fmt: skip
    f.update({"metadataExact": {}, "metadataRegex": {}, "includeTypes": [], "excludeTypes": []})
    f.update(set_keys)
    return f


def reset_verify_audit(a: Audit | None):
    verify_audit.arweave_roots.clear()
    verify_audit.pangea_roots.clear()
    verify_audit.audit = a


def pangea_events(a: Audit, query: str, **kw) -> tuple[list, dict]:
    s = a.search(query=query, limit=1000, **kw)
    assert s.result.count == len(s.result.events) <= 1000
    return s.result.events, s.json["result"]


def root_size(a: Audit) -> int:
    return a.root().result.data.size


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def key(server) -> str:
    return server.create_key(["ingest", "search"], name="one-trail-conformance")


@pytest.fixture()
def ws() -> str:
    return new_ws()


# ------------------------------------------------------------------------------------ tests


def test_h2o_event_found_and_verified_by_pangea(server, key, ws):
    uid = uuid.uuid4().hex
    body = h2o_event(ws, uid)
    created = h2o_create(server, key, body)
    assert created["workspace"] == ws

    a = pangea(server, key)
    events, rawres = pangea_events(a, tq(ws), verify_consistency=True)
    assert len(events) == 1
    e = events[0]
    assert e.published is True and isinstance(e.leaf_index, int)
    assert e.membership_verification == V.PASS
    assert e.consistency_verification == V.PASS
    assert e.signature_verification == V.NONE
    rawev = rawres["events"][0]
    assert envelope_hash(rawev["envelope"]) == rawev["hash"] == e.hash
    assert set(rawev["envelope"]) == {"event", "received_at"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", rawev["envelope"]["received_at"])

    ev = rawev["envelope"]["event"]
    assert ev["actor"] == body["principal"]
    assert ev["action"] == body["action"]
    assert ev["target"] == body["resource"]
    assert ev["source"] == body["sourceIpAddress"]
    assert ev["tenant_id"] == ws
    assert ev["message"] == body["metadata"]["message"]
    assert ev["status"] == "0"
    assert parse_time(ev["timestamp"]) == parse_time(created["eventTime"]) == parse_time(body["eventTime"])
    rec = parse_time(rawev["envelope"]["received_at"])
    assert abs((rec - parse_time(created["receiveTime"])).total_seconds()) < 0.001
    # the other H2O fields travel as extra event keys
    flat = json.dumps(ev)
    for value in (body["eventSource"], body["userAgent"], body["metadata"]["k_1"], body["requestParameters"]["p"],
                  "TYPE_SYSTEM"):  # fmt: skip
        assert value in flat, f"{value!r} missing from the Pangea event {ev}"

    # a workspace-limited Pangea key for that workspace sees it; another workspace's key does not
    ka = server.create_key(["search"], [ws])
    kb = server.create_key(["search"], [new_ws()])
    ea, _ = pangea_events(pangea(server, ka), "", verify_consistency=True)
    assert [x.hash for x in ea] == [e.hash]
    assert ea[0].membership_verification == V.PASS
    assert pangea(server, kb).search(query=tq(ws)).result.count == 0

    # the tools agree
    reset_verify_audit(a)
    assert verify_audit.verify_multiple(rawres.get("root"), rawres.get("unpublished_root"), rawres["events"]) == (
        verify_audit.Status.SUCCEEDED
    )


def test_h2o_event_with_other_status_and_redacted_ip(server, key, ws):
    uid = uuid.uuid4().hex
    body = h2o_event(ws, uid, status={"code": 3, "message": "bad arg"}, sourceIpAddress="10.1.2.3")
    h2o_create(server, key, body)
    events, rawres = pangea_events(pangea(server, key), tq(ws), verify_consistency=True)
    assert len(events) == 1 and events[0].membership_verification == V.PASS
    ev = rawres["events"][0]["envelope"]["event"]
    assert ev["status"] == "3"
    assert ev["source"] == "private"  # redacted at ingest (h2o-api.md §7.5)


def test_pangea_event_found_by_h2o(server, key, ws):
    uid = uuid.uuid4().hex
    a = pangea(server, key, tenant_id=ws, private_key_file=TESTKEY)
    ts = dt.datetime.now(dt.timezone.utc).replace(microsecond=123456) - dt.timedelta(seconds=2)
    r = a.log(message=f"pangea says hi {uid}", actor=f"alice-{uid}", action="login", target="db1",
              source="203.0.113.9", status="success", new={"a": 1}, old="before", timestamp=ts,
              sign_local=True, verify=True)  # fmt: skip
    assert r.result.membership_verification == V.PASS
    received = r.json["result"]["envelope"]["received_at"]

    events = h2o_search(server, key, {"workspaceExact": ws})
    assert len(events) == 1
    e = events[0]
    assert H2O_EVENT_KEYS <= set(e), set(e)
    assert e["eventSource"] == "pangea"
    assert e["principal"] == f"alice-{uid}"
    assert e["action"] == "login"
    assert e["resource"] == "db1"
    assert e["sourceIpAddress"] == "203.0.113.9"
    assert e["workspace"] == ws
    assert e["metadata"]["message"] == f"pangea says hi {uid}"
    assert e["metadata"]["new"] == '{"a":1}'
    assert e["metadata"]["old"] == "before"
    assert e["metadata"]["status"] == "success"
    assert parse_time(e["eventTime"]) == ts
    assert abs((parse_time(e["receiveTime"]) - parse_time(received)).total_seconds()) < 0.001
    assert e["type"] in ("TYPE_UNSPECIFIED", "TYPE_API", "TYPE_SYSTEM")
    assert isinstance(e["readOnly"], bool)
    assert e["name"].startswith("events/")
    if "status" in e:
        assert isinstance(e["status"], dict) and isinstance(e["status"]["code"], int)
    for m in (e["metadata"], e["requestParameters"]):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in m.items())

    # the same, with the filter shape the real client sends, and by other mapped fields
    assert [x["name"] for x in h2o_search(server, key, full_filter(workspaceExact=ws))] == [e["name"]]
    assert [x["name"] for x in h2o_search(server, key, full_filter(
        principalExact=f"alice-{uid}", eventSourceExact="pangea", actionExact="login"))] == [e["name"]]  # fmt: skip
    assert [x["name"] for x in h2o_search(server, key, full_filter(
        workspaceExact=ws, metadataExact={"status": "success"}))] == [e["name"]]  # fmt: skip


def test_pangea_integer_status_maps_to_h2o_status_code(server, key, ws):
    a = pangea(server, key, tenant_id=ws)
    a.log(message="coded", actor="x", action="y", status="5")
    events = h2o_search(server, key, {"workspaceExact": ws})
    assert len(events) == 1
    assert events[0]["status"]["code"] == 5
    assert "status" not in events[0]["metadata"]
    events = h2o_search(server, key, full_filter(workspaceExact=ws, statusCodeRegex="^5$"))
    assert len(events) == 1


def test_pangea_event_without_timestamp_uses_received_at(server, key, ws):
    a = pangea(server, key, tenant_id=ws)
    r = a.log(message="no timestamp", verbose=True)
    received = r.json["result"]["envelope"]["received_at"]
    events = h2o_search(server, key, {"workspaceExact": ws})
    assert len(events) == 1
    assert abs((parse_time(events[0]["eventTime"]) - parse_time(received)).total_seconds()) < 0.001
    assert events[0]["metadata"]["message"] == "no timestamp"


def test_one_tree_across_both_apis(server, key, ws):
    a = pangea(server, key, tenant_id=ws, private_key_file=TESTKEY)
    tree = a.root().result.data.tree_name
    uid = uuid.uuid4().hex

    s0 = root_size(a)
    h1 = h2o_create(server, key, h2o_event(ws, uid + "a"))
    s1 = root_size(a)
    assert s1 > s0
    p1 = a.log(message=f"pangea {uid}", actor="alice", sign_local=True, verify=True)
    s2 = root_size(a)
    assert s2 > s1
    batch = h2o_batch(server, key, [h2o_event(ws, uid + c) for c in "bcd"])
    s3 = root_size(a)
    assert s3 > s2
    a.log_bulk([{"message": f"bulk {uid} {i}"} for i in range(2)], sign_local=True)
    s4 = root_size(a)
    assert s4 > s3
    assert a.root().result.data.tree_name == tree

    events, rawres = pangea_events(a, tq(ws), order="asc", verify_consistency=True)
    assert len(events) == 7
    assert rawres["root"]["tree_name"] == tree and rawres["root"]["size"] >= s4
    for e in events:
        assert e.published is True
        assert e.membership_verification == V.PASS
        assert e.consistency_verification == V.PASS
    by_msg = {e.envelope.event["message"]: e for e in events}
    li = {
        "h1": by_msg[h1["metadata"]["message"]].leaf_index,
        "p1": by_msg[f"pangea {uid}"].leaf_index,
        "batch": {by_msg[b["metadata"]["message"]].leaf_index for b in batch},
        "bulk": {by_msg[f"bulk {uid} {i}"].leaf_index for i in range(2)},
    }
    assert len(li["batch"]) == 1 and len(li["bulk"]) == 1  # one request, one workspace: one buffer
    assert li["h1"] < li["p1"] < min(li["batch"]) < min(li["bulk"])
    assert by_msg[f"pangea {uid}"].hash == p1.result.hash
    assert by_msg[f"pangea {uid}"].signature_verification == V.PASS

    # verify_audit on the mixed result
    reset_verify_audit(a)
    assert verify_audit.verify_multiple(rawres.get("root"), rawres.get("unpublished_root"), rawres["events"]) == (
        verify_audit.Status.SUCCEEDED
    )

    # and H2O sees all seven
    h = h2o_search(server, key, {"workspaceExact": ws})
    assert len(h) == 7
    assert sum(1 for x in h if x["eventSource"] == "pangea") == 3
    assert sum(1 for x in h if x["eventSource"] == "h2oai-conformance") == 4


def test_mixed_trail_dump_and_deep_verify(fresh_server, tmp_path):
    f = fresh_server()
    k = f.create_key(["ingest", "search"])
    w1, w2 = new_ws(), new_ws()
    uid = uuid.uuid4().hex
    a = pangea(f, k, private_key_file=TESTKEY)

    h2o_create(f, k, h2o_event(w1, uid + "0"))
    a.log_event({"message": "p0", "tenant_id": w1}, sign_local=True)
    # one transaction, two workspaces: two buffers
    h2o_batch(f, k, [h2o_event(w1, uid + "1"), h2o_event(w2, uid + "2"), h2o_event(w1, uid + "3")])
    a.log_bulk([{"message": "p1", "tenant_id": w2}, {"message": "p2", "tenant_id": w2}], sign_local=True)
    h2o_create(f, k, h2o_event(w2, uid + "4", resource="//audittrail"))  # no workspace
    h2o_search(f, k, {"workspaceExact": w1})  # may write a self-audit event, asynchronously
    time.sleep(1.0)
    a.log(message="p3")

    total = a.search(query="", limit=1).result.count
    assert total >= 9
    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    path = tmp_path / "mixed.jsonl"
    with open(path, "w") as out:
        dump_audit.dump_audit(a, out, end - dt.timedelta(hours=1), end)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert total == len(rows)
    deep_verify.root_hashes.clear()
    with open(path) as fh:
        errors = deep_verify.deep_verify(a, fh)
    assert all(v == 0 for v in errors.values()), errors

    # buffers never mix workspaces
    tenants_by_leaf: dict[int, set] = {}
    for r in rows:
        tenants_by_leaf.setdefault(r["leaf_index"], set()).add(r["envelope"]["event"].get("tenant_id", ""))
    assert all(len(v) == 1 for v in tenants_by_leaf.values()), tenants_by_leaf

    reset_verify_audit(a)
    res = a.search(query="", limit=1000).json["result"]
    assert verify_audit.verify_multiple(res.get("root"), res.get("unpublished_root"), res["events"]) == (
        verify_audit.Status.SUCCEEDED
    )
