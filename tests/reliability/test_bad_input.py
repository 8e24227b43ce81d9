"""Bad input: every row B1–B30 of design/reliability.md §4, through the H2O API, the Pangea API
and the UI routes (``/api/v1/*``).

Around every request ("nothing lost" check, §4): the stored state (event count, tree size, newest
root, read from the database) is taken before and after; a rejection changes nothing, an
acceptance adds exactly the events it should; no 5xx anywhere; error bodies are JSON in the
dialect's shape (H2O ``{code, message, details}``, Pangea envelope, problem+json for the UI) and
leak no SQLite text, panic or source path; the server then answers ``/healthz`` within 2 s with the
same PID. ``trailkeep verify`` passes at the end.

Where the design's generic code and a dialect's spec differ, the dialect spec (shared/spec/*.md)
decides and the row's comment says so; the design's *(calibrate)* limits are the ones the dialect
specs fixed (single body 1 MiB, batch body 16 MiB, 8 KiB per H2O string, RE2 pattern 1 KiB,
Pangea query 4 KiB / 64 terms).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import socket
import time
import unicodedata
import uuid
from typing import Callable, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import quote, urlparse

import pytest
import requests

import relharness as rh

pytestmark = pytest.mark.badinput
F = "bad_input"
MiB = 1 << 20
SINGLE_LIMIT = 1 * MiB  # H2O create, Pangea v1/log and searches (dialect specs)
BATCH_LIMIT = 16 * MiB  # H2O :batchCreate, Pangea v2/log, v2/log_async, v1/log_stream
W1, W2 = "workspaces/bi-w1", "workspaces/bi-w2"
for _k in ("bad_inputs_tried", "5xx_seen", "deviations", "connection_failures"):
    rh.fig_add(F, _k, 0)


class Ctx:
    def __init__(self, srv: rh.Server):
        self.srv = srv
        self.pid = srv.pid
        self.url = srv.url
        self.admin = srv.admin_key
        self.ingest_w1 = srv.create_key(["ingest"], [W1], name="bi-ingest-w1")
        self.search_w1 = srv.create_key(["search"], [W1], name="bi-search-w1")
        self.search = srv.create_key(["search"], name="bi-search")
        self.api = rh.Api(srv.url, self.admin)
        r = self.api.pangea("/v1/search", {"query": "", "limit": 1})
        self.search_id = rh.pangea_ok(r)["id"]

    def as_(self, key) -> rh.Api:
        return rh.Api(self.url, key)


@pytest.fixture(scope="module")
def ctx(tk_tmp):
    # Self-audit off: an H2O search must not add an event while we count stored events.
    # JSON logs: row B26 checks that every log line stays one JSON record.
    srv = rh.Server(tk_tmp / "badinput", ["--no-self-audit", "--log-format", "json"], log_dir=tk_tmp)
    srv.start()
    c = Ctx(srv)
    # Events in two workspaces for the scope rows (B16, B22).
    for ws in (W1, W2):
        assert c.api.h2o_create(rh.h2o_event(ws, token=uuid.uuid4().hex)).status_code == 200
        assert c.api.pangea("/v1/log", {"event": rh.pangea_event(ws, message=f"seed {ws}")}).status_code == 200
    yield c
    rc = srv.stop()
    v = srv.verify()
    rh.fig_set(F, "final_verify", (v.stdout + v.stderr).strip()[:200])
    assert rc == 0, f"server exit code {rc} after the bad-input run"
    assert v.returncode == 0, f"`trailkeep verify` after the bad-input run failed:\n{v.stdout}"


# ----------------------------------------------------------------------------------------- checks
def _shape_problem(path: str, r: requests.Response) -> Optional[str]:
    if r.status_code not in (400, 401, 403, 404, 405, 409, 415):
        return None
    try:
        j = r.json()
    except ValueError:
        return f"error body is not JSON: {rh.short(r, 150)}"
    if path.startswith("/pangea/"):
        if set(j) != {"request_id", "request_time", "response_time", "status", "summary", "result"} or \
                j["status"] == "Success":
            return f"not a Pangea error envelope: {rh.short(r, 200)}"
        if j["status"] == "ValidationError":
            errs = (j.get("result") or {}).get("errors") or []
            if not errs or not all(str(e.get("source", "")).startswith("/") for e in errs):
                return f"ValidationError without JSON-pointer sources: {rh.short(r, 200)}"
    elif path.startswith("/api/"):
        # UI routes answer problem+json; a path no route matches falls back to the documented
        # H2O-shaped 404 (src/http/ui.rs), which is accepted too.
        h2o_404 = isinstance(j, dict) and j.get("code") == 5 and r.status_code == 404
        if not h2o_404 and (not isinstance(j, dict) or "code" not in j or "status" not in j):
            return f"not a problem+json body: {rh.short(r, 200)}"
    elif path.startswith("/v1/"):
        if not isinstance(j, dict) or not isinstance(j.get("code"), int) or not isinstance(j.get("message"), str):
            return f"not an H2O error body: {rh.short(r, 200)}"
    return None


def row(ctx: Ctx, label: str, call: Callable[[], requests.Response], expect: Iterable[int],
        stores: Optional[int] = 0, path: str = "", echo: Optional[str] = None,
        shape: bool = True) -> Tuple[List[str], requests.Response]:
    """Runs one bad input; returns (problems, response)."""
    expect = set(expect)
    before = ctx.srv.snapshot()
    try:
        r = call()
    except requests.exceptions.RequestException as e:
        rh.fig_add(F, "bad_inputs_tried")
        rh.fig_add(F, "connection_failures")
        return [f"{label}: no HTTP answer ({type(e).__name__}: {str(e)[:150]})"], None  # type: ignore[return-value]
    after = ctx.srv.snapshot()
    rh.fig_add(F, "bad_inputs_tried")
    probs = []
    if r.status_code >= 500:
        rh.fig_add(F, "5xx_seen")
    if r.status_code not in expect:
        rh.fig_add(F, "deviations")
        probs.append(f"{label}: expected {sorted(expect)}, got {rh.short(r, 260)}")
    path = path or urlparse(r.request.url).path
    if r.status_code >= 400:
        leak = rh.leaks(r)
        if leak:
            probs.append(f"{label}: error body leaks internals ({leak!r}): {rh.short(r, 200)}")
        bad_shape = _shape_problem(path, r) if shape else None
        if bad_shape:
            probs.append(f"{label}: {bad_shape}")
        if echo and echo in r.text:
            probs.append(f"{label}: the error body echoes the input")
        if after != before:
            probs.append(f"{label}: rejected ({r.status_code}) but the stored state changed {before} -> {after}")
    elif stores is not None and after[0] != before[0] + stores:
        probs.append(f"{label}: accepted; expected +{stores} stored events, got {after[0] - before[0]:+d}")
    probs += responsive(ctx, label)
    return probs, r


def responsive(ctx: Ctx, label: str) -> List[str]:
    if not ctx.srv.running or ctx.srv.pid != ctx.pid:
        return [f"{label}: the server is gone (rc={ctx.srv.proc.poll()}): {ctx.srv.log_tail(8)}"]
    try:
        r = requests.get(ctx.url + "/healthz", timeout=2)
        if r.status_code != 200:
            return [f"{label}: /healthz answered {r.status_code} afterwards"]
    except requests.exceptions.RequestException as e:
        return [f"{label}: /healthz did not answer within 2 s afterwards ({type(e).__name__})"]
    return []


def done(title: str, probs: List[str]) -> None:
    assert not probs, rh.problems_msg(title, probs)


def post(ctx: Ctx, path: str, data, key="admin", headers: Optional[dict] = None, **kw) -> requests.Response:
    k = ctx.admin if key == "admin" else key
    h = dict(rh.JSON_HDR)
    h.update(rh.bearer(k))
    if headers is not None:
        h.update(headers)
        h = {a: b for a, b in h.items() if b is not None}
    if not isinstance(data, (bytes, str)) and data is not None and not hasattr(data, "__next__"):
        data = json.dumps(data)
    return requests.post(ctx.url + path, data=data, headers=h, timeout=kw.pop("timeout", 60), **kw)


def get(ctx: Ctx, path: str, key="admin", **kw) -> requests.Response:
    k = ctx.admin if key == "admin" else key
    return requests.get(ctx.url + path, headers=rh.bearer(k), timeout=kw.pop("timeout", 30), **kw)


def new_eid() -> str:
    return str(uuid.uuid4())


def body_endpoints(ctx: Ctx) -> List[Tuple[str, Callable[[], str], dict]]:
    """(label, path factory, valid body) for every route that takes a JSON body."""
    ev = rh.h2o_event(W1, token="bi")
    return [
        ("h2o create", lambda: f"/v1/events?eventId={new_eid()}", ev),
        ("h2o batchCreate", lambda: "/v1/events:batchCreate", {"requests": [{"eventId": new_eid(), "event": ev}]}),
        ("h2o search", lambda: "/v1/events:search", {"filter": {}, "pageSize": 1}),
        ("pangea v1/log", lambda: "/pangea/v1/log", {"event": {"message": "x"}}),
        ("pangea v2/log", lambda: "/pangea/v2/log", {"events": [{"event": {"message": "x"}}]}),
        ("pangea v2/log_async", lambda: "/pangea/v2/log_async", {"events": [{"event": {"message": "x"}}]}),
        ("pangea v1/log_stream", lambda: "/pangea/v1/log_stream", {"logs": [{"data": {"type": "s", "description": "x"}}]}),
        ("pangea v1/search", lambda: "/pangea/v1/search", {"query": "", "limit": 1}),
        ("pangea v1/results", lambda: "/pangea/v1/results", {"id": ctx.search_id}),
        ("pangea v1/root", lambda: "/pangea/v1/root", {"tree_size": 1}),
        ("pangea v1/download_results", lambda: "/pangea/v1/download_results", {"result_id": ctx.search_id}),
        ("pangea v1/export", lambda: "/pangea/v1/export", {"format": "json"}),
    ]


def _prefix(valid: dict, member: bytes) -> bytes:
    """`{<member>, <rest of valid>}` as bytes."""
    rest = json.dumps(valid).encode()[1:]
    return b"{" + member + (b"," + rest if rest != b"}" else b"}")


# ----------------------------------------------------------------------------------------- B1
def test_b01_malformed_json_400(ctx):
    """B1: truncated JSON, lone surrogate, BOM, invalid UTF-8, nesting over 128 → 400 everywhere."""
    probs = []
    for label, path, valid in body_endpoints(ctx):
        vb = json.dumps(valid).encode()
        variants = {
            "truncated": vb[: len(vb) // 2],
            "lone surrogate": _prefix(valid, b'"zz":"\\ud800"'),
            "lone low surrogate": _prefix(valid, b'"zz":"a\\udc00b"'),
            "UTF-8 BOM": b"\xef\xbb\xbf" + vb,
            "invalid UTF-8": _prefix(valid, b'"zz":"\xff\xfe"'),
            "nesting 129": _prefix(valid, b'"zz":' + b"[" * 129 + b"]" * 129),
            "empty body": b"",
            "not an object": b"[1,2]",
            "trailing data": vb + b" {}",
        }
        for vname, data in variants.items():
            p = path()
            probs += row(ctx, f"{label} / {vname}", lambda: post(ctx, p, data), {400}, path=p)[0]
    done("B1 malformed JSON", probs)


# ----------------------------------------------------------------------------------------- B2
def test_b02_wrong_type_missing_field_unknown_enum_400(ctx):
    probs = []
    ev = rh.h2o_event(W1, token="b2")
    h2o_bad = {
        "eventTime as number": dict(ev, eventTime=1751450400),
        "missing principal": {k: v for k, v in ev.items() if k != "principal"},
        "missing eventTime": {k: v for k, v in ev.items() if k != "eventTime"},
        "empty action": dict(ev, action=""),
        "unknown type enum": dict(ev, type="TYPE_BOGUS"),
        "numeric type": dict(ev, type=1),
        "readOnly as string": dict(ev, readOnly="yes"),
        "metadata value number": dict(ev, metadata={"k": 1}),
        "metadata as list": dict(ev, metadata=["a"]),
        "status.code as string": dict(ev, status={"code": "0", "message": ""}),
        "status.code beyond int32": dict(ev, status={"code": 2**40, "message": ""}),
        "bad metadata key": dict(ev, metadata={"Bad-Key": "v"}),
        "bad workspaceOverride": dict(ev, workspaceOverride="w1"),
        "body is a string": "just a string",
    }
    for name, body in h2o_bad.items():
        p = f"/v1/events?eventId={new_eid()}"
        probs += row(ctx, f"h2o create / {name}", lambda: post(ctx, p, body), {400})[0]
    # H2O batch items fail one by one (200 + failedRequests, code 3, nothing stored); a wrong
    # request-level type fails the whole request.
    items = [{"eventId": new_eid(), "event": b} for b in h2o_bad.values() if isinstance(b, dict)]
    pr, r = row(ctx, "h2o batchCreate / every item invalid", lambda: post(ctx, "/v1/events:batchCreate",
                                                                           {"requests": items}), {200}, stores=0)
    probs += pr
    if r is not None and r.status_code == 200:
        fr = r.json().get("failedRequests", {})
        if sorted(fr, key=int) != [str(i) for i in range(len(items))] or any(v.get("code") != 3 for v in fr.values()):
            probs.append(f"h2o batchCreate / every item invalid: failedRequests should list all {len(items)} items "
                         f"with code 3: {json.dumps(fr)[:300]}")
    for name, body in {"requests not a list": {"requests": "x"}, "item not an object": {"requests": [5]}}.items():
        exp = {400} if name == "requests not a list" else {200}
        probs += row(ctx, f"h2o batchCreate / {name}", lambda: post(ctx, "/v1/events:batchCreate", body), exp)[0]
    for name, body in {"pageSize string": {"pageSize": "abc"}, "filter list": {"filter": []},
                       "unknown includeTypes": {"filter": {"includeTypes": ["TYPE_BOGUS"]}},
                       "readOnly string": {"filter": {"readOnly": "no"}},
                       "metadataExact values number": {"filter": {"metadataExact": {"a": 1}}}}.items():
        probs += row(ctx, f"h2o search / {name}", lambda: post(ctx, "/v1/events:search", body), {400})[0]
    pg = {
        "/pangea/v1/log": {"message number": {"event": {"message": 5}}, "missing message": {"event": {"actor": "a"}},
                           "event string": {"event": "x"}, "missing event": {}, "verbose string":
                               {"event": {"message": "x"}, "verbose": "yes"},
                           "actor object": {"event": {"message": "x", "actor": {"a": 1}}},
                           "message with a float": {"event": {"message": {"a": 1.5}}},
                           "unknown event field": {"event": {"message": "x", "colour": "red"}},
                           "bad timestamp": {"event": {"message": "x", "timestamp": "yesterday"}}},
        "/pangea/v2/log": {"events object": {"events": {"event": {}}}, "item string": {"events": ["x"]},
                           "item missing event": {"events": [{}]}},
        "/pangea/v1/search": {"limit string": {"query": "", "limit": "x"}, "order sideways": {"order": "sideways"},
                              "query number": {"query": 5}, "restriction not object": {"search_restriction": []},
                              "restriction unknown field": {"search_restriction": {"colour": ["x"]}}},
        "/pangea/v1/root": {"tree_size string": {"tree_size": "1"}, "tree_size 0": {"tree_size": 0}},
        "/pangea/v1/results": {"missing id": {}, "id number": {"id": 5}},
        "/pangea/v1/download_results": {"neither id": {}, "both ids": {"result_id": "a", "request_id": "b"},
                                        "format xml": {"result_id": ctx.search_id, "format": "xml"}},
        "/pangea/v1/export": {"format xml": {"format": "xml"}},
    }
    for p, cases in pg.items():
        for name, body in cases.items():
            probs += row(ctx, f"pangea {p[8:]} / {name}", lambda: post(ctx, p, body), {400})[0]
    done("B2 wrong type / missing / unknown enum", probs)


# ----------------------------------------------------------------------------------------- B3
def test_b03_missing_or_text_content_type_415(ctx):
    """B3 (design): no Content-Type, or text/plain → 415 unsupported_media_type, nothing stored."""
    probs = []
    cases = [
        ("h2o create", lambda: f"/v1/events?eventId={new_eid()}", rh.h2o_event(W1, token="b3")),
        ("h2o batchCreate", lambda: "/v1/events:batchCreate",
         {"requests": [{"eventId": new_eid(), "event": rh.h2o_event(W1, token="b3")}]}),
        ("pangea v1/log", lambda: "/pangea/v1/log", {"event": {"message": "b3"}}),
        ("pangea v2/log", lambda: "/pangea/v2/log", {"events": [{"event": {"message": "b3"}}]}),
    ]
    for label, path, body in cases:
        for ct in (None, "text/plain"):
            p = path()
            probs += row(ctx, f"{label} / Content-Type {ct}", lambda: post(ctx, p, body, headers={"Content-Type": ct}),
                         {415})[0]
    done("B3 content type", probs)


# ----------------------------------------------------------------------------------------- B4
def _padded(body: dict, total: int) -> bytes:
    b = json.dumps(body).encode()
    return b[:-1] + b" " * (total - len(b)) + b"}"


def test_b04_body_over_limit_413(ctx):
    """B4: limit + 1 byte, single and batch, also chunked with no length → 413; RSS < 2× limit."""
    probs = []
    rss0 = rh.proc_rss_kb(ctx.pid)
    cases = [
        ("h2o create", lambda: f"/v1/events?eventId={new_eid()}", rh.h2o_event(W1, token="b4"), SINGLE_LIMIT),
        ("h2o search", lambda: "/v1/events:search", {"filter": {}}, SINGLE_LIMIT),
        ("pangea v1/log", lambda: "/pangea/v1/log", {"event": {"message": "b4"}}, SINGLE_LIMIT),
        ("pangea v1/search", lambda: "/pangea/v1/search", {"query": ""}, SINGLE_LIMIT),
        ("h2o batchCreate", lambda: "/v1/events:batchCreate",
         {"requests": [{"eventId": new_eid(), "event": rh.h2o_event(W1, token="b4")}]}, BATCH_LIMIT),
        ("pangea v2/log", lambda: "/pangea/v2/log", {"events": [{"event": {"message": "b4"}}]}, BATCH_LIMIT),
    ]
    for label, path, body, limit in cases:
        data = _padded(body, limit + 1)
        p = path()
        probs += row(ctx, f"{label} / limit+1 bytes", lambda: post(ctx, p, data), {413})[0]
        p = path()
        chunks = lambda: (data[i:i + 65536] for i in range(0, len(data), 65536))  # noqa: E731
        probs += row(ctx, f"{label} / limit+1 bytes chunked", lambda: post(ctx, p, chunks()), {413})[0]
        # Exactly at the limit is not "too large" (the body is valid JSON padded with spaces).
        if limit == SINGLE_LIMIT and "create" in label:
            p = path()
            probs += row(ctx, f"{label} / exactly the limit", lambda: post(ctx, p, _padded(body, limit)), {200},
                         stores=1)[0]
    rss1 = rh.proc_rss_kb(ctx.pid)
    rh.fig_set(F, "b4_rss_rise_kib", rss1 - rss0)
    if (rss1 - rss0) * 1024 > 2 * BATCH_LIMIT:
        probs.append(f"RSS rose by {rss1 - rss0} KiB while refusing over-limit bodies (more than 2x the 16 MiB limit)")
    done("B4 body too large", probs)


# ----------------------------------------------------------------------------------------- B5
def test_b05_thousand_events_of_maximum_size(ctx):
    """B5: exactly 1000 events, each as large as the batch body limit allows → 2xx, 1000 results in order."""
    probs = []
    items = [(new_eid(), rh.h2o_event(W1, token=f"b5{i}", metadata={"token": f"b5{i}", "pad": "x" * 8192}))
             for i in range(1000)]
    body = {"requests": [{"eventId": i, "event": e} for i, e in items]}
    pr, r = row(ctx, "h2o batchCreate 1000 x 8 KiB", lambda: post(ctx, "/v1/events:batchCreate", body), {200},
                stores=1000)
    probs += pr
    if r is not None and r.status_code == 200:
        names = [e["name"] for e in r.json()["events"]]
        if names != [f"events/{i}" for i, _ in items] or r.json()["failedRequests"]:
            probs.append("h2o batchCreate 1000: results are not the 1000 events in request order")
    msg = "y" * 16_000  # 1000 x 16 000 chars stays under the 16 MiB bulk body limit
    body = {"events": [{"event": {"message": f"{i:04d}{msg}", "tenant_id": W1}} for i in range(1000)], "verbose": True}
    pr, r = row(ctx, "pangea v2/log 1000 x 16 KB", lambda: post(ctx, "/pangea/v2/log", body), {200}, stores=1000)
    probs += pr
    if r is not None and r.status_code == 200:
        res = r.json()["result"]["results"]
        if [x["envelope"]["event"]["message"][:4] for x in res] != [f"{i:04d}" for i in range(1000)]:
            probs.append("pangea v2/log 1000: results are not in request order")
    done("B5 maximum batch", probs)


# ----------------------------------------------------------------------------------------- B6
def test_b06_batch_too_large_or_empty(ctx):
    probs = []
    ev = rh.h2o_event(W1, token="b6")
    big = {"requests": [{"eventId": new_eid(), "event": ev} for _ in range(1001)]}
    probs += row(ctx, "h2o batchCreate 1001", lambda: post(ctx, "/v1/events:batchCreate", big), {400})[0]
    pbig = {"events": [{"event": {"message": "b6"}} for _ in range(1001)]}
    for p in ("/pangea/v2/log", "/pangea/v2/log_async"):
        probs += row(ctx, f"pangea {p[8:]} 1001", lambda: post(ctx, p, pbig), {400})[0]
        probs += row(ctx, f"pangea {p[8:]} empty", lambda: post(ctx, p, {"events": []}), {400})[0]
    probs += row(ctx, "pangea log_stream 1001", lambda: post(ctx, "/pangea/v1/log_stream",
                                                             {"logs": [{"data": {"type": "s"}}] * 1001}), {400})[0]
    probs += row(ctx, "pangea log_stream empty", lambda: post(ctx, "/pangea/v1/log_stream", {"logs": []}), {400})[0]
    # H2O: the official client sends an empty batch as {"requests": []} and both response keys are
    # always present (spec §5.2), so an empty batch is a no-op 200 rather than the design's 400
    # empty_batch: a user of the H2O client expects batch_create([]) not to raise.
    pr, r = row(ctx, "h2o batchCreate empty", lambda: post(ctx, "/v1/events:batchCreate", {"requests": []}), {200},
                stores=0)
    probs += pr
    if r is not None and r.status_code == 200 and r.json() != {"events": [], "failedRequests": {}}:
        probs.append(f"h2o empty batch should answer {{events: [], failedRequests: {{}}}}: {rh.short(r)}")
    done("B6 batch size", probs)


# ----------------------------------------------------------------------------------------- B7
def test_b07_one_invalid_item_in_a_batch(ctx):
    probs = []
    items = [{"eventId": new_eid(), "event": rh.h2o_event(W1, token=f"b7{i}")} for i in range(1000)]
    items[537]["event"]["eventTime"] = "not a time"
    pr, r = row(ctx, "h2o batchCreate item 537 invalid", lambda: post(ctx, "/v1/events:batchCreate",
                                                                       {"requests": items}), {200}, stores=999)
    probs += pr
    if r is not None and r.status_code == 200:
        fr = r.json()["failedRequests"]
        if list(fr) != ["537"] or fr["537"].get("code") != 3 or len(r.json()["events"]) != 999:
            probs.append(f"h2o: expected failedRequests {{'537': code 3}} and 999 events: {json.dumps(fr)[:200]}")
    pitems = [{"event": {"message": f"b7 {i}", "tenant_id": W1}} for i in range(1000)]
    pitems[537]["event"]["message"] = 537
    for p in ("/pangea/v2/log", "/pangea/v2/log_async"):
        pr, r = row(ctx, f"pangea {p[8:]} item 537 invalid", lambda: post(ctx, p, {"events": pitems}), {400})
        probs += pr
        if r is not None and r.status_code == 400:
            srcs = [e.get("source", "") for e in r.json()["result"]["errors"]]
            if not any(s.startswith("/events/537") for s in srcs):
                probs.append(f"pangea {p}: the error should point at /events/537: {srcs}")
    done("B7 one bad item", probs)


# ----------------------------------------------------------------------------------------- B8, B9
def test_b08_hostile_ids(ctx):
    """B8: ids `not-a-uuid`, `../../etc/passwd`, `%00` → 400 where the id is typed (H2O eventId),
    404 where it is opaque (Pangea request/search ids, download tokens: Pangea spec §4, §6.7),
    400 or 404 for the UI's numeric root size; never a file's content."""
    probs = []
    hostile = ["not-a-uuid", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%00", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"]
    for h in hostile:
        probs += row(ctx, f"h2o create eventId={h}", lambda: post(ctx, f"/v1/events?eventId={h}",
                                                                   rh.h2o_event(W1, token="b8")), {400})[0]
        item = {"requests": [{"eventId": h.replace("%00", "\u0000"), "event": rh.h2o_event(W1, token="b8")}]}
        pr, r = row(ctx, f"h2o batch eventId={h}", lambda: post(ctx, "/v1/events:batchCreate", item), {200})
        probs += pr
        if r is not None and r.status_code == 200 and r.json()["failedRequests"].get("0", {}).get("code") != 3:
            probs.append(f"h2o batch eventId={h}: the item should fail with code 3: {rh.short(r)}")
        for label, call, exp in [
            ("pangea GET request/{id}", lambda: get(ctx, f"/pangea/request/{h}"), {404}),
            ("pangea v1/results id", lambda: post(ctx, "/pangea/v1/results", {"id": h.replace("%00", "\u0000")}), {404}),
            ("pangea download_results result_id", lambda: post(ctx, "/pangea/v1/download_results",
                                                               {"result_id": h.replace("%00", "\u0000")}), {404}),
            ("pangea download_results request_id", lambda: post(ctx, "/pangea/v1/download_results",
                                                                {"request_id": h}), {404}),
            ("GET /download/{token}/x", lambda: get(ctx, f"/download/{h}/x.csv.gz", key=None), {404}),
            ("GET /download/t/{name}", lambda: get(ctx, f"/download/{'0' * 32}/{h}", key=None), {404}),
            ("UI roots/{size}", lambda: get(ctx, f"/api/v1/roots/{h}"), {400, 404}),
        ]:
            pr, r = row(ctx, f"{label} = {h}", call, exp)
            probs += pr
            if r is not None and "root:x:0:0" in r.text:
                probs.append(f"{label} = {h}: path traversal returned a file")
    done("B8 hostile ids", probs)


def _pangea_404_core(r: requests.Response):
    j = r.json()
    return r.status_code, j.get("status"), j.get("summary"), j.get("result")


def test_b09_unknown_id_same_as_out_of_scope(ctx):
    """B9: a well-formed unknown id → 404, the same as another key's id (nothing to tell them apart)."""
    probs = []
    other = rh.pangea_ok(ctx.as_(ctx.search).pangea("/v1/search", {"query": "", "limit": 1}))["id"]
    unknown = "pas_" + "a" * 32
    w1 = ctx.as_(ctx.search_w1)
    for label, path, field in [("v1/results", "/pangea/v1/results", "id"),
                               ("v1/download_results", "/pangea/v1/download_results", "result_id")]:
        pr1, r1 = row(ctx, f"{label} unknown id", lambda: w1.pangea(path[7:], {field: unknown}), {404})
        pr2, r2 = row(ctx, f"{label} another key's id", lambda: w1.pangea(path[7:], {field: other}), {404})
        probs += pr1 + pr2
        if r1 is not None and r2 is not None and r1.status_code == r2.status_code == 404:
            if _pangea_404_core(r1) != _pangea_404_core(r2):
                probs.append(f"{label}: unknown-id and out-of-scope-id 404s differ: {rh.short(r1)} vs {rh.short(r2)}")
    probs += row(ctx, "GET request/{unknown}", lambda: get(ctx, "/pangea/request/prq_" + "b" * 32), {404})[0]
    probs += row(ctx, "UI roots/{beyond size}", lambda: get(ctx, "/api/v1/roots/999999999"), {404})[0]
    probs += row(ctx, "pangea v1/root beyond size", lambda: post(ctx, "/pangea/v1/root", {"tree_size": 999999999}),
                 {404})[0]
    done("B9 unknown ids", probs)


