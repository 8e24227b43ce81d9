"""Authorization matrix (design/reliability.md §5; H2O spec §10.3; Pangea spec §13), and the
audit-config boundaries (issue 21: keys bound to configs, `config_id`, the config routes).

Every endpoint × every key kind, table-driven; one test per cell:

* no credentials, a malformed token, a well-formed key naming no stored key (valid checksum),
  a right key id with a wrong secret, a revoked admin key → 401 on every authenticated route;
* ``ingest`` (all workspaces), ``ingest_w1`` (limited to W1), ``search`` (all workspaces),
  ``search_w1`` (limited to W1), ``admin``, and an OIDC access token minted for ``search_w1``
  (it must carry the key's limits).

Pinned choices where the design leaves one open: an admin key may do everything (footnote ¹);
ingest keys may read ``v1/root`` and the signed roots (Pangea spec §13: "any valid key");
a workspace-limited search filtered to another workspace gets 200 with zero events (²).
Content checks: a 200 search never shows a limited key another workspace's event (leaks are
counted), and an unlimited one does see both. A denied write stores nothing.

Beyond the matrix: a Pangea search id, an export request id or an H2O page token obtained by one
key is useless to a key without access; download URLs carry ≥128 random bits, are only issued to
keys that may search, only hold what the issuing key may see, and expire (checked with
libfaketime when installed, SKIPPED otherwise); revocation takes effect at once, also for minted
access tokens; all 401s look alike and carry ``WWW-Authenticate``.
"""

from __future__ import annotations

import ctypes.util
import gzip
import json
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List, Optional
from urllib.parse import urlparse

import pytest
import requests

import relharness as rh

pytestmark = pytest.mark.authz
F = "authz"
W1, W2 = "workspaces/az-w1", "workspaces/az-w2"
ANON = ["none", "malformed", "unknown_key", "wrong_secret", "revoked"]
KEYED = ["ingest", "ingest_w1", "search", "search_w1", "admin", "token_search_w1"]
KINDS = ANON + KEYED
SEARCHERS = {"search", "search_w1", "admin", "token_search_w1"}
INGESTERS = {"ingest", "ingest_w1", "admin"}
LIMITED = {"ingest_w1", "search_w1", "token_search_w1"}
# For servers that must answer many failing credentials from one address with 401, not 429.
NO_AUTH_LIMIT = ["--auth-fail-burst", "1000000"]


class Env:
    def __init__(self, srv: rh.Server):
        self.srv = srv
        self.url = srv.url
        admin = srv.admin_key
        self.keys: Dict[str, Optional[str]] = {
            "none": None,
            "malformed": "not-a-key",
            "unknown_key": rh.forge_key(),
            "wrong_secret": rh.forge_key(key_id=rh.key_id_of(admin)),
            "ingest": srv.create_key(["ingest"], name="az-ingest"),
            "ingest_w1": srv.create_key(["ingest"], [W1], name="az-ingest-w1"),
            "search": srv.create_key(["search"], name="az-search"),
            "search_w1": srv.create_key(["search"], [W1], name="az-search-w1"),
            "admin": admin,
        }
        revoked = srv.create_key(["admin"], name="az-revoked")
        # warm the verified-key cache first, so revocation must beat the cache
        assert rh.Api(self.url, revoked).request("GET", "/api/v1/whoami").status_code == 200
        srv.revoke_key(revoked)
        self.keys["revoked"] = revoked
        r = requests.post(self.url + "/oauth/token", data={"grant_type": "refresh_token", "client_id": "trailkeep",
                                                           "refresh_token": self.keys["search_w1"]}, timeout=10)
        assert r.status_code == 200, rh.short(r)
        self.keys["token_search_w1"] = r.json()["access_token"]
        api = rh.Api(self.url, admin)
        # One key per kind for the admin revoke cell to aim at.
        self.victims = {kind: rh.key_id_of(srv.create_key(["search"], name=f"az-victim-{kind}")) for kind in KINDS}
        # e1 in W1 and e2 in W2, through both APIs.
        self.marker = "az" + uuid.uuid4().hex[:10]
        for ws in (W1, W2):
            assert api.h2o_create(rh.h2o_event(ws, token=self.marker)).status_code == 200
            assert api.pangea("/v1/log", {"event": rh.pangea_event(ws, message=f"{self.marker} {ws}")}).status_code == 200
        # Per key: its own Pangea search id and export/async request id.
        self.search_id: Dict[str, str] = {}
        self.request_id: Dict[str, str] = {}
        for kind in KINDS:
            k = self.keys[kind]
            a = rh.Api(self.url, k)
            if kind in SEARCHERS:
                self.search_id[kind] = rh.pangea_ok(a.pangea("/v1/search", {"query": self.marker, "limit": 50}))["id"]
                r = a.pangea("/v1/export", {"format": "json"})
                assert r.status_code == 202, rh.short(r)
                self.request_id[kind] = r.json()["request_id"]
            elif kind in INGESTERS:
                r = a.pangea("/v2/log_async", {"events": [{"event": rh.pangea_event(W1, message="async")}]})
                assert r.status_code == 202, rh.short(r)
                self.request_id[kind] = r.json()["request_id"]

    def api(self, kind: str) -> rh.Api:
        return rh.Api(self.url, self.keys[kind], timeout=30)


@pytest.fixture(scope="module")
def env(tk_tmp):
    # Self-audit off: its asynchronous event per H2O search would race the "a denied write stores
    # nothing" snapshots of the cells that follow. The matrix sends hundreds of failing credentials
    # from 127.0.0.1 on purpose: the failed-authentication limit is raised for it (the limit itself
    # is tested below, on servers of its own).
    srv = rh.Server(tk_tmp / "authz", ["--no-self-audit", *NO_AUTH_LIMIT], log_dir=tk_tmp)
    srv.start()
    e = Env(srv)
    yield e
    # Live-tail connections delay a graceful stop (see test_faults.py::test_sigterm_with_a_live_tail_
    # open_exits_promptly); wait them out here so that finding is reported once, there.
    rc = srv.stop(timeout=45)
    v = srv.verify()
    assert rc == 0 and v.returncode == 0, f"rc={rc}; verify: {v.stdout}"


# ----------------------------------------------------------------------------------------- checks
def workspaces_h2o(r) -> List[str]:
    return [e["workspace"] for e in r.json()["events"]]


def workspaces_pangea(r) -> List[str]:
    return [e["envelope"]["event"].get("tenant_id", "") for e in r.json()["result"]["events"]]


