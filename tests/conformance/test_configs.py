"""Conformance: audit configs with the real Pangea SDK (``pangea-sdk==6.13.0``) — several configs per
server, custom schemas with every field type, keys bound to configs, ``config_id`` on every call,
server-side ("Vault") event signing across a key rotation, the config endpoints and the CLI.

Each test makes its own configs and keys (CLI, while the shared server runs), so tests do not see
each other's events. Everything runs offline (the SDK's Arweave look-up is patched out).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import uuid

import pytest
import requests

import pangea.services.audit.audit as audit_module

audit_module.get_arweave_published_roots = lambda tree_name, tree_sizes: {}

import pangea.exceptions as pe  # noqa: E402
from pangea.config import PangeaConfig  # noqa: E402
from pangea.services import Audit  # noqa: E402
from pangea.services.audit.models import EventVerification as V  # noqa: E402
from pangea.services.audit.models import SearchOrder  # noqa: E402
from pangea.services.audit.util import verify_envelope_hash  # noqa: E402

from test_pangea import TESTKEY, canon  # noqa: E402

CONFIG_ID = re.compile(r"pci_[a-z0-9]{32}")

# Every field type; `message` is the standard text field, `actor` a custom integer.
EVERY_TYPE = {
    "fields": [
        {"id": "message", "type": "text", "required": True},
        {"id": "user", "type": "string", "size": 16, "required": True},
        {"id": "count", "type": "integer"},
        {"id": "ok", "type": "boolean"},
        {"id": "at", "type": "datetime"},
        {"id": "note", "type": "string-unindexed"},
        {"id": "body", "type": "text"},
        {"id": "actor", "type": "integer"},
        {"id": "tenant_id", "type": "string"},
    ]
}


# ------------------------------------------------------------------------------------ helpers


def create_config(srv, name=None, schema=None, signing="none", tmp_path=None) -> str:
    """`trailkeep configs create` while the server runs; returns the id (the last stdout line)."""
    args = ["configs", "create", "--name", name or f"c-{uuid.uuid4().hex[:8]}", "--signing", signing]
    if schema is not None:
        path = tmp_path / f"schema-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(schema))
        args += ["--schema", str(path)]
    res = srv.cli(*args, "--data-dir", str(srv.data_dir))
    last = res.stdout.strip().splitlines()[-1]
    assert CONFIG_ID.fullmatch(last), res.stdout
    return last


def bound_key(srv, configs, scopes=("ingest", "search")) -> str:
    args = ["keys", "create", "--name", f"k-{uuid.uuid4().hex[:8]}"]
    for s in scopes:
        args += ["--scope", s]
    for c in configs:
        args += ["--config", c]
    res = srv.cli(*args, "--data-dir", str(srv.data_dir))
    return res.stdout.strip().splitlines()[-1]


def audit(srv, key, config_id=None, **kw) -> Audit:
    return Audit(key, config=PangeaConfig(base_url_template=srv.url + "/pangea"), config_id=config_id, **kw)


def post(srv, path, key, body) -> requests.Response:
    return requests.post(
        f"{srv.url}/pangea/{path}",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=60,
    )


def errors_of(exc: pe.PangeaAPIException):
    return [(e.code, e.source) for e in exc.errors]


# ------------------------------------------------------------------------------ custom schema


def test_custom_schema_with_every_field_type(server, tmp_path):
    cid = create_config(server, schema=EVERY_TYPE, tmp_path=tmp_path)
    key = bound_key(server, [cid])
    a = audit(server, key)  # bound to one config: no config_id needed

    # v1/schema: the config's schema, for log viewers (search scope suffices).
    r = post(server, "v1/schema", bound_key(server, [cid], scopes=("search",)), {})
    assert r.status_code == 200, r.text
    assert [f["id"] for f in r.json()["result"]["fields"]] == [f["id"] for f in EVERY_TYPE["fields"]]

    when = dt.datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=dt.timezone.utc)
    r1 = a.log_event(
        {"message": "first é ☃", "user": "alice", "count": 5, "ok": True, "at": when, "note": "kept",
         "body": {"b": [1, 2], "a": "ü"}, "actor": -7, "tenant_id": "t1"},
        verify=True, sign_local=False,
    )
    res = r1.result
    assert res.membership_verification == V.PASS
    ev = res.envelope.event
    # Integers and booleans stay JSON numbers and booleans; the nested object the SDK stringified
    # and the datetime it formatted are kept byte for byte.
    assert ev["count"] == 5 and ev["ok"] is True and ev["actor"] == -7
    assert ev["body"] == '{"a":"ü","b":[1,2]}'
    assert ev["at"] == "2025-03-04T05:06:07.123456Z"
    assert verify_envelope_hash(res.envelope, res.hash)

    signer = audit(server, key, private_key_file=TESTKEY)
    r2 = signer.log_event({"message": "signed", "user": "bob", "count": 12, "ok": False,
                           "at": "2025-03-04T06:00:00Z"}, sign_local=True, verify=True)
    assert r2.result.signature_verification == V.PASS

    bulk = a.log_bulk([
        {"message": "b1", "user": "carol", "count": 1, "ok": True, "at": "2025-03-04T07:00:00+01:00"},
        {"message": "b2", "user": "carol", "count": 100, "note": "n2"},
        {"message": "b3 ünïcode", "user": "dave", "count": -3, "ok": False},
    ], verbose=True)
    assert len(bulk.result.results) == 3

    def found(q, **kw):
        s = a.search(query=q, verify_consistency=True, **kw)
        for e in s.result.events:
            assert e.membership_verification == V.PASS
        return s, [e.envelope.event["message"] for e in s.result.events]

    assert sorted(found("count=5")[1]) == ["first é ☃"]
    assert sorted(found("count>4")[1]) == ["b2", "first é ☃", "signed"]
    assert sorted(found("count<=1 AND ok:true")[1]) == ["b1"]
    assert sorted(found("ok=false")[1]) == ["b3 ünïcode", "signed"]
    assert sorted(found("at>2025-03-04T05:59:59Z")[1]) == ["b1", "signed"]  # 07:00+01:00 is 06:00Z
    assert sorted(found("at<2025-03-04T06:00:01Z")[1]) == ["b1", "first é ☃", "signed"]
    assert sorted(found("user:aro")[1]) == ["b1", "b2"]  # contains
    assert sorted(found("user=carol -count=1")[1]) == ["b2"]
    assert sorted(found("ünïcode")[1]) == ["b3 ünïcode"]  # bare words
    assert sorted(found("dave")[1]) == ["b3 ünïcode"]
    assert sorted(found("actor<0")[1]) == ["first é ☃"]
    s, msgs = found("", order_by="count", order=SearchOrder.ASC)
    assert msgs == ["b3 ünïcode", "b1", "first é ☃", "signed", "b2"]
    assert s.result.count == 5
    s, msgs = found("", order_by="count", order=SearchOrder.DESC, limit=2, max_results=3)
    assert msgs == ["b2", "signed"] and s.result.count == 3
    page = a.results(s.result.id, limit=2, offset=2)
    assert [e.envelope.event["message"] for e in page.result.events] == ["first é ☃"]

    with pytest.raises(pe.ValidationException) as e:
        a.search(query="note:kept")  # string-unindexed: stored, not searchable
    assert "not searchable" in e.value.errors[0].detail

    # Downloads carry the custom fields as columns.
    url = a.download_results(result_id=s.result.id).result.dest_url
    rows = list(csv.reader(io.StringIO(gzip.decompress(requests.get(url, timeout=30).content).decode())))
    assert rows[0][6:6 + len(EVERY_TYPE["fields"])] == [f["id"] for f in EVERY_TYPE["fields"]]
    assert rows[1][rows[0].index("count")] == "100" and rows[1][rows[0].index("ok")] == ""


def test_custom_schema_validation_names_the_field_and_stores_nothing(server, tmp_path):
    cid = create_config(server, schema=EVERY_TYPE, tmp_path=tmp_path)
    a = audit(server, bound_key(server, [cid]))
    cases = [
        ({"message": "m", "user": "u", "extra": 1}, ("UnexpectedProperty", "/event/extra")),
        ({"message": "m", "user": "u", "count": "5"}, ("InvalidInteger", "/event/count")),
        ({"message": "m", "user": "u", "count": 1.5}, ("InvalidInteger", "/event/count")),
        ({"message": "m", "user": "u", "ok": "yes"}, ("InvalidBool", "/event/ok")),
        ({"message": "m", "user": "u", "at": "yesterday"}, ("BadFormatDateTime", "/event/at")),
        ({"message": "m", "user": "x" * 17}, ("AboveMaxLength", "/event/user")),
        ({"message": "m"}, ("FieldRequired", "/event/user")),
    ]
    for event, want in cases:
        with pytest.raises(pe.ValidationException) as e:
            a.log_event(event)
        assert want in errors_of(e.value), (event, errors_of(e.value))
        assert want[1].rsplit("/", 1)[1] in e.value.errors[0].detail
    # A bulk request with one bad item stores nothing.
    with pytest.raises(pe.ValidationException) as e:
        a.log_bulk([{"message": "good", "user": "u"}, {"message": "bad", "user": "u", "count": "x"}])
    assert ("InvalidInteger", "/events/1/event/count") in errors_of(e.value)
    assert a.search(query="").result.count == 0


# ------------------------------------------------------------------------- keys bound to configs


def test_a_key_bound_to_two_configs(server, tmp_path):
    a_id = create_config(server, tmp_path=tmp_path)
    b_id = create_config(server, schema={"fields": [{"id": "message", "type": "text"}, {"id": "n", "type": "integer"}]},
                         tmp_path=tmp_path)
    other = create_config(server, tmp_path=tmp_path)
    key = bound_key(server, [a_id, b_id])

    # Without config_id the key's config is ambiguous: Pangea's MissingConfigID.
    with pytest.raises(pe.PangeaAPIException) as e:
        audit(server, key).log(message="which config?")
    assert e.value.response.status == "MissingConfigID"
    with pytest.raises(pe.PangeaAPIException):
        audit(server, key).search(query="")

    ra = audit(server, key, config_id=a_id)
    rb = audit(server, key, config_id=b_id)
    ra.log(message="in a", actor="alice", verify=True)
    rb.log_event({"message": "in b", "n": 3}, verify=True)
    assert [e.envelope.event["message"] for e in ra.search(query="").result.events] == ["in a"]
    assert [e.envelope.event["message"] for e in rb.search(query="n=3").result.events] == ["in b"]
    with pytest.raises(pe.ValidationException):
        rb.log(message="standard fields are not in b's schema", actor="alice")

    # A config the key is not bound to, or none at all: refused alike (existence not revealed).
    for cid in (other, "pci_" + "0" * 32):
        with pytest.raises(pe.UnauthorizedException) as e:
            audit(server, key, config_id=cid).log(message="x")
        assert e.value.response.status == "Unauthorized"
    # Search results of one config are not reachable with another's config_id.
    sid = ra.search(query="").result.id
    with pytest.raises(pe.NotFound):
        rb.results(sid)
    # Admin keys reach every config.
    admin = audit(server, server.admin_key, config_id=other)
    admin.log(message="admin in other")
    assert admin.search(query="").result.count == 1
    assert audit(server, server.admin_key, config_id=a_id).search(query="").result.count == 1


def test_h2o_needs_the_default_config(server, tmp_path):
    cid = create_config(server, tmp_path=tmp_path)
    key = bound_key(server, [cid])
    body = {"filter": {"workspaceExact": "workspaces/x"}, "pageSize": 1}
    r = requests.post(f"{server.url}/v1/events:search", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=30)
    assert r.status_code == 403 and r.json()["code"] == 7, r.text


# ------------------------------------------------------------------------- server-side signing


def test_server_signing_across_a_key_rotation(server, tmp_path):
    cid = create_config(server, signing="server", tmp_path=tmp_path)
    key = bound_key(server, [cid])
    a = audit(server, key)
    first = a.log(message="signed by the server v1", verify=True)
    assert first.result.signature_verification == V.PASS
    pk = json.loads(first.result.envelope.public_key)
    assert set(pk) == {"algorithm", "key", "vault_key_id", "vault_key_version"}
    assert pk["algorithm"] == "ED25519" and pk["vault_key_version"] == 1
    assert first.result.envelope.public_key == canon(pk).decode(), "stored in canonical form"

    server.cli("keys", "rotate-signing", "--config", cid, "--data-dir", str(server.data_dir))
    second = a.log(message="signed by the server v2", verify=True)
    assert second.result.signature_verification == V.PASS
    pk2 = json.loads(second.result.envelope.public_key)
    assert pk2["vault_key_version"] == 2 and pk2["key"] != pk["key"] and pk2["vault_key_id"] == pk["vault_key_id"]

    # The admin API rotates too.
    r = requests.post(f"{server.url}/api/v1/configs/{cid}/rotate-signing",
                      headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=30)
    assert r.status_code == 200 and r.json()["vault_key_version"] == 3, r.text
    bulk = a.log_bulk([{"message": "bulk v3 a"}, {"message": "bulk v3 b"}], verbose=True)
    for item in bulk.result.results:
        assert item.signature_verification == V.PASS

    # Every version keeps verifying in the SDK.
    s = a.search(query="", verify_consistency=True)
    assert s.result.count == 4
    for e in s.result.events:
        assert e.signature_verification == V.PASS and e.membership_verification == V.PASS
    # A client signature in a server-signing config is refused.
    with pytest.raises(pe.ValidationException) as e:
        audit(server, key, private_key_file=TESTKEY).log(message="mine", sign_local=True)
    assert errors_of(e.value)[0][0] == "MutuallyExclusive"


# --------------------------------------------------------------------------- config endpoints


def test_config_endpoints(server):
    admin = server.admin_key
    schema = {"fields": [{"id": "message", "type": "text", "required": True}, {"id": "n", "type": "integer"}]}
    r = post(server, "v1beta/config/create", admin, {"name": "api config", "version": 2, "schema": schema})
    assert r.status_code == 200, r.text
    c = r.json()["result"]
    assert CONFIG_ID.fullmatch(c["id"]) and c["name"] == "api config" and c["vault_sign"] is False
    assert c["schema"]["fields"] == schema["fields"]
    got = post(server, "v1beta/config", admin, {"id": c["id"]}).json()["result"]
    assert got == c
    listed = post(server, "v1beta/config/list", admin, {}).json()["result"]
    assert c["id"] in [x["id"] for x in listed["items"]] and listed["count"] == len(listed["items"])

    # Update: optimistic concurrency on updated_at; adding an optional field.
    schema2 = {"fields": schema["fields"] + [{"id": "extra", "type": "boolean"}]}
    stale = post(server, "v1beta/config/update", admin,
                 {"id": c["id"], "name": "renamed", "updated_at": "2000-01-01T00:00:00.000000Z", "schema": schema2})
    assert stale.status_code == 400 and stale.json()["status"] == "ValidationError", stale.text
    up = post(server, "v1beta/config/update", admin,
              {"id": c["id"], "name": "renamed", "updated_at": c["updated_at"], "schema": schema2})
    assert up.status_code == 200, up.text
    assert up.json()["result"]["name"] == "renamed"

    # A config that holds events cannot be deleted; an empty one can.
    audit(server, admin, config_id=c["id"]).log_event({"message": "keep me", "n": 1})
    d = post(server, "v1beta/config/delete", admin, {"id": c["id"]})
    assert d.status_code == 400 and "events" in d.json()["result"]["errors"][0]["detail"], d.text
    empty = post(server, "v1beta/config/create", admin, {"name": "empty", "version": 2, "schema": schema}).json()
    d = post(server, "v1beta/config/delete", admin, {"id": empty["result"]["id"]})
    assert d.status_code == 200 and d.json()["result"]["id"] == empty["result"]["id"]
    assert post(server, "v1beta/config", admin, {"id": empty["result"]["id"]}).status_code == 404

    # Admin scope only.
    k = server.create_key(["ingest", "search"])
    assert post(server, "v1beta/config/list", k, {}).status_code == 403
    # Each change is an event of the default config.
    s = audit(server, admin).search(query='action:"audittrail/configs/"', limit=50)
    actions = {e.envelope.event["action"] for e in s.result.events}
    assert {"actions/audittrail/configs/CREATE", "actions/audittrail/configs/UPDATE",
            "actions/audittrail/configs/DELETE"} <= actions


def test_cli_configs_while_the_server_runs(server, tmp_path):
    cid = create_config(server, name="cli", schema={"fields": [{"id": "message", "type": "text"},
                                                                {"id": "n", "type": "integer"}]}, tmp_path=tmp_path)
    listed = server.cli("configs", "list", "--data-dir", str(server.data_dir)).stdout
    assert cid in listed and "(default)" in listed
    shown = json.loads(server.cli("configs", "show", cid, "--data-dir", str(server.data_dir)).stdout)
    assert shown["id"] == cid and shown["events"] == 0
    key = bound_key(server, [cid])
    audit(server, key).log_event({"message": "one", "n": 1})
    grown = tmp_path / "grown.json"
    grown.write_text(json.dumps({"fields": [{"id": "message", "type": "text"}, {"id": "n", "type": "integer"},
                                            {"id": "tag", "type": "string"}]}))
    server.cli("configs", "update", cid, "--schema", str(grown), "--name", "cli2", "--data-dir", str(server.data_dir))
    audit(server, key).log_event({"message": "two", "n": 2, "tag": "new field"})  # seen at once
    retyped = tmp_path / "retyped.json"
    retyped.write_text(json.dumps({"fields": [{"id": "message", "type": "text"}, {"id": "n", "type": "string"}]}))
    res = server.cli("configs", "update", cid, "--schema", str(retyped), "--data-dir", str(server.data_dir),
                     check=False)
    assert res.returncode != 0 and "type" in res.stderr
    res = server.cli("configs", "delete", cid, "--data-dir", str(server.data_dir), check=False)
    assert res.returncode != 0 and "events" in res.stderr
    assert audit(server, key).search(query="tag:new").result.count == 1