# ----------------------------------------------------------------------------------------- B10, B11
def test_b10_event_id_forms(ctx):
    """B10 (H2O spec §6): canonical UUIDv4 only, hex case-insensitive, stored lowercase."""
    probs = []
    u = str(uuid.uuid4())
    for name, eid in [("nil", "00000000-0000-0000-0000-000000000000"), ("braced", "{" + u + "}"),
                      ("no dashes", u.replace("-", "")), ("version 1", str(uuid.uuid1())), ("empty", ""),
                      ("urn", "urn:uuid:" + u), ("with spaces", f" {u} ")]:
        probs += row(ctx, f"eventId {name}", lambda: post(ctx, f"/v1/events?eventId={quote(eid)}",
                                                           rh.h2o_event(W1, token="b10")), {400})[0]
    probs += row(ctx, "missing eventId", lambda: post(ctx, "/v1/events", rh.h2o_event(W1, token="b10")), {400})[0]
    upper = str(uuid.uuid4()).upper()
    ev = rh.h2o_event(W1, token="b10upper")
    pr, r = row(ctx, "eventId uppercase", lambda: post(ctx, f"/v1/events?eventId={upper}", ev), {200}, stores=1)
    probs += pr
    if r is not None and r.status_code == 200 and r.json()["event"]["name"] != f"events/{upper.lower()}":
        probs.append(f"uppercase eventId should be stored lowercase: {r.json()['event']['name']}")
    probs += row(ctx, "same id lowercase, same content", lambda: post(ctx, f"/v1/events?eventId={upper.lower()}", ev),
                 {200}, stores=0)[0]
    done("B10 event id forms", probs)