def scope_check(kind: str, seen: List[str], must_see_w2: bool = True) -> Optional[str]:
    """A limited key sees only W1; an unlimited one sees W2 too (when the query covers it)."""
    if kind in LIMITED:
        leaked = [w for w in seen if w != W1]
        if leaked:
            rh.fig_add(F, "cross_workspace_leaks", len(leaked))
            return f"{kind} (limited to {W1}) saw events of {sorted(set(leaked))}"
    elif must_see_w2 and W2 not in seen:
        return f"{kind} (all workspaces) should see the {W2} event: saw {sorted(set(seen))}"
    return None


def aggregate_check(kind: str, r, must_see_w2: bool) -> Optional[str]:
    """The timeline and top values: a limited key counts W1 only (its tenants, and a total equal to
    the W1 events counted); an unlimited one counts W2 too."""
    j = r.json()
    tenants = {v["value"]: v["count"] for v in j["top"]["tenant_id"]["values"]}
    problem = scope_check(kind, list(tenants), must_see_w2)
    if problem:
        return problem
    if kind in LIMITED and j["total"] != tenants.get(W1, 0):
        rh.fig_add(F, "cross_workspace_leaks")
        return f"{kind} counted {j['total']} events, {tenants.get(W1, 0)} of them in {W1}"
    return None


def h2o_batch_mixed_check(env, kind, r) -> Optional[str]:
    j = r.json()
    if kind == "ingest_w1":
        fr = j["failedRequests"]
        if list(fr) != ["1"] or fr["1"].get("code") != 7 or len(j["events"]) != 1:
            return f"ingest_w1 batch with a W2 item: expected item 1 failed with code 7: {json.dumps(j)[:300]}"
    elif j["failedRequests"] or len(j["events"]) != 2:
        return f"{kind}: both items should be stored: {json.dumps(j['failedRequests'])[:200]}"
    return None


def ev(ws, **over):
    return rh.h2o_event(ws, token="authz", **over)


def tail_call(env, kind):
    r = requests.get(env.url + "/api/v1/tail", headers=rh.bearer(env.keys[kind]), stream=True, timeout=10)
    r.close()
    return r


# endpoint name -> (call(env, kind) -> Response, expected {kind: status}, write?, check(env, kind, r) -> problem)
def E(call, expect, write=False, check=None):
    return {"call": call, "expect": expect, "write": write, "check": check}


def allow(kinds, ok, denied=403):
    """Expectation: `ok` for `kinds`, `denied` for the other keyed kinds, 401 for ANON."""
    out = {k: 401 for k in ANON}
    out.update({k: (ok if k in kinds else denied) for k in KEYED})
    return out


def public(code=200):
    return {k: code for k in KINDS}


def _oauth(env, kind):
    data = {"grant_type": "refresh_token", "client_id": "trailkeep"}
    if env.keys[kind]:
        data["refresh_token"] = env.keys[kind]
    return requests.post(env.url + "/oauth/token", data=data, timeout=10)


