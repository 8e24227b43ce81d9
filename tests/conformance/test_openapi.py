"""The OpenAPI document at ``GET /openapi.json`` and the docs page at ``/docs/``.

* ``openapi-spec-validator`` validates the served document (OpenAPI 3.1).
* Real answers of the operations, in both dialects and the UI routes, success and error, are
  validated against the response schema that the document gives for their status and content type
  (JSON Schema 2020-12, ``jsonschema``), in a strict mode where every object must list every key the
  server sends: a field the server emits but the document does not describe fails.
* ``/docs/`` serves Swagger UI from the binary, pointed at ``/openapi.json``, with a CSP.

Route coverage (every registered route documented, every documented route served) is checked in
process by ``tests/it/openapi.rs``.
"""

from __future__ import annotations

import copy
import gzip
import uuid
from datetime import datetime, timezone

import jsonschema
import pytest
import requests
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing.exceptions import Unresolvable

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def doc(server):
    r = requests.get(server.url + "/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def test_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"].startswith("3.1.")
    validate(doc)  # raises on any violation


def test_validator_rejects_a_broken_copy(doc):
    """The validity check above can fail: a dangling $ref and a bad parameter location are caught."""
    broken = copy.deepcopy(doc)
    op = broken["paths"]["/v1/events"]["post"]
    op["responses"]["200"]["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/Nope"}
    with pytest.raises((OpenAPIValidationError, Unresolvable)):
        validate(broken)
    broken = copy.deepcopy(doc)
    broken["paths"]["/pangea/request/{id}"]["get"]["parameters"][0]["in"] = "body"
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_document_covers_both_dialects_and_the_ui(doc):
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in METHODS if m in item}
    for want in [
        ("POST", "/v1/events"),
        ("POST", "/v1/events:batchCreate"),
        ("POST", "/v1/events:search"),
        ("POST", "/pangea/v1/log"),
        ("POST", "/pangea/v2/log"),
        ("POST", "/pangea/v2/log_async"),
        ("POST", "/pangea/v1/search"),
        ("POST", "/pangea/v1/results"),
        ("POST", "/pangea/v1/root"),
        ("POST", "/pangea/v1/download_results"),
        ("POST", "/pangea/v1/export"),
        ("GET", "/pangea/request/{id}"),
        ("GET", "/api/v1/whoami"),
        ("GET", "/api/v1/roots/{size}"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ]:
        assert want in ops
    tags = {t for p in doc["paths"].values() for m in METHODS if m in p for t in p[m]["tags"]}
    assert tags == {"H2O Audit Trail", "Pangea Secure Audit Log", "UI & admin", "Operations"}


# --------------------------------------------------------------------------- answers vs. schemas


def _strict(schema):
    """Every object schema that lists properties allows no others."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


class Checker:
    def __init__(self, doc):
        self.doc = doc
        self.components = _strict(doc["components"])
        self.checked = set()

    def __call__(self, method: str, path: str, resp: requests.Response, status: int):
        assert resp.status_code == status, f"{method} {path}: {resp.status_code} {resp.text[:500]}"
        op = self.doc["paths"][path][method.lower()]
        documented = op["responses"].get(str(status))
        assert documented is not None, f"{method} {path}: status {status} not documented"
        ctype = resp.headers.get("content-type", "").split(";")[0].strip()
        content = documented.get("content", {})
        assert ctype in content, f"{method} {path} {status}: content type {ctype} not in {list(content)}"
        schema = dict(_strict(content[ctype]["schema"]))
        schema["components"] = self.components
        body = resp.json()
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(body), key=lambda e: e.path)
        assert not errors, f"{method} {path} {status}: {[(list(e.path), e.message) for e in errors][:5]}\n{body}"
        self.checked.add((method, path, status))
        return body


@pytest.fixture(scope="module")
def check(doc):
    return Checker(doc)


def test_strict_response_check_can_fail(check):
    """An undocumented key, a wrong type or a missing required key fails the check."""

    class Fake:
        headers = {"content-type": "application/json"}
        text = ""

        def __init__(self, body, status=200):
            self._body = body
            self.status_code = status

        def json(self):
            return self._body

    good = {"version": "1"}
    check("GET", "/version", Fake(good), 200)
    for bad in [{"version": "1", "extra": 1}, {"version": 1}, {}]:
        with pytest.raises(AssertionError):
            check("GET", "/version", Fake(bad), 200)
    with pytest.raises(AssertionError, match="not documented"):
        check("GET", "/version", Fake(good, status=404), 404)


def _auth(key):
    return {"Authorization": f"Bearer {key}"}


def _h2o_event(ws):
    return {
        "eventTime": datetime.now(timezone.utc).isoformat(),
        "eventSource": "h2oai-test",
        "action": "actions/test/things/CREATE",
        "readOnly": False,
        "principal": "users/openapi",
        "sourceIpAddress": "10.0.0.1",
        "status": {"code": 0, "message": ""},
        "resource": f"//x/{ws}/things/1",
        "requestParameters": {"p": "v"},
        "userAgent": "ua/1.0",
        "metadata": {"k_1": "v1"},
        "type": "TYPE_SYSTEM",
    }


def test_h2o_answers_match_the_document(server, check):
    url, key = server.url, server.admin_key
    ws = f"workspaces/{uuid.uuid4()}"
    eid = str(uuid.uuid4())
    r = requests.post(f"{url}/v1/events", params={"eventId": eid}, json=_h2o_event(ws), headers=_auth(key))
    check("POST", "/v1/events", r, 200)
    r = requests.post(f"{url}/v1/events", params={"eventId": "x"}, json=_h2o_event(ws), headers=_auth(key))
    check("POST", "/v1/events", r, 400)
    r = requests.post(f"{url}/v1/events", params={"eventId": eid}, json=_h2o_event(ws), headers=_auth("nope"))
    check("POST", "/v1/events", r, 401)
    changed = _h2o_event(ws) | {"action": "other"}
    r = requests.post(f"{url}/v1/events", params={"eventId": eid}, json=changed, headers=_auth(key))
    check("POST", "/v1/events", r, 409)
    r = requests.post(f"{url}/v1/events", params={"eventId": eid}, data="{}", headers=_auth(key))
    check("POST", "/v1/events", r, 415)
    body = {"requests": [{"eventId": str(uuid.uuid4()), "event": _h2o_event(ws)}, {"eventId": "no", "event": {}}]}
    r = requests.post(f"{url}/v1/events:batchCreate", json=body, headers=_auth(key))
    out = check("POST", "/v1/events:batchCreate", r, 200)
    assert len(out["events"]) == 1 and list(out["failedRequests"]) == ["1"]
    # Pangea events show up in H2O searches too: log one into the same workspace.
    r = requests.post(f"{url}/pangea/v1/log", json={"event": {"message": "m", "tenant_id": ws, "status": "ok"}},
                      headers=_auth(key))
    assert r.status_code == 200
    r = requests.post(f"{url}/v1/events:search", json={"filter": {"workspaceExact": ws}, "pageSize": 2},
                      headers=_auth(key))
    out = check("POST", "/v1/events:search", r, 200)
    assert len(out["events"]) == 2 and out["nextPageToken"]
    r = requests.post(f"{url}/v1/events:search", json={"filter": {"actionRegex": "("}}, headers=_auth(key))
    check("POST", "/v1/events:search", r, 400)
    search_only = server.create_key(["search"])
    r = requests.post(f"{url}/v1/events:batchCreate", json={"requests": []}, headers=_auth(search_only))
    check("POST", "/v1/events:batchCreate", r, 403)
    for path in [
        "/version",
        "/.well-known/openid-configuration",
        "/.ai.h2o.cloud.discovery/v1/environment",
        "/.ai.h2o.cloud.discovery/v1/services",
        "/.ai.h2o.cloud.discovery/v1/clients",
        "/.ai.h2o.cloud.discovery/v1/links",
        "/.ai.h2o.cloud.discovery/v1/components",
    ]:
        check("GET", path, requests.get(url + path), 200)
    r = requests.post(f"{url}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": key})
    token = check("POST", "/oauth/token", r, 200)["access_token"]
    r = requests.post(f"{url}/oauth/token", data={"grant_type": "password"})
    check("POST", "/oauth/token", r, 400)
    r = requests.get(f"{url}/api/v1/whoami", headers=_auth(token))
    check("GET", "/api/v1/whoami", r, 200)


def test_pangea_answers_match_the_document(server, check):
    url, key = server.url, server.admin_key
    tenant = f"workspaces/{uuid.uuid4()}"
    ev = {"message": "hello", "actor": "alice", "action": "login", "status": "success", "tenant_id": tenant}
    r = requests.post(f"{url}/pangea/v1/log", json={"event": ev, "verbose": True}, headers=_auth(key))
    first = check("POST", "/pangea/v1/log", r, 200)["result"]
    r = requests.post(f"{url}/pangea/v1/log", json={"event": ev, "verbose": True,
                                                   "prev_root": first["unpublished_root"]}, headers=_auth(key))
    check("POST", "/pangea/v1/log", r, 200)
    r = requests.post(f"{url}/pangea/v1/log", json={"event": {"actor": "x", "extra": 1}}, headers=_auth(key))
    assert len(check("POST", "/pangea/v1/log", r, 400)["result"]["errors"]) == 2
    r = requests.post(f"{url}/pangea/v1/log", json={"event": ev}, headers=_auth("nope"))
    check("POST", "/pangea/v1/log", r, 401)
    search_only = server.create_key(["search"])
    r = requests.post(f"{url}/pangea/v1/log", json={"event": ev}, headers=_auth(search_only))
    check("POST", "/pangea/v1/log", r, 403)
    r = requests.post(f"{url}/pangea/v1/log", data=b'{"event": {}}', headers=_auth(key))
    check("POST", "/pangea/v1/log", r, 415)
    bulk = {"events": [{"event": ev}, {"event": ev | {"message": "two"}}], "verbose": True}
    r = requests.post(f"{url}/pangea/v2/log", json=bulk, headers=_auth(key))
    check("POST", "/pangea/v2/log", r, 200)
    r = requests.post(f"{url}/pangea/v2/log_async", json=bulk, headers=_auth(key))
    accepted = check("POST", "/pangea/v2/log_async", r, 202)
    r = requests.get(f"{url}/pangea/request/{accepted['request_id']}", headers=_auth(key))
    assert len(check("GET", "/pangea/request/{id}", r, 200)["result"]["results"]) == 2
    r = requests.get(f"{url}/pangea/request/prq_nope", headers=_auth(key))
    check("GET", "/pangea/request/{id}", r, 404)
    logs = {"logs": [{"log_id": "1", "data": {"type": "s", "description": "login", "user_id": "u", "date": "2024-01-02T03:04:05Z"}}]}
    r = requests.post(f"{url}/pangea/v1/log_stream", json=logs, headers=_auth(key))
    check("POST", "/pangea/v1/log_stream", r, 200)

    # An H2O event in the same tenant: its envelope carries the H2O-only keys.
    r = requests.post(f"{url}/v1/events", params={"eventId": str(uuid.uuid4())},
                      json=_h2o_event(tenant), headers=_auth(key))
    assert r.status_code == 200
    query = {"query": f'tenant_id="{tenant}"', "limit": 3, "max_results": 5, "verbose": True}
    r = requests.post(f"{url}/pangea/v1/search", json=query, headers=_auth(key))
    found = check("POST", "/pangea/v1/search", r, 200)["result"]
    assert found["count"] == 5 and len(found["events"]) == 3
    assert found["events"][0]["envelope"]["event"]["event_source"] == "h2oai-test"  # newest first
    r = requests.post(f"{url}/pangea/v1/search", json={"query": "(", "verbose": False}, headers=_auth(key))
    check("POST", "/pangea/v1/search", r, 400)
    r = requests.post(f"{url}/pangea/v1/results", json={"id": found["id"], "offset": 3}, headers=_auth(key))
    assert len(check("POST", "/pangea/v1/results", r, 200)["result"]["events"]) == 2
    r = requests.post(f"{url}/pangea/v1/results", json={"id": found["id"], "offset": 99}, headers=_auth(key))
    assert check("POST", "/pangea/v1/results", r, 400)["status"] == "BadOffset"
    r = requests.post(f"{url}/pangea/v1/results", json={"id": "pas_nope"}, headers=_auth(key))
    check("POST", "/pangea/v1/results", r, 404)
    r = requests.post(f"{url}/pangea/v1/root", json={}, headers=_auth(key))
    assert check("POST", "/pangea/v1/root", r, 200)["result"]["data"]["size"] >= 1
    r = requests.post(f"{url}/pangea/v1/root", json={"tree_size": 2}, headers=_auth(key))
    assert "consistency_proof" in check("POST", "/pangea/v1/root", r, 200)["result"]["data"]
    r = requests.post(f"{url}/pangea/v1/root", json={"tree_size": 10**12}, headers=_auth(key))
    check("POST", "/pangea/v1/root", r, 404)
    r = requests.post(f"{url}/pangea/v1/download_results", json={"result_id": found["id"], "format": "json"},
                      headers=_auth(key))
    dest = check("POST", "/pangea/v1/download_results", r, 200)["result"]["dest_url"]
    r = requests.get(dest)
    assert r.status_code == 200 and r.headers["content-type"] == "application/gzip"
    assert len(gzip.decompress(r.content).splitlines()) == 5
    r = requests.get(f"{url}/download/00/x.csv.gz")
    check("GET", "/download/{token}/{name}", r, 404)
    r = requests.post(f"{url}/pangea/v1/download_results", json={}, headers=_auth(key))
    check("POST", "/pangea/v1/download_results", r, 400)
    r = requests.post(f"{url}/pangea/v1/export", json={"format": "csv", "start": "1d"}, headers=_auth(key))
    accepted = check("POST", "/pangea/v1/export", r, 202)
    r = requests.get(f"{url}/pangea/request/{accepted['request_id']}", headers=_auth(key))
    assert check("GET", "/pangea/request/{id}", r, 200)["result"] == {}


def test_ui_and_operations_answers_match_the_document(server, check):
    url, key = server.url, server.admin_key
    check("GET", "/api/v1/whoami", requests.get(f"{url}/api/v1/whoami", headers=_auth(key)), 200)
    check("GET", "/api/v1/whoami", requests.get(f"{url}/api/v1/whoami"), 401)
    check("GET", "/api/v1/public-key", requests.get(f"{url}/api/v1/public-key"), 200)
    actor = f"openapi-{uuid.uuid4().hex}"
    for i in range(2):
        r = requests.post(f"{url}/pangea/v1/log", json={"event": {"message": str(i), "actor": actor}},
                          headers=_auth(key))
        assert r.status_code == 200
    check("GET", "/api/v1/roots/{size}", requests.get(f"{url}/api/v1/roots/1", headers=_auth(key)), 200)
    check("GET", "/api/v1/roots/{size}", requests.get(f"{url}/api/v1/roots/x", headers=_auth(key)), 404)
    r = requests.get(f"{url}/api/v1/export", params={"format": "json", "query": f"actor:{actor}",
                                                     "start": "2000-01-01T00:00:00Z"}, headers=_auth(key))
    assert len(check("GET", "/api/v1/export", r, 200)) == 2
    r = requests.get(f"{url}/api/v1/export", params={"format": "xml"}, headers=_auth(key))
    check("GET", "/api/v1/export", r, 400)
    r = requests.get(f"{url}/api/v1/tail", params={"query": "("}, headers=_auth(key))
    check("GET", "/api/v1/tail", r, 400)
    check("GET", "/healthz", requests.get(f"{url}/healthz"), 200)
    check("GET", "/readyz", requests.get(f"{url}/readyz"), 200)
    check("GET", "/metrics", requests.get(f"{url}/metrics"), 401)
    reader = server.create_key(["search"])
    check("GET", "/metrics", requests.get(f"{url}/metrics", headers=_auth(reader)), 403)
    r = requests.get(f"{url}/metrics", headers=_auth(key))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")


def test_docs_page_serves_swagger_ui_offline(server):
    url = server.url
    r = requests.get(f"{url}/docs", allow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/docs/"
    r = requests.get(f"{url}/docs/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert 'id="swagger-ui"' in r.text
    assert "<script>" not in r.text.replace(" ", "")  # no inline script (CSP)
    r = requests.get(f"{url}/docs/swagger-initializer.js")
    assert r.status_code == 200 and '"/openapi.json"' in r.text
    # Assets are stored gzipped: sent as is to gzip clients, decompressed for the others.
    r = requests.get(f"{url}/docs/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip"}, stream=True)
    assert r.status_code == 200 and r.headers.get("content-encoding") == "gzip"
    assert "javascript" in r.headers["content-type"]
    plain = requests.get(f"{url}/docs/swagger-ui.css", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert ".swagger-ui" in plain.text
    assert requests.get(f"{url}/docs/nope.js").status_code == 404