def test_b11_replay_same_and_different_content(ctx):
    probs = []
    eid = new_eid()
    ev = rh.h2o_event(W1, token="b11")
    pr, r1 = row(ctx, "h2o first create", lambda: post(ctx, f"/v1/events?eventId={eid}", ev), {200}, stores=1)
    probs += pr
    pr, r2 = row(ctx, "h2o replay same content", lambda: post(ctx, f"/v1/events?eventId={eid}", ev), {200}, stores=0)
    probs += pr
    if r1 is not None and r2 is not None and r2.status_code == 200 and r1.json() != r2.json():
        probs.append(f"h2o replay should return the original event: {r1.text[:150]} vs {r2.text[:150]}")
    pr, r3 = row(ctx, "h2o replay different content",
                 lambda: post(ctx, f"/v1/events?eventId={eid}", dict(ev, action="actions/other/X")), {409})
    probs += pr
    if r3 is not None and r3.status_code == 409 and r3.json().get("code") != 6:
        probs.append(f"h2o 409 should carry code 6: {rh.short(r3)}")
    items = {"requests": [{"eventId": eid, "event": ev}, {"eventId": eid, "event": dict(ev, action="actions/x/Y")}]}
    pr, r4 = row(ctx, "h2o batch replay same + different", lambda: post(ctx, "/v1/events:batchCreate", items), {200},
                 stores=0)
    probs += pr
    if r4 is not None and r4.status_code == 200:
        j = r4.json()
        if len(j["events"]) != 1 or j["failedRequests"].get("1", {}).get("code") != 6:
            probs.append(f"h2o batch replay: item 0 existing, item 1 code 6 expected: {rh.short(r4)}")
    # Pangea: a retry naming the committed request id returns the stored result (P27).
    pr, r5 = row(ctx, "pangea first log", lambda: post(ctx, "/pangea/v1/log", {"event": {"message": "b11"}}), {200},
                 stores=1)
    probs += pr
    if r5 is not None and r5.status_code == 200:
        rid = r5.json()["request_id"]
        pr, r6 = row(ctx, "pangea retried log", lambda: post(ctx, "/pangea/v1/log", {"event": {"message": "b11"}},
                                                              headers={"X-Pangea-Retried-Request-Ids": rid}),
                     {200}, stores=0)
        probs += pr
        if r6 is not None and r6.status_code == 200 and r6.json()["result"] != r5.json()["result"]:
            probs.append("pangea retry should return the original result")
    done("B11 replay", probs)