ENDPOINTS: Dict[str, dict] = {
    # ---------------------------------------------------------------- H2O
    "h2o.create.W1": E(lambda e, k: e.api(k).h2o_create(ev(W1)), allow(INGESTERS, 200), write=True),
    "h2o.create.W2": E(lambda e, k: e.api(k).h2o_create(ev(W2)), allow({"ingest", "admin"}, 200), write=True),
    "h2o.create.no_workspace": E(lambda e, k: e.api(k).h2o_create(ev("")), allow({"ingest", "admin"}, 200),
                                 write=True),
    "h2o.create.override_W2": E(lambda e, k: e.api(k).h2o_create(ev(W1, workspaceOverride=W2)),
                                allow({"ingest", "admin"}, 200), write=True),
    "h2o.batch.W1": E(lambda e, k: e.api(k).h2o_batch([(str(uuid.uuid4()), ev(W1)), (str(uuid.uuid4()), ev(W1))]),
                      allow(INGESTERS, 200), write=True),
    "h2o.batch.W1+W2": E(lambda e, k: e.api(k).h2o_batch([(str(uuid.uuid4()), ev(W1)), (str(uuid.uuid4()), ev(W2))]),
                         allow(INGESTERS, 200), write=True, check=h2o_batch_mixed_check),
    "h2o.search.all": E(lambda e, k: e.api(k).h2o_search({"actionRegex": "CREATE"}), allow(SEARCHERS, 200),
                        check=lambda e, k, r: scope_check(k, workspaces_h2o(r))),
    "h2o.search.W2": E(lambda e, k: e.api(k).h2o_search({"workspaceExact": W2}), allow(SEARCHERS, 200),
                       check=lambda e, k, r: scope_check(k, workspaces_h2o(r))),
    "h2o.search.W1": E(lambda e, k: e.api(k).h2o_search({"workspaceExact": W1}), allow(SEARCHERS, 200),
                       check=lambda e, k, r: None if W1 in workspaces_h2o(r) else f"{k} should see its W1 event"),
    # ---------------------------------------------------------------- Pangea
    "pangea.log.W1": E(lambda e, k: e.api(k).pangea("/v1/log", {"event": rh.pangea_event(W1)}),
                       allow(INGESTERS, 200), write=True),
    "pangea.log.W2": E(lambda e, k: e.api(k).pangea("/v1/log", {"event": rh.pangea_event(W2)}),
                       allow({"ingest", "admin"}, 200), write=True),
    "pangea.log.no_tenant": E(lambda e, k: e.api(k).pangea("/v1/log", {"event": rh.pangea_event("")}),
                              allow({"ingest", "admin"}, 200), write=True),
    "pangea.v2log.W1": E(lambda e, k: e.api(k).pangea("/v2/log", {"events": [{"event": rh.pangea_event(W1)}]}),
                         allow(INGESTERS, 200), write=True),
    "pangea.v2log.W1+W2": E(lambda e, k: e.api(k).pangea("/v2/log", {"events": [{"event": rh.pangea_event(W1)},
                                                                                  {"event": rh.pangea_event(W2)}]}),
                            allow({"ingest", "admin"}, 200), write=True),
    "pangea.v2log_async.W1": E(lambda e, k: e.api(k).pangea("/v2/log_async",
                                                            {"events": [{"event": rh.pangea_event(W1)}]}),
                               allow(INGESTERS, 202), write=True),
    "pangea.v2log_async.W2": E(lambda e, k: e.api(k).pangea("/v2/log_async",
                                                            {"events": [{"event": rh.pangea_event(W2)}]}),
                               allow({"ingest", "admin"}, 202), write=True),
    "pangea.log_stream": E(lambda e, k: e.api(k).pangea("/v1/log_stream", {"logs": [{"data": {
        "type": "s", "description": "login", "user_name": "u"}}]}), allow({"ingest", "admin"}, 200), write=True),
    "pangea.search.all": E(lambda e, k: e.api(k).pangea("/v1/search", {"query": e.marker, "limit": 100}),
                           allow(SEARCHERS, 200), check=lambda e, k, r: scope_check(k, workspaces_pangea(r))),
    "pangea.search.W2": E(lambda e, k: e.api(k).pangea("/v1/search", {"query": f"tenant_id:{W2}", "limit": 100}),
                          allow(SEARCHERS, 200), check=lambda e, k, r: scope_check(k, workspaces_pangea(r))),
    "pangea.search.restricted_W2": E(lambda e, k: e.api(k).pangea("/v1/search", {
        "query": "", "limit": 100, "search_restriction": {"tenant_id": [W2]}}), allow(SEARCHERS, 200),
        check=lambda e, k, r: scope_check(k, workspaces_pangea(r))),
    "pangea.results.own": E(lambda e, k: e.api(k).pangea("/v1/results", {"id": e.search_id.get(k, e.search_id["admin"]),
                                                                          "limit": 100}),
                            allow(SEARCHERS, 200), check=lambda e, k, r: scope_check(k, workspaces_pangea(r))),
    "pangea.root": E(lambda e, k: e.api(k).root(), allow(set(KEYED), 200)),
    "pangea.root.size1": E(lambda e, k: e.api(k).root(1), allow(set(KEYED), 200)),
    "pangea.download_results.own": E(lambda e, k: e.api(k).pangea("/v1/download_results", {
        "result_id": e.search_id.get(k, e.search_id["admin"]), "format": "json"}), allow(SEARCHERS, 200)),
    "pangea.download_results.export": E(lambda e, k: e.api(k).pangea("/v1/download_results", {
        "request_id": e.request_id.get(k, e.request_id["search"]) if k in SEARCHERS else e.request_id["search"],
        "format": "csv"}), allow(SEARCHERS, 200)),
    "pangea.export": E(lambda e, k: e.api(k).pangea("/v1/export", {"format": "csv"}), allow(SEARCHERS, 202)),
    "pangea.poll.own": E(lambda e, k: e.api(k).request("GET", f"/pangea/request/{e.request_id.get(k, e.request_id['admin'])}"),
                         allow(set(KEYED), 200)),
    # ---------------------------------------------------------------- UI routes
    "ui.whoami": E(lambda e, k: e.api(k).request("GET", "/api/v1/whoami"), allow(set(KEYED), 200)),
    "ui.roots.1": E(lambda e, k: e.api(k).request("GET", "/api/v1/roots/1"), allow(set(KEYED), 200)),
    "ui.tail": E(tail_call, allow(SEARCHERS, 200)),
    "ui.export.json": E(lambda e, k: e.api(k).request("GET", f"/api/v1/export?format=json&query={e.marker}"),
                        allow(SEARCHERS, 200),
                        check=lambda e, k, r: scope_check(k, [x["envelope"]["event"].get("tenant_id", "")
                                                              for x in r.json()])),
    "ui.export.csv": E(lambda e, k: e.api(k).request("GET", f"/api/v1/export?format=csv&query={e.marker}"),
                       allow(SEARCHERS, 200),
                       check=lambda e, k, r: scope_check(k, [w for w in (W1, W2) if w in r.text])),
    "ui.aggregate.all": E(lambda e, k: e.api(k).request("GET", f"/api/v1/aggregate?query={e.marker}&start=1d"),
                          allow(SEARCHERS, 200), check=lambda e, k, r: aggregate_check(k, r, must_see_w2=True)),
    "ui.aggregate.W2": E(lambda e, k: e.api(k).request("GET", f"/api/v1/aggregate?query=tenant_id%3D{W2}&start=1d"),
                         allow(SEARCHERS, 200), check=lambda e, k, r: aggregate_check(k, r, must_see_w2=True)),
    "ui.integrity": E(lambda e, k: e.api(k).request("GET", "/api/v1/integrity"), allow(SEARCHERS, 200)),
    "ui.verify.status": E(lambda e, k: e.api(k).request("GET", "/api/v1/verify"), allow(SEARCHERS, 200)),
    # ---------------------------------------------------------------- admin API (unlimited admin keys only)
    "admin.keys.list": E(lambda e, k: e.api(k).request("GET", "/api/v1/keys"), allow({"admin"}, 200),
                         check=lambda e, k, r: None if "tk_" not in r.text else "the key list shows a secret"),
    "admin.keys.create": E(lambda e, k: e.api(k).post_json("/api/v1/keys", {"name": "az-made", "scopes": ["search"]}),
                           allow({"admin"}, 201), write=True),
    "admin.keys.revoke": E(lambda e, k: e.api(k).request("DELETE", "/api/v1/keys/" + e.victims[k]),
                           allow({"admin"}, 204), write=True),
    "admin.retention": E(lambda e, k: e.api(k).request("GET", "/api/v1/retention"), allow({"admin"}, 200)),
    "admin.verify.start": E(lambda e, k: e.api(k).request("POST", "/api/v1/verify"), allow({"admin"}, 202), write=True),
    "admin.retention.purge": E(lambda e, k: e.api(k).request("POST", "/api/v1/retention/purge"),
                               allow({"admin"}, 409), write=True),
    "admin.replication": E(lambda e, k: e.api(k).request("GET", "/api/v1/replication"), allow({"admin"}, 200),
                           check=lambda e, k, r: None if r.json() == {"enabled": False} else r.text[:200]),
    # ---------------------------------------------------------------- public
    "public.ui.public_key": E(lambda e, k: e.api(k).request("GET", "/api/v1/public-key"), public()),
    "public.healthz": E(lambda e, k: e.api(k).request("GET", "/healthz"), public()),
    "public.version": E(lambda e, k: e.api(k).request("GET", "/version"), public()),
    "public.openid_configuration": E(lambda e, k: e.api(k).request("GET", "/.well-known/openid-configuration"),
                                     public()),
    "public.h2o_discovery.environment": E(lambda e, k: e.api(k).request(
        "GET", "/.ai.h2o.cloud.discovery/v1/environment"), public()),
    "public.h2o_discovery.services": E(lambda e, k: e.api(k).request("GET", "/.ai.h2o.cloud.discovery/v1/services"),
                                       public()),
    "public.h2o_discovery.clients": E(lambda e, k: e.api(k).request("GET", "/.ai.h2o.cloud.discovery/v1/clients"),
                                      public()),
    "public.ui_asset": E(lambda e, k: e.api(k).request("GET", "/app.css"), public()),
    "public.ui_index": E(lambda e, k: e.api(k).request("GET", "/", headers={"Accept": "text/html"}), public()),
    # The token endpoint exchanges an API key (the refresh token) for an access token. An access
    # token is not a refresh token (spec §10.4 names the key): exchanging one is refused, or a
    # leaked one-hour token could be renewed for ever.
    "oauth.token": E(_oauth, {**{k: 400 for k in ANON}, **{k: 200 for k in KEYED}, "token_search_w1": 400}),
}