# ----------------------------------------------------------------------------------------- B12–B14
def h2o_filter(ctx, flt: dict, key="admin") -> requests.Response:
    return post(ctx, "/v1/events:search", {"filter": flt, "pageSize": 10}, key=key)


def test_b12_invalid_regex_400(ctx):
    """B12: RE2-invalid patterns → 400. `[a&&b]` is *valid* RE2 (literal `&`), so per the H2O spec
    §9.2 it is rewritten and accepted (design says 400; the dialect spec decides)."""
    probs = []
    for pat in ["[", "(", "(a)\\1", "\\k<n>", "(?x)a b", "(?u)a", "(?R)", "\\C", "a**", "x{2,1}", "\\p{NoSuchClass}"]:
        for field in ("actionRegex", "principalRegex", "statusCodeRegex"):
            probs += row(ctx, f"{field} {pat!r}", lambda: h2o_filter(ctx, {field: pat}), {400})[0]
        probs += row(ctx, f"metadataRegex {pat!r}", lambda: h2o_filter(ctx, {"metadataRegex": {"k": pat}}), {400})[0]
    probs += row(ctx, "actionRegex [a&&b] (valid RE2)", lambda: h2o_filter(ctx, {"actionRegex": "[a&&b]"}), {200})[0]
    done("B12 invalid regex", probs)


def test_b13_pathological_regex_is_fast(ctx):
    """B13: `(a+)+$`, `(a|aa)+$`, `(x+x+)+y` over maximum-size fields: 200, linear time."""
    probs = []
    ws = "workspaces/bi-redos-" + uuid.uuid4().hex[:8]
    items = [(new_eid(), rh.h2o_event(ws, token=f"b13{i}", principal="a" * 8191 + "b", action="x" * 8192,
                                      metadata={"token": f"b13{i}", "m": "a" * 8192})) for i in range(5)]
    assert ctx.api.h2o_batch(items).status_code == 200
    worst = 0.0
    for pat, field in [("(a+)+$", "principalRegex"), ("(a|aa)+$", "principalRegex"), ("(x+x+)+y", "actionRegex"),
                       ("(a*)*b$", "principalRegex")]:
        t0 = time.monotonic()
        pr, r = row(ctx, f"{field} {pat}", lambda: h2o_filter(ctx, {"workspaceExact": ws, field: pat}), {200})
        worst = max(worst, time.monotonic() - t0)
        probs += pr
    t0 = time.monotonic()
    probs += row(ctx, "metadataRegex (a+)+$", lambda: h2o_filter(ctx, {"workspaceExact": ws,
                                                                       "metadataRegex": {"m": "(a+)+$"}}), {200})[0]
    worst = max(worst, time.monotonic() - t0)
    rh.fig_set(F, "b13_worst_search_s", round(worst, 3))
    if worst > 1.0:
        probs.append(f"a pathological regex over 5 events of 8 KiB fields took {worst:.2f} s (not linear)")
    done("B13 pathological regex", probs)


def test_b14_regex_too_complex_or_long_400(ctx):
    probs = []
    for pat in ["a{10000}", "a{1001}", "(a{100}){11}", "\\w{1000}", "(?i)[\\p{L}]{50}", ".{1000}.{1000}",
                "a" * 1025, "(?:a|b)" * 200]:
        probs += row(ctx, f"actionRegex {pat[:24]!r} ({len(pat)} bytes)",
                     lambda: h2o_filter(ctx, {"actionRegex": pat}), {400})[0]
    done("B14 regex too complex / too long", probs)


# ----------------------------------------------------------------------------------------- B15, B16
# Pangea query text: the design wants "200, literal text", but the Pangea dialect spec §7.2 makes
# unbalanced quotes/parentheses, a dangling AND, an op without a value and unknown fields a 400
# BadFormat; the implementation documents (src/search/pangea_query.rs) that an unquoted `NOT` is
# reserved (a user typing `NOT x` expects negation, not a search for the word), so 400 there too.
# Either way: never a 5xx and never SQLite text.
QUERIES = {
    '"alice': 400, "alice AND": 400, "NEAR(": 400, "*": 200, "OPS-306": 200, "a:b:c": 400, "NOT": 400, "(": 400,
    "": 200, ")": 400, "alice OR": 400, "-": 200, '"a" "b': 400, "message:": 400, 'message:""': 200,
    '"NOT"': 200, "not": 200, "((((((((x))))))))": 200,
    "'; DROP TABLE events;--": 200, "actor:\"x\" AND -": 200, "x" * 4096: 200, "x" * 4097: 400,
}


def test_b15_pangea_query_text(ctx):
    probs = []
    for q, code in QUERIES.items():
        lab = q if len(q) < 30 else f"{q[:10]}… ({len(q)} chars)"
        probs += row(ctx, f"v1/search {lab!r}", lambda: post(ctx, "/pangea/v1/search", {"query": q, "limit": 5}),
                     {code})[0]
        probs += row(ctx, f"UI export query {lab!r}", lambda: get(ctx, f"/api/v1/export?format=json&query={quote(q)}"),
                     {code})[0]
        if code == 400:
            probs += row(ctx, f"UI tail query {lab!r}", lambda: get(ctx, f"/api/v1/tail?query={quote(q)}"), {400})[0]
    done("B15 Pangea query text", probs)


def test_b16_field_syntax_never_crosses_workspaces(ctx):
    """B16: FTS column syntax and workspace names in queries never show another workspace's rows."""
    probs = []
    w1 = ctx.as_(ctx.search_w1)
    for q, code in [("workspace:w2", 400), ("{workspace action}:x", 200), (f"tenant_id:{W2}", 200), (W2, 200),
                    ("bi-w2", 200), (f'tenant_id="{W2}"', 200), (f"tenant_id:{W2} OR tenant_id:{W1}", 200),
                    (f"-tenant_id:{W1}", 200), ("seed", 200), ("events_fts:x", 400), ("body:x", 400)]:
        pr, r = row(ctx, f"search_w1 query {q!r}", lambda: w1.pangea("/v1/search", {"query": q, "limit": 100}), {code})
        probs += pr
        if r is not None and r.status_code == 200:
            leaked = [e["envelope"]["event"].get("tenant_id") for e in r.json()["result"]["events"]
                      if e["envelope"]["event"].get("tenant_id") != W1]
            if leaked:
                probs.append(f"search_w1 query {q!r} returned events of other workspaces: {leaked[:3]}")
    for flt in [{"workspaceExact": W2}, {"workspaceRegex": ".*"}, {"resourceRegex": "bi-w2"}, {}]:
        pr, r = row(ctx, f"H2O search_w1 {flt}", lambda: h2o_filter(ctx, flt, key=ctx.search_w1), {200})
        probs += pr
        if r is not None and r.status_code == 200:
            leaked = [e["workspace"] for e in r.json()["events"] if e["workspace"] != W1]
            if leaked:
                probs.append(f"H2O search_w1 {flt} returned events of other workspaces: {leaked[:3]}")
    done("B16 field syntax / workspaces", probs)


# ----------------------------------------------------------------------------------------- B17, B18
def _pangea_find(ctx, query: str) -> List[dict]:
    r = post(ctx, "/pangea/v1/search", {"query": query, "limit": 100, "verbose": True})
    assert r.status_code == 200, rh.short(r)
    return r.json()["result"]["events"]


def test_b17_nul_round_trip(ctx):
    """B17: NUL in fields, queries and regexes: stored, found and hashed byte-exactly."""
    probs = []
    tag = uuid.uuid4().hex[:10]
    principal = f"nul\u0000{tag}\u0000end"
    ev = rh.h2o_event(W1, token=f"b17{tag}", principal=principal, metadata={"token": f"b17{tag}", "v": "a\u0000b"})
    eid = new_eid()
    probs += row(ctx, "h2o create with NUL", lambda: post(ctx, f"/v1/events?eventId={eid}", ev), {200}, stores=1)[0]
    for flt in [{"principalExact": principal}, {"principalRegex": f"\u0000{tag}\u0000"},
                {"metadataExact": {"v": "a\u0000b"}, "principalRegex": tag}]:
        pr, r = row(ctx, f"h2o search {list(flt)}", lambda: h2o_filter(ctx, flt), {200})
        probs += pr
        if r is not None and r.status_code == 200:
            got = [e for e in r.json()["events"] if e["name"] == f"events/{eid}"]
            if len(got) != 1 or got[0]["principal"] != principal or got[0]["metadata"].get("v") != "a\u0000b":
                probs.append(f"h2o search {flt!r}: the NUL event is not found byte-exact: {rh.short(r, 200)}")
    msg = f"pg\u0000{tag}\u0000msg"
    pr, r = row(ctx, "pangea log with NUL", lambda: post(ctx, "/pangea/v1/log", {"event": {"message": msg,
                                                                                          "actor": "a\u0000b"}}),
                {200}, stores=1)
    probs += pr
    found = _pangea_find(ctx, f'message:"{msg}"')
    if len(found) != 1 or found[0]["envelope"]["event"]["message"] != msg:
        probs.append(f"pangea query with NUL did not find the event byte-exact ({len(found)} found)")
    for e in found + _pangea_find(ctx, tag):
        if rh.envelope_hash(e["envelope"]) != e["hash"]:
            probs.append(f"hash of a NUL envelope does not recompute: {e['hash']}")
    done("B17 NUL", probs)


def test_b18_unicode_stored_as_sent(ctx):
    probs = []
    tag = uuid.uuid4().hex[:10]
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    values = {"nfc": f"{tag} {nfc}", "nfd": f"{tag} {nfd}", "rlo": f"{tag} \u202eevil\u202c",
              "zwj": f"{tag} \U0001F468\u200d\U0001F469\u200d\U0001F467", "emoji": f"{tag} \U0001F600\U0001F4A9",
              "combining": f"{tag} a" + "\u0301" * 10_000}
    for name, v in values.items():
        pr, r = row(ctx, f"pangea message {name}", lambda: post(ctx, "/pangea/v1/log",
                                                                  {"event": {"message": v, "tenant_id": W1},
                                                                   "verbose": True}), {200}, stores=1)
        probs += pr
        if r is not None and r.status_code == 200:
            env = r.json()["result"]["envelope"]
            if env["event"]["message"] != v:
                probs.append(f"pangea {name}: not stored as sent")
            if rh.envelope_hash(env) != r.json()["result"]["hash"]:
                probs.append(f"pangea {name}: hash does not recompute")
    # H2O strings are limited to 8 KiB, so the combining-mark case uses 4000 marks (8000 bytes).
    hvalues = dict(values, combining=f"{tag} a" + "\u0301" * 4000)
    for name, v in hvalues.items():
        eid = new_eid()
        ev = rh.h2o_event(W1, token=f"b18{name}{tag}", principal=v)
        probs += row(ctx, f"h2o principal {name}", lambda: post(ctx, f"/v1/events?eventId={eid}", ev), {200},
                     stores=1)[0]
        r = h2o_filter(ctx, {"principalExact": v})
        got = [e["principal"] for e in r.json().get("events", [])]
        if got != [v]:
            probs.append(f"h2o {name}: exact search should find exactly the value as sent (no normalisation), "
                         f"got {len(got)} match(es)")
    found = [e["envelope"]["event"]["message"] for e in _pangea_find(ctx, f'message:"{tag} {nfc}"')]
    if found != [values["nfc"]]:
        probs.append(f"pangea: searching the NFC form should not match the NFD event: {len(found)} found")
    done("B18 Unicode", probs)