CELLS = [(name, kind) for name in ENDPOINTS for kind in KINDS]
for _k in ("cells_checked", "cells_failed", "cross_workspace_leaks", "5xx_seen"):
    rh.fig_add(F, _k, 0)


@pytest.mark.parametrize("endpoint,kind", CELLS, ids=[f"{n}[{k}]" for n, k in CELLS])
def test_cell(env, endpoint, kind):
    spec = ENDPOINTS[endpoint]
    expected = spec["expect"][kind]
    before = (env.srv.snapshot(), env.srv.key_snapshot()) if spec["write"] else None
    r = spec["call"](env, kind)
    rh.fig_add(F, "cells_checked")
    problems = []
    if r.status_code != expected:
        problems.append(f"expected {expected}, got {rh.short(r, 240)}")
    elif 200 <= r.status_code < 300 and spec["check"]:
        p = spec["check"](env, kind, r)
        if p:
            problems.append(p)
    if r.status_code >= 400 and spec["write"]:
        after = (env.srv.snapshot(), env.srv.key_snapshot())
        if after != before:
            problems.append(f"denied ({r.status_code}) but the stored state changed {before} -> {after}")
    if r.status_code >= 500:
        rh.fig_add(F, "5xx_seen")
    if problems:
        rh.fig_add(F, "cells_failed")
    assert not problems, f"{endpoint} as {kind}: " + "; ".join(problems)


# ----------------------------------------------------------------------------------------- beyond
def test_all_401s_alike_with_www_authenticate(env):
    """E-401: every kind of bad credential gets the same 401 (no hint which part was wrong) and a
    WWW-Authenticate header, on every dialect."""
    problems = []
    routes = [("h2o", lambda a: a.h2o_search({})), ("pangea", lambda a: a.root()),
              ("ui", lambda a: a.request("GET", "/api/v1/whoami"))]
    for name, call in routes:
        bodies = {}
        for kind in ANON:
            r = call(env.api(kind))
            j = r.json()
            for volatile in ("request_id", "request_time", "response_time"):
                j.pop(volatile, None) if isinstance(j, dict) else None
            bodies[kind] = json.dumps(j, sort_keys=True)
            if r.status_code != 401:
                problems.append(f"{name} as {kind}: {rh.short(r)}")
            if "WWW-Authenticate" not in r.headers:
                problems.append(f"{name} as {kind}: 401 without WWW-Authenticate")
        if len(set(bodies.values())) != 1:
            problems.append(f"{name}: 401 bodies differ between bad-credential kinds: {bodies}")
    assert not problems, rh.problems_msg("E-401", problems)


def test_revocation_is_immediate_also_for_access_tokens(env):
    """E-revoke: warm the verified-key cache, revoke, call within 1 s: 401; a token minted from
    the key dies with it."""
    k = env.srv.create_key(["search"], name="az-revoke-now")
    a = rh.Api(env.url, k)
    assert a.root().status_code == 200 and a.root().status_code == 200
    tok = requests.post(env.url + "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": k},
                        timeout=10).json()["access_token"]
    assert rh.Api(env.url, tok).root().status_code == 200
    env.srv.revoke_key(k)
    t0 = time.monotonic()
    r1 = a.root()
    r2 = rh.Api(env.url, tok).root()
    took = time.monotonic() - t0
    assert r1.status_code == 401, f"revoked key still accepted: {rh.short(r1)}"
    assert r2.status_code == 401, f"access token of a revoked key still accepted: {rh.short(r2)}"
    assert took < 1.0
    r3 = requests.post(env.url + "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": k}, timeout=10)
    assert r3.status_code == 400 and r3.json().get("error") == "invalid_grant", rh.short(r3)


def test_search_ids_and_page_tokens_useless_without_access(env):
    problems = []
    w1 = env.api("search_w1")
    # Pangea search ids of keys that see W2 are useless to the W1 key (and to ingest keys).
    for owner in ("search", "admin"):
        sid = env.search_id[owner]
        for label, call in [("v1/results", lambda: w1.pangea("/v1/results", {"id": sid})),
                            ("v1/download_results", lambda: w1.pangea("/v1/download_results", {"result_id": sid}))]:
            r = call()
            if r.status_code != 404:
                problems.append(f"search_w1 using {owner}'s search id on {label}: {rh.short(r, 200)}")
        r = env.api("ingest").pangea("/v1/results", {"id": sid})
        if r.status_code not in (403, 404):
            problems.append(f"ingest key using {owner}'s search id: {rh.short(r, 200)}")
    # Export request ids likewise.
    rid = env.request_id["search"]
    r = w1.pangea("/v1/download_results", {"request_id": rid})
    if r.status_code != 404:
        problems.append(f"search_w1 using search's export request id: {rh.short(r, 200)}")
    r = w1.request("GET", f"/pangea/request/{rid}")
    if r.status_code not in (403, 404):  # Pangea spec §4: another key's poll → Unauthorized
        problems.append(f"search_w1 polling search's export request: {rh.short(r, 200)}")
    # H2O page tokens are bound to the key that got them.
    s = env.api("search")
    for i in range(3):
        assert env.api("admin").h2o_create(ev(W2 if i % 2 else W1)).status_code == 200
    first = s.h2o_search({"actionRegex": "CREATE"}, page_size=1)
    tok = first.json()["nextPageToken"]
    assert tok, "expected a second page"
    assert s.h2o_search({"actionRegex": "CREATE"}, page_size=1, token=tok).status_code == 200
    for kind in ("search_w1", "token_search_w1", "admin", "ingest"):
        r = env.api(kind).h2o_search({"actionRegex": "CREATE"}, page_size=1, token=tok)
        if r.status_code not in (400, 403):
            problems.append(f"{kind} reusing search's H2O page token: {rh.short(r, 200)}")
        elif r.status_code == 200 and any(w != W1 for w in workspaces_h2o(r)):
            problems.append(f"{kind} saw other workspaces through search's page token")
    assert not problems, rh.problems_msg("ids and tokens", problems)


def _download(env, kind, body) -> requests.Response:
    return env.api(kind).pangea("/v1/download_results", body)