# ----------------------------------------------------------------------------------------- B19, B20
def test_b19_field_key_and_depth_limits(ctx):
    probs = []
    ev = rh.h2o_event(W1, token="b19")
    # A 1 MiB field makes the single-create body exceed its 1 MiB limit: 413 or 400 are both clear.
    probs += row(ctx, "h2o 1 MiB field", lambda: post(ctx, f"/v1/events?eventId={new_eid()}",
                                                       dict(ev, principal="p" * MiB)), {400, 413})[0]
    probs += row(ctx, "h2o field 8 KiB + 1", lambda: post(ctx, f"/v1/events?eventId={new_eid()}",
                                                           dict(ev, principal="p" * 8193)), {400})[0]
    probs += row(ctx, "h2o field exactly 8 KiB", lambda: post(ctx, f"/v1/events?eventId={new_eid()}",
                                                               dict(ev, principal="p" * 8192)), {200}, stores=1)[0]
    probs += row(ctx, "h2o 257 metadata keys", lambda: post(ctx, f"/v1/events?eventId={new_eid()}",
                                                             dict(ev, metadata={f"k{i}": "v" for i in range(257)})),
                 {400})[0]
    many = {"requests": [{"eventId": new_eid(), "event": dict(ev, metadata={f"k{i}": "v" for i in range(100_000)})}]}
    data = json.dumps(many)
    pr, r = row(ctx, "h2o 100k metadata keys (batch item)", lambda: post(ctx, "/v1/events:batchCreate", data), {200},
                stores=0)
    took = r.elapsed.total_seconds() if r is not None else 0.0  # server time: request sent -> reply
    rh.fig_set(F, "b19_100k_keys_s", round(took, 3))
    probs += pr
    if r is not None and r.status_code == 200 and r.json()["failedRequests"].get("0", {}).get("code") != 3:
        probs.append(f"100k metadata keys: the item should fail with code 3: {rh.short(r)}")
    # Design: < 1 s. That budget is for a release build; the unoptimised debug build parses the
    # 1.4 MB body about 3x slower, so it gets 3 s. Either way the cost must stay linear: 100k keys
    # may take at most ~20x what 10k keys take.
    budget = 3.0 if "/debug/" in str(rh.trailkeep_bin()) else 1.0
    if took > budget:
        probs.append(f"100k metadata keys took {took:.2f} s to refuse (budget {budget} s for this build)")
    small = json.dumps({"requests": [{"eventId": new_eid(), "event": dict(ev, metadata={
        f"k{i}": "v" for i in range(10_000)})}]})
    r10 = post(ctx, "/v1/events:batchCreate", small)
    t10 = r10.elapsed.total_seconds()
    rh.fig_set(F, "b19_10k_keys_s", round(t10, 3))
    if took > 20 * max(t10, 0.01):
        probs.append(f"refusing 100k metadata keys took {took:.2f} s vs {t10:.2f} s for 10k: not linear")
    probs += row(ctx, "h2o 100k metadata keys (create)", lambda: post(ctx, f"/v1/events?eventId={new_eid()}",
                                                                       many["requests"][0]["event"]), {400, 413})[0]
    deep: object = "v"
    for _ in range(9):
        deep = {"d": deep}
    probs += row(ctx, "h2o metadata depth 9", lambda: post(ctx, f"/v1/events?eventId={new_eid()}",
                                                            dict(ev, metadata={"k": deep})), {400})[0]
    probs += row(ctx, "pangea message 32767 chars", lambda: post(ctx, "/pangea/v1/log",
                                                                 {"event": {"message": "m" * 32767}}), {400})[0]
    probs += row(ctx, "pangea actor 129 chars", lambda: post(ctx, "/pangea/v1/log",
                                                             {"event": {"message": "x", "actor": "a" * 129}}), {400})[0]
    # Pangea allows JSON objects in message/new/old (spec P14) and nesting up to 64 (§16): depth 9
    # is accepted there, depth 65 is not.
    probs += row(ctx, "pangea new depth 9", lambda: post(ctx, "/pangea/v1/log",
                                                         {"event": {"message": "x", "new": deep}}), {200}, stores=1)[0]
    deeper: object = 1
    for _ in range(70):
        deeper = {"d": deeper}
    probs += row(ctx, "pangea new depth 70", lambda: post(ctx, "/pangea/v1/log",
                                                          {"event": {"message": "x", "new": deeper}}), {400})[0]
    done("B19 limits", probs)


def test_b20_duplicate_keys_400(ctx):
    probs = []
    for label, path, valid in body_endpoints(ctx):
        k, v = next(iter(valid.items()))
        data = _prefix(valid, json.dumps(k).encode() + b":" + json.dumps(v).encode())
        p = path()
        pr, r = row(ctx, f"{label} / duplicate {k!r}", lambda: post(ctx, p, data), {400}, path=p)
        probs += pr
        if r is not None and r.status_code == 400 and "duplicate" not in r.text.lower():
            probs.append(f"{label}: the 400 should say 'duplicate key': {rh.short(r, 200)}")
    ev = json.dumps(rh.h2o_event(W1, token="b20"))
    nested = ev.replace('"metadata": {', '"metadata": {"a": "1", "a": "2", ')
    probs += row(ctx, "h2o create / nested duplicate", lambda: post(ctx, f"/v1/events?eventId={new_eid()}", nested),
                 {400})[0]
    probs += row(ctx, "pangea log / nested duplicate", lambda: post(ctx, "/pangea/v1/log",
                                                                    '{"event": {"message": "a", "message": "b"}}'),
                 {400})[0]
    probs += row(ctx, "pangea log / escaped duplicate", lambda: post(ctx, "/pangea/v1/log",
                                                                     '{"event": {"message": "a", "m\\u0065ssage": "b"}}'),
                 {400})[0]
    done("B20 duplicate keys", probs)


# ----------------------------------------------------------------------------------------- B21, B22
def test_b21_output_only_fields_never_stored_as_sent(ctx):
    """B21: H2O ignores unknown/output-only keys (spec §6, grpc-gateway DiscardUnknown), but never
    stores them as sent; Pangea rejects them (additionalProperties: false)."""
    probs = []
    eid = new_eid()
    ev = rh.h2o_event(W1, token="b21", name="events/forged", receiveTime="2000-01-01T00:00:00Z",
                      loginPrincipal="users/forged", workspace=W2)
    pr, r = row(ctx, "h2o create with output-only fields", lambda: post(ctx, f"/v1/events?eventId={eid}", ev), {200},
                stores=1)
    probs += pr
    if r is not None and r.status_code == 200:
        e = r.json()["event"]
        if e["name"] != f"events/{eid}" or e["receiveTime"].startswith("2000") or e["loginPrincipal"] or \
                e["workspace"] != W1:
            probs.append(f"h2o stored output-only fields as sent: {json.dumps(e)[:300]}")
    for label, body in [("event.received_at", {"event": {"message": "x", "received_at": "2000-01-01T00:00:00Z"}}),
                        ("top-level received_at", {"event": {"message": "x"}, "received_at": "2000-01-01T00:00:00Z"}),
                        ("top-level hash", {"event": {"message": "x"}, "hash": "00" * 32}),
                        ("event.hash", {"event": {"message": "x", "hash": "00"}}),
                        ("envelope", {"envelope": {"event": {"message": "x"}}})]:
        probs += row(ctx, f"pangea log {label}", lambda: post(ctx, "/pangea/v1/log", body), {400})[0]
    done("B21 output-only fields", probs)


def test_b22_workspace_outside_scope_403(ctx):
    probs = []
    k = ctx.ingest_w1
    for label, ev in [("resource in W2", rh.h2o_event(W2, token="b22")),
                      ("workspaceOverride W2", rh.h2o_event(W1, token="b22", workspaceOverride=W2)),
                      ("workspaceOverride empty", rh.h2o_event(W1, token="b22", workspaceOverride="")),
                      ("no workspace", rh.h2o_event("", token="b22"))]:
        probs += row(ctx, f"h2o create {label}", lambda: post(ctx, f"/v1/events?eventId={new_eid()}", ev, key=k),
                     {403})[0]
    for label, body in [("tenant_id W2", {"event": {"message": "x", "tenant_id": W2}}),
                        ("no tenant_id", {"event": {"message": "x"}})]:
        probs += row(ctx, f"pangea log {label}", lambda: post(ctx, "/pangea/v1/log", body, key=k), {403})[0]
    mixed = {"events": [{"event": {"message": "ok", "tenant_id": W1}}, {"event": {"message": "x", "tenant_id": W2}}]}
    probs += row(ctx, "pangea v2/log one W2 item", lambda: post(ctx, "/pangea/v2/log", mixed, key=k), {403})[0]
    done("B22 workspace scope", probs)


# ----------------------------------------------------------------------------------------- B23, B24
INJECTIONS = ["' OR 1=1--", '"; DROP TABLE events;--', "x' UNION SELECT envelope FROM events--", "%' OR '%'='",
              "*/ DROP TABLE events; /*", "\\'; SELECT 1; --"]


def test_b23_sql_injection_stored_and_matched_literally(ctx):
    probs = []
    ws = "workspaces/bi-sqli-" + uuid.uuid4().hex[:8]
    for i, s in enumerate(INJECTIONS):
        ev = rh.h2o_event(ws, token=f"b23{i}", principal=s, action=s, eventSource=s, sourceIpAddress=s,
                          userAgent=s, metadata={"token": f"b23{i}", "q": s}, requestParameters={s: s})
        probs += row(ctx, f"h2o create {s!r}", lambda: post(ctx, f"/v1/events?eventId={new_eid()}", ev), {200},
                     stores=1)[0]
        probs += row(ctx, f"pangea log {s!r}", lambda: post(ctx, "/pangea/v1/log", {"event": {
            "message": s, "actor": s[:128], "action": s[:32], "target": s, "source": s, "status": s[:32],
            "tenant_id": ws}}), {200}, stores=1)[0]
    for i, s in enumerate(INJECTIONS):
        # Expected matches: the H2O event, plus the Pangea one where it carries the same value
        # (its actor is the H2O principal; its action was cut to Pangea's 32 characters; it has no metadata).
        for flt, n in [({"principalExact": s}, 2), ({"actionExact": s}, 2 if len(s) <= 32 else 1),
                       ({"metadataExact": {"q": s}}, 1)]:
            flt["workspaceExact"] = ws
            pr, r = row(ctx, f"h2o search {list(flt)[0]} {s!r}", lambda: h2o_filter(ctx, flt), {200})
            probs += pr
            if r is not None and r.status_code == 200 and [e["principal"] for e in r.json()["events"]] != [s] * n:
                probs.append(f"h2o {list(flt)[0]} {s!r} should match exactly its own {n} event(s): "
                             f"{[e['principal'] for e in r.json()['events']][:4]}")
        q = 'actor:"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
        pr, r = row(ctx, f"pangea query {q!r}", lambda: post(ctx, "/pangea/v1/search",
                                                              {"query": q, "limit": 50,
                                                               "search_restriction": {"tenant_id": [ws]}}), {200})
        probs += pr
        if r is not None and r.status_code == 200:
            actors = [e["envelope"]["event"]["actor"] for e in r.json()["result"]["events"]]
            if not actors or any(s not in a for a in actors):
                probs.append(f"pangea query {q!r} should match literally: {actors[:3]}")
    for ob in ["seq; DROP TABLE events", "received_at desc", "' OR 1=1--", "envelope"]:
        probs += row(ctx, f"pangea order_by {ob!r}", lambda: post(ctx, "/pangea/v1/search",
                                                                   {"query": "", "order_by": ob}), {400})[0]
        probs += row(ctx, f"pangea export order_by {ob!r}", lambda: post(ctx, "/pangea/v1/export",
                                                                          {"format": "json", "order_by": ob}), {400})[0]
    done("B23 injection", probs)


def test_b24_markup_stored_verbatim_and_served_inert(ctx):
    probs = []
    xss = ["<script>alert(1)</script>", '<img src=x onerror="alert(1)">', "javascript:alert(1)", "{{7*7}}",
           "</textarea><svg/onload=alert(1)>"]
    eid = new_eid()
    ev = rh.h2o_event(W1, token="b24", principal=xss[0], metadata={"token": "b24", **{f"x{i}": v for i, v in
                                                                                       enumerate(xss)}})
    probs += row(ctx, "h2o create with markup", lambda: post(ctx, f"/v1/events?eventId={eid}", ev), {200},
                 stores=1)[0]
    probs += row(ctx, "pangea log with markup", lambda: post(ctx, "/pangea/v1/log", {"event": {
        "message": xss[1], "actor": xss[0], "target": xss[2], "tenant_id": W1}}), {200}, stores=1)[0]
    r = h2o_filter(ctx, {"principalExact": xss[0]})
    evs = [e for e in r.json()["events"] if e["name"] == f"events/{eid}"]
    if not evs or evs[0]["metadata"] != ev["metadata"] or evs[0]["principal"] != xss[0]:
        probs.append("h2o: markup not returned verbatim")
    for label, resp in [("h2o search", r), ("pangea search", post(ctx, "/pangea/v1/search", {"query": "alert"})),
                        ("UI export json", get(ctx, "/api/v1/export?format=json&query=alert"))]:
        ct = resp.headers.get("Content-Type", "")
        if not ct.startswith("application/json"):
            probs.append(f"{label}: Content-Type {ct!r}, expected application/json")
        if resp.headers.get("X-Content-Type-Options", "").lower() != "nosniff":
            probs.append(f"{label}: no 'X-Content-Type-Options: nosniff' on a response carrying event data")
    # U5: the UI's own responses.
    ui = requests.get(ctx.url + "/", headers={"Accept": "text/html"}, timeout=10)
    csp = ui.headers.get("Content-Security-Policy", "")
    for d in ("default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        if d not in csp:
            probs.append(f"UI: CSP lacks {d!r}: {csp!r}")
    if ui.headers.get("X-Content-Type-Options") != "nosniff" or ui.headers.get("Referrer-Policy") != "no-referrer":
        probs.append(f"UI: nosniff / Referrer-Policy missing: {dict(ui.headers)}")
    done("B24 markup", probs)


# ----------------------------------------------------------------------------------------- B25
def test_b25_csv_injection_neutralised(ctx):
    """B25: cells starting with = + - @ TAB CR NUL are prefixed with ' in CSV; RFC 4180 quoting;
    JSON exports stay raw."""
    probs = []
    tag = "csv" + uuid.uuid4().hex[:8]
    danger = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\tTAB", "\rCR", "\u0000NUL"]
    plain = [f'a,b "quoted" {tag}', f"line1\nline2 {tag}", f"cr\r\nlf {tag}"]
    sent = []
    for i, v in enumerate(danger + plain):
        msg = v if v in plain else f"{v} {tag}"
        sent.append(msg)
        assert post(ctx, "/pangea/v1/log", {"event": {"message": msg, "actor": msg[:128], "tenant_id": W1}}
                    ).status_code == 200
    r = get(ctx, f"/api/v1/export?format=csv&query={tag}")
    probs += [] if r.status_code == 200 else [f"UI export csv: {rh.short(r)}"]
    sources = [("UI export csv", r.content)]
    sid = rh.pangea_ok(post(ctx, "/pangea/v1/search", {"query": tag, "limit": 100}))["id"]
    d = post(ctx, "/pangea/v1/download_results", {"result_id": sid, "format": "csv"})
    url = d.json()["result"]["dest_url"]
    f = requests.get(url, timeout=30)
    sources.append(("pangea download csv", gzip.decompress(f.content)))
    for label, raw in sources:
        text = raw.decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header = rows[0]
        col = header.index("message")
        got = {row[col] for row in rows[1:] if len(row) > col}
        for msg in sent:
            safe = "'" + msg if msg[:1] in ("=", "+", "-", "@", "\t", "\r", "\u0000") else msg
            if safe not in got:
                probs.append(f"{label}: cell for {msg[:12]!r} should read {safe[:14]!r} (found none matching)")
    j = get(ctx, f"/api/v1/export?format=json&query={tag}")
    msgs = {e["envelope"]["event"]["message"] if "envelope" in e else e.get("message") for e in j.json()} \
        if j.status_code == 200 and isinstance(j.json(), list) else set()
    if not set(sent) <= msgs:
        probs.append(f"UI export json should carry the raw values: {sorted(msgs)[:3]}")
    done("B25 CSV injection", probs)


# ----------------------------------------------------------------------------------------- B26
def test_b26_log_injection_stays_one_record_per_line(ctx):
    probs = []
    mark = ctx.srv.log_size()
    fake = 'x\n{"timestamp":"2025-01-01T00:00:00Z","level":"ERROR","fields":{"message":"forged"}}\n\x1b[31mred\x1b[0m'
    probs += row(ctx, "pangea log with newline + ANSI", lambda: post(ctx, "/pangea/v1/log", {"event": {
        "message": fake, "actor": "a\nb", "tenant_id": W1}}), {200}, stores=1)[0]
    probs += row(ctx, "h2o create with newline + ANSI", lambda: post(ctx, f"/v1/events?eventId={new_eid()}",
                                                                      rh.h2o_event(W1, token="b26", principal=fake)),
                 {200}, stores=1)[0]
    probs += row(ctx, "pangea log unknown field with newline", lambda: post(ctx, "/pangea/v1/log", {
        "event": {"message": "x", "a\nb\x1b[0m": "c"}}), {400})[0]
    probs += row(ctx, "long line", lambda: post(ctx, "/pangea/v1/log", {"event": {"message": "L" * 32000}}), {200},
                 stores=1)[0]
    time.sleep(0.3)
    for line in ctx.srv.log_since(mark).splitlines():
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError:
            probs.append(f"server log line is not one JSON record: {line[:160]!r}")
            break
        if "\x1b" in line:
            probs.append(f"server log line carries a raw ANSI escape: {line[:160]!r}")
            break
    done("B26 log injection", probs)


# ----------------------------------------------------------------------------------------- B27, B28
def raw_http(ctx: Ctx, data: bytes, timeout: float = 10) -> Tuple[int, dict, bytes]:
    u = urlparse(ctx.url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            head, _, body = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            hdrs = {}
            for l in lines[1:]:
                if ":" in l:
                    k, v = l.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
            n = int(hdrs.get("content-length", "0") or 0)
            while len(body) < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        except socket.timeout:
            pass
    if not buf:
        return 0, {}, b""  # connection closed without an answer
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = 0
    return status, hdrs, body


class RawResp:
    """Enough of a requests.Response for row()."""

    def __init__(self, status: int, headers: dict, body: bytes, path: str):
        self.status_code = status
        self.headers = headers
        self.content = body
        self.text = body.decode("utf-8", "replace")
        self.request = type("R", (), {"url": "http://x" + path})()

    def json(self):
        return json.loads(self.content)


def raw_row(ctx, label, data: bytes, expect, path="/", shape=True):
    def call():
        return RawResp(*raw_http(ctx, data), path=path)
    probs, r = row(ctx, label, call, expect, path=path, shape=shape)
    return probs, r


def test_b27_huge_or_too_many_headers_431(ctx):
    probs = []
    body = json.dumps({"event": {"message": "b27"}}).encode()

    def req(extra: bytes) -> bytes:
        return (b"POST /pangea/v1/log HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    probs += raw_row(ctx, "64 KiB Authorization header", req(b"Authorization: Bearer " + b"A" * 65536 + b"\r\n"),
                     {431}, "/pangea/v1/log")[0]
    probs += raw_row(ctx, "1000 headers", req(b"".join(b"X-H%d: v\r\n" % i for i in range(1000))), {431},
                     "/pangea/v1/log")[0]
    probs += raw_row(ctx, "one 100 KiB header", req(b"X-Big: " + b"b" * 102400 + b"\r\n"), {431}, "/pangea/v1/log")[0]
    done("B27 header limits", probs)


def test_b28_wrong_method_and_ambiguous_framing(ctx):
    """B28: wrong method / TRACE → 405 with Allow; Content-Length plus Transfer-Encoding, or two
    Content-Lengths → 400 from the HTTP layer (no handler runs, nothing stored)."""
    probs = []
    for method, path in [("GET", "/v1/events"), ("PUT", "/v1/events:batchCreate"), ("DELETE", "/v1/events:search"),
                         ("TRACE", "/v1/events"), ("GET", "/pangea/v1/log"), ("PUT", "/pangea/v1/search"),
                         ("TRACE", "/pangea/v1/root"), ("POST", "/api/v1/whoami"), ("DELETE", "/api/v1/export"),
                         ("POST", "/version")]:
        pr, r = row(ctx, f"{method} {path}", lambda: requests.request(method, ctx.url + path,
                                                                      headers=rh.bearer(ctx.admin), timeout=10),
                    {405})
        probs += pr
        if r is not None and r.status_code == 405 and "Allow" not in r.headers:
            probs.append(f"{method} {path}: 405 without an Allow header")
    body = json.dumps({"event": {"message": "b28"}}).encode()
    auth = f"Authorization: Bearer {ctx.admin}\r\n".encode()
    smuggle = (b"POST /pangea/v1/log HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" +
               hex(len(body))[2:].encode() + b"\r\n" + body + b"\r\n0\r\n\r\n")
    probs += raw_row(ctx, "Content-Length + Transfer-Encoding", smuggle, {400}, "/pangea/v1/log", shape=False)[0]
    two = (b"POST /pangea/v1/log HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Type: application/json\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\nContent-Length: 5\r\n\r\n" + body)
    probs += raw_row(ctx, "two different Content-Lengths", two, {400}, "/pangea/v1/log", shape=False)[0]
    done("B28 method / framing", probs)


# ----------------------------------------------------------------------------------------- B29, B30
def test_b29_paging_and_time_values(ctx):
    probs = []
    for ps, code in [(-1, 400), ("abc", 400), (1.5, 400), ("1e9", 400), (10**9, 200), (2**63, 400)]:
        # pageSize above 1000 is clamped to 1000 (H2O spec §9.3); 1e9 as a float literal is not an int.
        body = '{"filter": {}, "pageSize": %s}' % (json.dumps(ps) if not (isinstance(ps, str) and ps == "1e9") else "1e9")
        probs += row(ctx, f"h2o pageSize {ps}", lambda: post(ctx, "/v1/events:search", body), {code})[0]
    for tok in ["garbage", "AAAA", "x" * 500, "\u0000"]:
        probs += row(ctx, f"h2o pageToken {tok[:10]!r}", lambda: post(ctx, "/v1/events:search",
                                                                       {"filter": {}, "pageToken": tok}), {400})[0]
    probs += row(ctx, "h2o start > end", lambda: h2o_filter(ctx, {"startEventTime": "2025-08-01T00:00:00Z",
                                                                   "endEventTime": "2025-07-01T00:00:00Z"}), {400})[0]
    for t in ["10000-01-01T00:00:00Z", "2025-07-02T23:59:60Z", "2025-07-02T10:00:00+25:00", "2025-07-02T10:00:00",
              "2025-13-01T00:00:00Z", "2025-02-30T00:00:00Z", "", "yesterday"]:
        probs += row(ctx, f"h2o eventTime {t!r}", lambda: post(ctx, f"/v1/events?eventId={new_eid()}",
                                                                rh.h2o_event(W1, token="b29", eventTime=t)), {400})[0]
        probs += row(ctx, f"h2o filter start {t!r}", lambda: h2o_filter(ctx, {"startEventTime": t}), {400})[0]
    for lim in [-1, 0, 1001, "abc", 1.5, 10**9]:
        probs += row(ctx, f"pangea search limit {lim}", lambda: post(ctx, "/pangea/v1/search", {"limit": lim}),
                     {400})[0]
        probs += row(ctx, f"pangea results limit {lim}", lambda: post(ctx, "/pangea/v1/results",
                                                                       {"id": ctx.search_id, "limit": lim}), {400})[0]
    for mr in [-1, 0, 10_001]:
        probs += row(ctx, f"pangea max_results {mr}", lambda: post(ctx, "/pangea/v1/search", {"max_results": mr}),
                     {400})[0]
    probs += row(ctx, "pangea results offset -1", lambda: post(ctx, "/pangea/v1/results",
                                                                {"id": ctx.search_id, "offset": -1}), {400})[0]
    probs += row(ctx, "pangea results offset beyond count (BadOffset)",
                 lambda: post(ctx, "/pangea/v1/results", {"id": ctx.search_id, "offset": 10**6}), {400})[0]
    probs += row(ctx, "pangea bad result id", lambda: post(ctx, "/pangea/v1/results", {"id": "pas_nope"}), {404})[0]
    probs += row(ctx, "pangea start > end", lambda: post(ctx, "/pangea/v1/search",
                                                         {"start": "2025-08-01T00:00:00Z", "end": "2025-07-01T00:00:00Z"}),
                 {400})[0]
    # Pangea timestamps follow the DateTimeRel pattern (spec P12), whose offset is [+-]\d{1,2}: it
    # accepts +25:00 syntactically, so the dialect may accept it; year 10000 and :60 never.
    for t, codes in [("10000-01-01T00:00:00Z", {400}), ("2025-07-02T23:59:60Z", {400}),
                     ("2025-07-02T10:00:00+25:00", {200, 400}), ("2025-02-30T00:00:00Z", {400}), ("7 days", {400})]:
        probs += row(ctx, f"pangea event timestamp {t!r}",
                     lambda: post(ctx, "/pangea/v1/log", {"event": {"message": "b29", "timestamp": t}}), codes,
                     stores=1)[0]
        probs += row(ctx, f"pangea search start {t!r}", lambda: post(ctx, "/pangea/v1/search", {"start": t}),
                     codes, stores=0)[0]
        probs += row(ctx, f"UI export start {t!r}", lambda: get(ctx, f"/api/v1/export?format=json&start={quote(t)}"),
                     codes, stores=0)[0]
    for size in ["0", "-1", "abc", "1.5", "99999999999999999999999"]:
        probs += row(ctx, f"UI roots/{size}", lambda: get(ctx, f"/api/v1/roots/{size}"), {400, 404})[0]
    probs += row(ctx, "UI export format bogus", lambda: get(ctx, "/api/v1/export?format=xlsx"), {400})[0]
    done("B29 paging / time values", probs)


def test_b30_query_too_complex(ctx):
    """B30: 1000 terms → 400 (Pangea spec §7.2: 64 terms); an over-long regex alternation → 400."""
    probs = []
    q = " ".join(f"t{i}" for i in range(1000))
    t0 = time.monotonic()
    probs += row(ctx, "pangea 1000 terms", lambda: post(ctx, "/pangea/v1/search", {"query": q}), {400})[0]
    probs += row(ctx, "pangea 65 terms", lambda: post(ctx, "/pangea/v1/search",
                                                      {"query": " ".join(f"t{i}" for i in range(65))}), {400})[0]
    probs += row(ctx, "pangea 64 terms", lambda: post(ctx, "/pangea/v1/search",
                                                      {"query": " ".join(f"t{i}" for i in range(64))}), {200})[0]
    probs += row(ctx, "pangea 33 nested parens", lambda: post(ctx, "/pangea/v1/search",
                                                              {"query": "(" * 33 + "x" + ")" * 33}), {400})[0]
    probs += row(ctx, "UI export 1000 terms", lambda: get(ctx, f"/api/v1/export?format=json&query={quote(q)}"),
                 {400})[0]
    probs += row(ctx, "h2o regex alternation of 1000", lambda: h2o_filter(ctx, {"actionRegex": "|".join(
        f"a{i}" for i in range(1000))}), {400})[0]
    took = time.monotonic() - t0
    rh.fig_set(F, "b30_s", round(took, 2))
    # A regex matching every row at maximum page size must answer promptly (no 5xx, no hang).
    t0 = time.monotonic()
    probs += row(ctx, "h2o match-all regex, pageSize 1000", lambda: post(ctx, "/v1/events:search", {
        "filter": {"actionRegex": ".*", "principalRegex": ".*", "metadataRegex": {"token": ".*"}}, "pageSize": 1000}),
                 {200, 503})[0]
    took = time.monotonic() - t0
    rh.fig_set(F, "b30_match_all_s", round(took, 2))
    if took > 6:
        probs.append(f"a match-all search at page size 1000 took {took:.1f} s (deadline 5 s + 1 s)")
    done("B30 query complexity", probs)


def test_server_survived_everything(ctx):
    """The same process answered every row; the trail verifies (checked again at teardown)."""
    assert ctx.srv.running and ctx.srv.pid == ctx.pid, ctx.srv.log_tail(20)
    five = rh.FIGURES[F].get("5xx_seen", 0)
    assert five == 0, f"{five} response(s) with a 5xx status during the bad-input run"