def test_download_urls_unguessable_scoped_and_unauthenticated(env):
    problems = []
    tokens = set()
    for kind in ("search", "search_w1", "admin"):
        for fmt in ("json", "csv"):
            r = _download(env, kind, {"result_id": env.search_id[kind], "format": fmt})
            res = rh.pangea_ok(r)
            u = urlparse(res["dest_url"])
            m = re.fullmatch(r"/download/([^/]+)/[^/]+", u.path)
            if not m:
                problems.append(f"unexpected dest_url shape: {res['dest_url']}")
                continue
            token = m.group(1)
            if not re.fullmatch(r"[0-9a-f]{32,}|[A-Za-z0-9_-]{22,}", token):
                problems.append(f"download token {token!r} carries fewer than 128 random bits")
            tokens.add(token)
            exp = time.mktime(time.strptime(res["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            if not time.time() < exp <= time.time() + 48 * 3600 + 120:
                problems.append(f"expires_at {res['expires_at']} is not within the next 48 h")
            f = requests.get(res["dest_url"], timeout=30)  # no Authorization: a capability URL
            if f.status_code != 200:
                problems.append(f"download without a key failed: {rh.short(f)}")
                continue
            body = gzip.decompress(f.content).decode()
            if kind == "search_w1" and W2 in body:
                rh.fig_add(F, "cross_workspace_leaks")
                problems.append("search_w1's download contains W2 events")
            if kind != "search_w1" and W2 not in body:
                problems.append(f"{kind}'s download lacks the W2 event")
            bad = res["dest_url"].replace(token, token[:-1] + ("0" if token[-1] != "0" else "1"))
            g = requests.get(bad, timeout=10)
            if g.status_code != 404:
                problems.append(f"a download URL with one character changed answered {g.status_code}")
    if len(tokens) != 6:
        problems.append(f"download tokens repeat: {len(tokens)} distinct of 6")
    for kind in ANON + ["ingest", "ingest_w1"]:
        r = _download(env, kind, {"result_id": env.search_id["admin"]})
        if r.status_code not in (401, 403) or "dest_url" in r.text:
            problems.append(f"{kind} was handed a download URL: {rh.short(r, 200)}")
    assert not problems, rh.problems_msg("download URLs", problems)


def test_download_urls_do_not_survive_a_restart(new_server):
    srv = new_server("dl-restart")
    a = rh.Api(srv.url, srv.admin_key)
    a.pangea("/v1/log", {"event": rh.pangea_event(W1, message="x")})
    sid = rh.pangea_ok(a.pangea("/v1/search", {"query": ""}))["id"]
    url = rh.pangea_ok(a.pangea("/v1/download_results", {"result_id": sid}))["dest_url"]
    assert requests.get(url, timeout=10).status_code == 200
    srv.stop()
    srv.start()
    new = url.replace(urlparse(url).netloc, urlparse(srv.url).netloc)
    r = requests.get(new, timeout=10)
    assert r.status_code == 404, f"a download URL outlived the server process: {rh.short(r)}"


def _libfaketime() -> Optional[str]:
    for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
              "/usr/local/lib/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"):
        if os.path.exists(p):
            return p
    return None


def test_download_urls_and_search_ids_expire(new_server, tk_tmp):
    """Move the server's wall clock 49 h ahead (libfaketime, monotonic clock untouched): the
    search id (48 h, Pangea spec P9) and its download URL must be gone."""
    lib = _libfaketime()
    if not lib:
        pytest.skip("libfaketime not installed (Debian package `faketime`): cannot move the server's clock")
    rc = tk_tmp / f"faketime-{uuid.uuid4().hex[:6]}"
    rc.write_text("+0\n")
    srv = new_server("expiry", env={"LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": str(rc), "FAKETIME_NO_CACHE": "1",
                                    "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    a = rh.Api(srv.url, srv.admin_key)
    a.pangea("/v1/log", {"event": rh.pangea_event(W1, message="x")})
    sid = rh.pangea_ok(a.pangea("/v1/search", {"query": ""}))["id"]
    url = rh.pangea_ok(a.pangea("/v1/download_results", {"result_id": sid}))["dest_url"]
    assert requests.get(url, timeout=10).status_code == 200
    rc.write_text("+49h\n")
    time.sleep(0.2)
    r = requests.get(url, timeout=10)
    assert r.status_code == 404, f"download URL still valid 49 h later: {rh.short(r)}"
    r = a.pangea("/v1/results", {"id": sid})
    assert r.status_code == 404, f"search id still valid 49 h later: {rh.short(r)}"


def test_tail_shows_a_limited_key_only_its_workspace(env):
    """Live tail (SSE): a W1-limited key never receives a W2 event; an unlimited key gets both."""
    got: Dict[str, List[str]] = {"search_w1": [], "search": []}
    stop = threading.Event()

    def listen(kind):
        try:
            with requests.get(env.url + "/api/v1/tail", headers=rh.bearer(env.keys[kind]), stream=True,
                              timeout=(5, 3)) as r:
                assert r.status_code == 200
                for line in r.iter_lines(decode_unicode=True):
                    if stop.is_set():
                        return
                    if line and line.startswith("data: "):
                        e = json.loads(line[6:])
                        got[kind].append(e["envelope"]["event"].get("tenant_id", ""))
        except requests.exceptions.RequestException:
            return

    threads = [threading.Thread(target=listen, args=(k,), daemon=True) for k in got]
    for t in threads:
        t.start()
    time.sleep(1.0)
    a = env.api("admin")
    for ws in (W2, W1, W2):
        assert a.pangea("/v1/log", {"event": rh.pangea_event(ws, message="tail")}).status_code == 200
    deadline = time.time() + 6
    while time.time() < deadline and (W1 not in got["search_w1"] or W2 not in got["search"]):
        time.sleep(0.2)
    stop.set()
    leaked = [w for w in got["search_w1"] if w != W1]
    if leaked:
        rh.fig_add(F, "cross_workspace_leaks", len(leaked))
    assert not leaked, f"the W1-limited tail received events of {set(leaked)}"
    assert W1 in got["search_w1"], f"the W1-limited tail received nothing: {got}"
    assert W2 in got["search"], f"the unlimited tail missed the W2 event: {got}"


# ----------------------------------------------------------------------------- failed-auth limits
def _throttle(api: rh.Api, max_tries: int) -> List[requests.Response]:
    """Failing credentials (well-formed unknown keys) until the first 429; all the answers."""
    out = []
    for _ in range(max_tries):
        r = api.with_key(rh.forge_key()).request("GET", "/api/v1/whoami")
        out.append(r)
        if r.status_code == 429:
            break
    return out


def _metric(api: rh.Api, name: str) -> float:
    r = api.request("GET", "/metrics")
    assert r.status_code == 200, rh.short(r)
    for line in r.text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_failed_auth_is_rate_limited_per_address_and_recovers(new_server):
    """E-401: after a burst of failed authentications from one address, further credentials from
    it get 429 with Retry-After (in each dialect's error shape) without being verified; other
    addresses, and a key verified recently, are unaffected; the address recovers after
    Retry-After; throttled requests are counted in /metrics. Clients are told apart by their
    source address (127.0.0.x, all loopback)."""
    burst = 5
    srv = new_server("authlimit", ["--auth-fail-burst", str(burst), "--auth-fail-per-sec", "0.25"])
    admin = rh.Api(srv.url, srv.admin_key)
    attacker = rh.Api(srv.url, None, timeout=30, source="127.0.0.2")
    try:
        attacker.request("GET", "/healthz")
    except requests.exceptions.ConnectionError as e:
        pytest.skip(f"cannot connect from 127.0.0.2 here: {e}")
    before = _metric(admin, "trailkeep_auth_rate_limited_total")
    searcher = srv.create_key(["search"], name="limit-searcher")
    answers = _throttle(attacker, burst + 3)
    codes = [r.status_code for r in answers]
    rh.fig_set(F, "auth_limit_statuses_until_429", codes)
    assert codes[:burst] == [401] * burst, f"the first {burst} failures must be plain 401s: {codes}"
    last = answers[-1]
    assert last.status_code == 429, f"no 429 within {burst + 3} failures from one address: {codes}"
    retry = last.headers.get("Retry-After", "")
    assert retry.isdigit() and 1 <= int(retry) <= 4, f"Retry-After {retry!r} (refill 0.25/s: at most 4 s)"
    assert last.json().get("code") == "rate_limited", rh.short(last)
    # Every dialect answers in its own shape while the address is blocked.
    bad = attacker.with_key(rh.forge_key())
    r = bad.h2o_search({}, 1)
    assert r.status_code == 429 and r.json() == {"code": 8, "message": "rate limit exceeded", "details": []} \
        and r.headers.get("Retry-After"), rh.short(r)
    r = bad.pangea("/v1/search", {"query": ""})
    assert r.status_code == 429 and r.json()["status"] == "TooManyRequests" and r.headers.get("Retry-After"), \
        rh.short(r)
    r = requests.post(srv.url + "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": rh.forge_key()},
                      timeout=10)  # from 127.0.0.1: not blocked
    assert r.status_code == 400, rh.short(r)
    # A valid key not verified yet is refused from the blocked address (nothing is verified there)...
    r = attacker.with_key(searcher).request("GET", "/api/v1/whoami")
    assert r.status_code == 429, f"an unverified key from a blocked address: {rh.short(r)}"
    # ...while other addresses are served as usual,
    r = rh.Api(srv.url, searcher).request("GET", "/api/v1/whoami")
    assert r.status_code == 200, f"a valid key from another address: {rh.short(r)}"
    # and a key verified recently is accepted even from the blocked address.
    r = attacker.with_key(searcher).request("GET", "/api/v1/whoami")
    assert r.status_code == 200, f"a recently verified key from a blocked address: {rh.short(r)}"
    throttled = _metric(admin, "trailkeep_auth_rate_limited_total") - before
    rh.fig_set(F, "auth_limit_throttled_counted", throttled)
    assert throttled >= 4, f"trailkeep_auth_rate_limited_total rose by {throttled}, expected at least 4"
    # After Retry-After, failures are answered 401 again, and a fresh valid key works.
    time.sleep(int(retry) + 0.2)
    r = attacker.with_key(rh.forge_key()).request("GET", "/api/v1/whoami")
    assert r.status_code == 401, f"after Retry-After: {rh.short(r)}"
    fresh = srv.create_key(["search"], name="limit-fresh")
    r = attacker.with_key(fresh).request("GET", "/api/v1/whoami")
    assert r.status_code == 200, f"a valid key after the address recovered: {rh.short(r)}"
    rh.fig_add(F, "auth_limit_checks", 1)


def test_failed_auth_is_rate_limited_per_key_id(new_server):
    """E-401 per key id: wrong secrets for one key id from many addresses run out that key id's
    allowance; then guesses at it get 429 from any address, other key ids do not, and the owner's
    recently verified key keeps working."""
    burst = 4
    srv = new_server("authlimit-key", ["--auth-fail-burst", str(burst), "--auth-fail-per-sec", "0.2"])
    victim = srv.create_key(["search"], name="victim")
    assert rh.Api(srv.url, victim).request("GET", "/api/v1/whoami").status_code == 200
    vid = rh.key_id_of(victim)

    def guess(n: int, key: str) -> requests.Response:
        return rh.Api(srv.url, key, source=f"127.0.0.{10 + n}").request("GET", "/api/v1/whoami")

    try:
        codes = [guess(i, rh.forge_key(key_id=vid)).status_code for i in range(burst + 1)]
    except requests.exceptions.ConnectionError as e:
        pytest.skip(f"cannot connect from 127.0.0.x here: {e}")
    assert codes == [401] * burst + [429], f"wrong secrets for one key id from {burst + 1} addresses: {codes}"
    r = guess(50, rh.forge_key(key_id=vid))
    assert r.status_code == 429 and r.headers.get("Retry-After"), f"guess at a blocked key id: {rh.short(r)}"
    r = guess(51, rh.forge_key())
    assert r.status_code == 401, f"another key id must not be throttled: {rh.short(r)}"
    r = guess(52, victim)
    assert r.status_code == 200, f"the owner's verified key must keep working: {rh.short(r)}"
    rh.fig_add(F, "auth_limit_checks", 1)


def _mann_whitney_p(a: List[float], b: List[float]) -> float:
    """Two-sided Mann-Whitney U test, normal approximation with tie correction."""
    import math

    n1, n2 = len(a), len(b)
    allv = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(allv)
    ties = 0.0
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1][0] == allv[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, allv) if g == 0)
    u = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    z = (u - n1 * n2 / 2) / sigma if sigma else 0.0
    return math.erfc(abs(z) / math.sqrt(2))


def test_unknown_key_id_times_like_a_wrong_secret(new_server):
    """K-checks: rejecting a key id that does not exist must take as long as rejecting a wrong
    secret for one that does (a dummy argon2 verification), or response times enumerate key ids.
    200 samples each, interleaved in random order over one keep-alive connection; Mann-Whitney U
    two-sided must not find a difference at p < 0.001 (a missing verification gives p ~ 1e-60)."""
    import random

    srv = new_server("timing", NO_AUTH_LIMIT)
    api = rh.Api(srv.url)
    known = rh.key_id_of(srv.admin_key)
    samples: Dict[str, List[float]] = {"unknown": [], "wrong_secret": []}
    order = ["unknown", "wrong_secret"] * 220
    random.Random(6).shuffle(order)
    for i, kind in enumerate(order):
        key = rh.forge_key() if kind == "unknown" else rh.forge_key(key_id=known)
        t0 = time.perf_counter()
        r = api.request("GET", "/api/v1/whoami", key=key)
        took = time.perf_counter() - t0
        assert r.status_code == 401, rh.short(r)
        if i >= 40:  # the first ones warm up (connection, the dummy hash, caches)
            samples[kind].append(took)
    p = _mann_whitney_p(samples["unknown"], samples["wrong_secret"])
    med = {k: round(sorted(v)[len(v) // 2] * 1000, 2) for k, v in samples.items()}
    rh.fig_set(F, "auth_timing_median_ms", med)
    rh.fig_set(F, "auth_timing_mann_whitney_p", round(p, 4))
    rh.fig_set(F, "auth_timing_samples", {k: len(v) for k, v in samples.items()})
    assert p > 0.001, (f"unknown key ids and wrong secrets are told apart by time: p={p:.2g}, "
                       f"medians {med} ms")


def test_secrets_never_logged(new_server):
    """E-keys / issue 6: after authenticated requests through every dialect, the OIDC exchange,
    wrong secrets, a revoked key and a throttled address, no key secret and no access token
    appears in the server's log (debug level, JSON) nor in the database or its WAL."""
    srv = new_server("nolog", ["--log-format", "json", "--auth-fail-burst", "3"], env={"TRAILKEEP_LOG": "debug"})
    admin = srv.admin_key
    ingest = srv.create_key(["ingest"], name="nolog-ingest")
    search = srv.create_key(["search"], ["workspaces/nolog"], name="nolog-search")
    revoked = srv.create_key(["admin"], name="nolog-revoked")
    wrong = [rh.forge_key(key_id=rh.key_id_of(k)) for k in (admin, ingest, search)]
    a = rh.Api(srv.url, admin)
    assert a.request("GET", "/api/v1/whoami").status_code == 200
    i = a.with_key(ingest)
    assert i.h2o_create(rh.h2o_event("workspaces/nolog", token="x")).status_code == 200
    assert i.pangea("/v1/log", {"event": rh.pangea_event("workspaces/nolog")}).status_code == 200
    sw = a.with_key(search)
    assert sw.h2o_search({}, 5).status_code == 200
    assert sw.pangea("/v1/search", {"query": ""}).status_code == 200
    r = requests.post(srv.url + "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": search},
                      timeout=10)
    assert r.status_code == 200, rh.short(r)
    access = r.json()["access_token"]
    assert a.with_key(access).request("GET", "/api/v1/whoami").status_code == 200
    assert a.with_key(revoked).request("GET", "/api/v1/whoami").status_code == 200
    srv.revoke_key(revoked)
    assert a.with_key(revoked).request("GET", "/api/v1/whoami").status_code == 401
    assert a.request("GET", "/metrics").status_code == 200
    statuses = [a.with_key(w).request("GET", "/api/v1/whoami").status_code for w in wrong * 2]
    assert 429 in statuses, f"the throttled path should be exercised too: {statuses}"
    assert srv.stop() == 0
    log = srv.log_since()
    assert "request" in log and "whoami" in log, "the access log is expected to record these requests"
    stored = b"".join(p.read_bytes() for p in srv.data_dir.glob("trailkeep.db*"))
    found = []
    for name, tok in [("admin", admin), ("ingest", ingest), ("search", search), ("revoked", revoked),
                      ("access token", access)] + [(f"wrong secret {n}", w) for n, w in enumerate(wrong)]:
        secret = tok.rsplit("_", 1)[1] if tok.startswith("tk_") else tok
        for where, text in (("log", log), ("database", stored.decode("latin-1"))):
            if secret in text or secret[:32] in text:
                found.append(f"{name} in the {where}")
    rh.fig_set(F, "secrets_found_in_logs_or_db", len(found))
    assert not found, f"secrets found: {found}"


# ------------------------------------------------------------------------------ config boundaries
# Audit configs are a visibility boundary like workspaces (issue 21): keys bound to configs, the
# `config_id` every Pangea call may carry, the config routes, and H2O (default config only).
# Kinds: keys of the default config (bound to none), keys bound to config A, a key bound to A and B
# (it must name one), and an admin key (every config). C is a config no non-admin key is bound to,
# S a server-signing config.
CKINDS = ["default_ingest", "default_search", "a_ingest", "a_search", "ab", "admin"]
C_UNKNOWN = "pci_" + "0" * 32


def _config(srv, name, *extra):
    return srv.cli("configs", "create", "--name", name, *extra, "--data-dir", str(srv.data_dir)).stdout.split()[-1]


def _bound(srv, name, scopes, configs):
    args = ["keys", "create", "--name", name]
    for s in scopes:
        args += ["--scope", s]
    for c in configs:
        args += ["--config", c]
    return srv.cli(*args, "--data-dir", str(srv.data_dir)).stdout.split()[-1]


class ConfigEnv:
    def __init__(self, srv: rh.Server):
        self.srv, self.url = srv, srv.url
        self.a, self.b, self.c = _config(srv, "az-a"), _config(srv, "az-b"), _config(srv, "az-c")
        self.s = _config(srv, "az-signed", "--signing", "server")
        self.keys = {
            "default_ingest": srv.create_key(["ingest"], name="az-default-ingest"),
            "default_search": srv.create_key(["search"], name="az-default-search"),
            "a_ingest": _bound(srv, "az-a-ingest", ["ingest"], [self.a]),
            "a_search": _bound(srv, "az-a-search", ["search"], [self.a]),
            "ab": _bound(srv, "az-ab", ["ingest", "search"], [self.a, self.b]),
            "admin": srv.admin_key,
        }
        self.marker = "azc" + uuid.uuid4().hex[:10]
        admin = rh.Api(self.url, srv.admin_key)
        for cid in (None, self.a, self.b, self.c):
            body = {"event": rh.pangea_event("", message=f"{self.marker} {cid or 'default'}")}
            if cid:
                body["config_id"] = cid
            assert admin.pangea("/v1/log", body).status_code == 200

    def api(self, kind):
        return rh.Api(self.url, self.keys[kind], timeout=30)

    def default_id(self):
        return next(c["id"] for c in self.api("admin").request("GET", "/api/v1/whoami").json()["configs"] if c["default"])


@pytest.fixture(scope="module")
def cenv(tk_tmp):
    srv = rh.Server(tk_tmp / "authz-configs", ["--no-self-audit", *NO_AUTH_LIMIT], log_dir=tk_tmp)
    srv.start()
    yield ConfigEnv(srv)
    rc = srv.stop(timeout=45)
    v = srv.verify()
    assert rc == 0 and v.returncode == 0, f"rc={rc}; verify: {v.stdout}"


def _log(cid):
    def call(e, k):
        body = {"event": rh.pangea_event("", message="azc write")}
        if cid is not None:
            body["config_id"] = getattr(e, cid) if cid in ("a", "b", "c", "s") else cid
        return e.api(k).pangea("/v1/log", body)
    return call


def _search(cid):
    def call(e, k):
        body = {"query": e.marker, "limit": 100}
        if cid is not None:
            body["config_id"] = getattr(e, cid)
        return e.api(k).pangea("/v1/search", body)
    return call


def _sees_only(config_name, export=False):
    """A search's (or a UI export's) events all belong to `config_name` (the marker message names
    the config)."""
    def check(e, k, r):
        events = r.json() if export else r.json()["result"]["events"]
        msgs = [x["envelope"]["event"].get("message", "") for x in events]
        want = f"{e.marker} {config_name if config_name == 'default' else getattr(e, config_name)}"
        wrong = [m for m in msgs if m != want]
        if wrong or not msgs:
            rh.fig_add(F, "cross_config_leaks", len(wrong))
            return f"{k} expected only {want!r}, saw {msgs}"
        return None
    return check


def _sees_default_for(e, k, r):
    # Keys of the default config (and admin keys without config_id) see the default config only;
    # a key bound to A alone sees A.
    return _sees_only("a" if k.startswith("a_") else "default")(e, k, r)


def ce(call, expect, write=False, check=None):
    return {"call": call, "expect": expect, "write": write, "check": check}


def cexp(**codes):
    return {k: codes.get(k, 403) for k in CKINDS}


CONFIG_ENDPOINTS = {
    "pangea.log.A": ce(_log("a"), cexp(a_ingest=200, ab=200, admin=200), write=True),
    "pangea.log.no_config_id": ce(_log(None), cexp(default_ingest=200, a_ingest=200, ab=400, admin=200), write=True),
    "pangea.log.C_unbound": ce(_log("c"), cexp(admin=200), write=True),
    "pangea.log.unknown": ce(_log(C_UNKNOWN), cexp(admin=404), write=True),
    "pangea.log.default_by_id": ce(lambda e, k: e.api(k).pangea("/v1/log", {
        "event": rh.pangea_event("", message="azc write"), "config_id": e.default_id()}),
        cexp(default_ingest=200, admin=200), write=True),
    "pangea.search.A": ce(_search("a"), cexp(a_search=200, ab=200, admin=200), check=_sees_only("a")),
    "pangea.search.B": ce(_search("b"), cexp(ab=200, admin=200), check=_sees_only("b")),
    "pangea.search.no_config_id": ce(_search(None), cexp(default_search=200, a_search=200, ab=400, admin=200),
                                     check=_sees_default_for),
    "pangea.schema.A": ce(lambda e, k: e.api(k).pangea("/v1/schema", {"config_id": e.a}),
                          cexp(a_ingest=200, a_search=200, ab=200, admin=200)),
    "pangea.config.list": ce(lambda e, k: e.api(k).pangea("/v1beta/config/list", {}), cexp(admin=200)),
    "pangea.config.get": ce(lambda e, k: e.api(k).pangea("/v1beta/config", {"id": e.a}), cexp(admin=200)),
    "pangea.config.create": ce(lambda e, k: e.api(k).pangea("/v1beta/config/create", {"name": f"az-{k}"}),
                               cexp(admin=200)),
    "admin.configs.rotate": ce(lambda e, k: e.api(k).request("POST", f"/api/v1/configs/{e.s}/rotate-signing"),
                               cexp(admin=200)),
    "ui.export.A": ce(lambda e, k: e.api(k).request("GET", f"/api/v1/export?format=json&query={e.marker}&config_id={e.a}"),
                      cexp(a_search=200, ab=200, admin=200), check=_sees_only("a", export=True)),
    "h2o.search": ce(lambda e, k: e.api(k).h2o_search({"actionRegex": "CREATE"}), cexp(default_search=200, admin=200)),
    "h2o.create": ce(lambda e, k: e.api(k).h2o_create(rh.h2o_event("", token="azc")),
                     cexp(default_ingest=200, admin=200), write=True),
}

CCELLS = [(name, kind) for name in CONFIG_ENDPOINTS for kind in CKINDS]
rh.fig_add(F, "cross_config_leaks", 0)


@pytest.mark.parametrize("endpoint,kind", CCELLS, ids=[f"{n}[{k}]" for n, k in CCELLS])
def test_config_cell(cenv, endpoint, kind):
    spec = CONFIG_ENDPOINTS[endpoint]
    expected = spec["expect"][kind]
    before = cenv.srv.snapshot() if spec["write"] else None
    r = spec["call"](cenv, kind)
    rh.fig_add(F, "cells_checked")
    problems = []
    if r.status_code != expected:
        problems.append(f"expected {expected}, got {rh.short(r, 240)}")
    elif 200 <= r.status_code < 300 and spec["check"]:
        p = spec["check"](cenv, kind, r)
        if p:
            problems.append(p)
    if r.status_code >= 400 and spec["write"] and cenv.srv.snapshot() != before:
        problems.append(f"denied ({r.status_code}) but events were stored")
    if r.status_code == 400 and endpoint.endswith("no_config_id") and r.json().get("status") != "MissingConfigID":
        problems.append(f"a key with two configs and no config_id: expected MissingConfigID, got {rh.short(r)}")
    if problems:
        rh.fig_add(F, "cells_failed")
    assert not problems, f"{endpoint} as {kind}: " + "; ".join(problems)


def test_config_refusals_look_alike(cenv):
    """A config the key is not bound to and a config that does not exist are refused with the same
    answer (status, body apart from request ids), so a key cannot probe which configs exist."""
    a = cenv.api("a_ingest")
    bodies = []
    for cid in (cenv.c, C_UNKNOWN):
        r = a.pangea("/v1/log", {"event": rh.pangea_event("", message="probe"), "config_id": cid})
        j = r.json()
        for volatile in ("request_id", "request_time", "response_time"):
            j.pop(volatile, None)
        bodies.append((r.status_code, json.dumps(j, sort_keys=True)))
    assert bodies[0] == bodies[1], bodies


def test_whoami_lists_the_keys_configs(cenv):
    got = {k: sorted(c["id"] for c in cenv.api(k).request("GET", "/api/v1/whoami").json()["configs"])
           for k in CKINDS}
    d = cenv.default_id()
    assert got["default_search"] == [d]
    assert got["a_search"] == [cenv.a]
    assert got["ab"] == sorted([cenv.a, cenv.b])
    assert {d, cenv.a, cenv.b, cenv.c, cenv.s} <= set(got["admin"])
