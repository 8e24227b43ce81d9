"""H2O Audit Trail dialect: the real `h2o-audit-trail==1.5.3` client against `trailkeep serve`.

Spec: shared/spec/h2o-api.md (section numbers below refer to it) and
shared/design/reliability.md §5 (authorisation matrix).

Every test works in a workspace of its own (`workspaces/<uuid4>`) or with unique values, so
all tests can share the session server (which also records self-audit events).
"""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pytest

import h2o_audit_trail
from h2o_audit_trail.connection_config import ConnectionConfig
from h2o_audit_trail.event.client import EventClient
from h2o_audit_trail.event.create import CreateEventRequest
from h2o_audit_trail.event.event import Event
from h2o_audit_trail.event.event_type import EventType
from h2o_audit_trail.event.search import SearchEventsRequestFilter
from h2o_audit_trail.exception import CustomApiException
from h2o_audit_trail.model.status import Status
from h2o_authn.error import TokenEndpointError

from conftest import key_id_of

UTC = timezone.utc
DEFAULT_START = datetime(2025, 7, 1, tzinfo=UTC)
PRINCIPAL = "users/a2b3b8a6-05c6-47d1-8ae1-774113404975"
METADATA_KEY_RE = "^[a-z]([a-z0-9_]{0,61}[a-z0-9])?$"
TYPE_MSG = "event.type must be one of TYPE_UNSPECIFIED, TYPE_API, TYPE_SYSTEM"
EVENT_TIME_MSG = "event.event_time must be an RFC 3339 timestamp with a UTC offset"
UUID_MSG = "event_id must be in UUIDv4 format"

# Every Event field the server must emit (§3.1, §11 "Server rule"); `status` only when stored.
EMITTED_FIELDS = (
    "eventTime", "eventSource", "action", "readOnly", "principal", "sourceIpAddress", "name",
    "receiveTime", "resource", "requestParameters", "loginPrincipal", "userAgent", "metadata",
    "workspace", "type",
)


# =============================================================================== helpers


def new_ws() -> str:
    return f"workspaces/{uuid.uuid4()}"


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(UTC)


def resource_in(ws: str, tail: str = "daiEngines/e1") -> str:
    return f"//engine-manager/{ws}/{tail}"


def make_event(ws: Optional[str] = None, **kw: Any) -> Event:
    """A client Event; resource inside `ws` unless `resource` is given."""
    fields: Dict[str, Any] = dict(
        event_time=now(),
        event_source="h2oai-conformance",
        action="actions/conformance/things/CREATE",
        read_only=False,
        status=Status(code=0),
        principal=PRINCIPAL,
        source_ip_address="8.8.8.8",
        resource=resource_in(ws) if ws else "//audittrail",
        request_parameters={},
        user_agent="conformance/1.0",
        metadata={},
        type=EventType.TYPE_API,
    )
    fields.update(kw)
    return Event(**fields)


def wire_event(ws: Optional[str] = None, **kw: Any) -> Dict[str, Any]:
    """An Event as JSON on the wire (the 12 keys the client sends, §5.1)."""
    ev: Dict[str, Any] = {
        "eventTime": now().isoformat(),
        "eventSource": "h2oai-conformance",
        "action": "actions/conformance/things/CREATE",
        "readOnly": False,
        "principal": PRINCIPAL,
        "sourceIpAddress": "8.8.8.8",
        "status": {"code": 0, "message": ""},
        "resource": resource_in(ws) if ws else "//audittrail",
        "requestParameters": {},
        "userAgent": "conformance/1.0",
        "metadata": {},
        "type": "TYPE_API",
    }
    ev.update(kw)
    return ev


def direct_client(server, key: Optional[str] = None) -> EventClient:
    k = key if key is not None else server.admin_key
    return EventClient(ConnectionConfig(audit_trail_url=server.url, token_provider=lambda: k))


def search_all(
    ec: EventClient,
    filter_: Optional[SearchEventsRequestFilter],
    page_size: int = 0,
    max_pages: int = 10_000,
):
    """Follow next_page_token to exhaustion. Returns (events, pages)."""
    pages = [ec.search_events(filter_=filter_, page_size=page_size)]
    while pages[-1].next_page_token:
        assert len(pages) < max_pages, "pagination does not terminate"
        pages.append(
            ec.search_events(filter_=filter_, page_size=page_size, page_token=pages[-1].next_page_token)
        )
    return [e for p in pages for e in p.events], pages


def names(events: Iterable[Event]) -> List[str]:
    return [e.name for e in events]


def api_error(fn, *args, **kwargs) -> CustomApiException:
    with pytest.raises(CustomApiException) as ei:
        fn(*args, **kwargs)
    return ei.value


def error_message(exc: CustomApiException) -> str:
    return json.loads(exc.body)["message"]


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name)

    def __repr__(self) -> str:
        return f"<{self.status} {self.reason} {self.body[:300]!r}>"


_ADMIN = object()


class Raw:
    """Plain HTTP/1.1 to the server with http.client (paths are sent verbatim)."""

    def __init__(self, server):
        self.server = server
        u = urllib.parse.urlsplit(server.url)
        self.host, self.port = u.hostname, u.port

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        key: Any = _ADMIN,
        headers: Optional[Dict[str, str]] = None,
        content_type: str = "application/json",
    ) -> RawResponse:
        if isinstance(body, (dict, list)):
            data: Optional[bytes] = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        hdrs = {"Accept": "application/json", "Accept-Encoding": "identity"}
        if data is not None:
            hdrs["Content-Type"] = content_type
        if key is _ADMIN:
            key = self.server.admin_key
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        hdrs.update(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return RawResponse(resp.status, resp.reason, resp.headers, resp.read())
        finally:
            conn.close()

    def post(self, path: str, body: Any = None, **kw) -> RawResponse:
        return self.request("POST", path, body, **kw)

    def get(self, path: str, **kw) -> RawResponse:
        return self.request("GET", path, None, **kw)

    def create(self, event: Any, event_id: Optional[str] = None, **kw) -> RawResponse:
        eid = new_id() if event_id is None else event_id
        return self.post("/v1/events?" + urllib.parse.urlencode({"eventId": eid}), event, **kw)

    def search(self, body: Dict[str, Any], **kw) -> RawResponse:
        return self.post("/v1/events:search", body, **kw)

    def form(self, path: str, fields: Dict[str, str]) -> RawResponse:
        return self.post(
            path,
            urllib.parse.urlencode(fields),
            key=None,
            content_type="application/x-www-form-urlencoded",
        )

    def send_bytes(self, head: str, body: bytes) -> RawResponse:
        """Send a request with a raw socket; tolerate the server closing early (e.g. 413)."""
        sock = socket.create_connection((self.host, self.port), timeout=60)
        try:
            try:
                sock.sendall(head.encode() + body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            return RawResponse(resp.status, resp.reason, resp.headers, resp.read())
        finally:
            sock.close()


def assert_error(r: RawResponse, status: int, code: int, message: Optional[str] = None, prefix: Optional[str] = None):
    """grpc-gateway error body (§8.1): JSON object with code, message, details (a list)."""
    assert r.status == status, r
    ctype = r.header("Content-Type") or ""
    assert ctype.split(";")[0].strip() == "application/json", (ctype, r)
    body = r.json
    assert isinstance(body, dict), r
    assert body.get("code") == code, r
    assert isinstance(body.get("details"), list), r
    if message is not None:
        assert body.get("message") == message, r
    if prefix is not None:
        assert isinstance(body.get("message"), str) and body["message"].startswith(prefix), r
    return body


# =============================================================================== fixtures


@pytest.fixture
def ws() -> str:
    return new_ws()


@pytest.fixture
def ec(server) -> EventClient:
    """Direct-mode client with the admin key."""
    return direct_client(server)


@pytest.fixture
def raw(server) -> Raw:
    return Raw(server)


# =============================================================================== §10.2 / §12.2 connection modes


def _connect(server, mode: str, key: str) -> EventClient:
    if mode == "direct":
        return EventClient(ConnectionConfig(audit_trail_url=server.url, token_provider=lambda: key))
    if mode == "login_custom":
        return h2o_audit_trail.login_custom(
            endpoint=server.url, refresh_token=key, issuer_url=server.url, client_id="test-client"
        ).event_client
    if mode == "login":
        return h2o_audit_trail.login(environment=server.url, platform_token=key).event_client
    if mode == "login_token_provider":
        return h2o_audit_trail.login(environment=server.url, token_provider=lambda: key).event_client
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["direct", "login_custom", "login", "login_token_provider"])
def test_connection_mode_create_batch_search(server, mode):
    key = server.create_key(["ingest", "search"])
    ec = _connect(server, mode, key)
    ws = new_ws()
    start = now()
    ev = make_event(
        event_time=now(), source_ip_address="10.0.0.1", resource=f"//engine-manager/{ws}/daiEngines/e1",
        metadata={"k_1": "v1"}, event_source="h2oai-test", action="actions/test/things/CREATE",
    )
    eid = new_id()
    created = ec.create_event(event_id=eid, event=ev)
    assert created.name == f"events/{eid}"
    assert created.workspace == ws
    assert created.event_time == ev.event_time
    assert created.source_ip_address == "private"

    r = ec.batch_create_events(
        [CreateEventRequest(event_id=new_id(), event=ev), CreateEventRequest(event_id="not-a-uuid", event=ev)]
    )
    assert len(r.events) == 1
    assert set(r.failed_requests) == {1}
    assert r.failed_requests[1].code == 3
    assert r.failed_requests[1].message == UUID_MSG

    f = SearchEventsRequestFilter(start_event_time=start, workspace_exact=ws)
    seen, pages = search_all(ec, f, page_size=1)
    assert len(pages) == 2, "pageSize+1 look-ahead: the second page must be the last one (§9.3)"
    assert len(seen) == 2 and len(set(names(seen))) == 2
    assert names(seen) == [r.events[0].name, created.name], "same eventTime: newest ingestion first"
    assert pages[-1].searched_until_time == start


def test_login_custom_with_wrong_key_raises_token_endpoint_error(server):
    with pytest.raises(TokenEndpointError) as ei:
        h2o_audit_trail.login_custom(
            endpoint=server.url, refresh_token="tk_nope_" + "x" * 32, issuer_url=server.url, client_id="c"
        )
    assert ei.value.error == "invalid_grant"
    assert str(ei.value) == "invalid_grant: invalid refresh token"


def test_login_custom_strips_trailing_slash(server):
    key = server.create_key(["search"])
    ec = h2o_audit_trail.login_custom(
        endpoint=server.url + "/", refresh_token=key, issuer_url=server.url + "/", client_id="c"
    ).event_client
    res = ec.search_events(filter_=SearchEventsRequestFilter(workspace_exact=new_ws()))
    assert res.events == [] and res.next_page_token == ""


# =============================================================================== create (§5.1, §6, §7)


def test_create_returns_stored_event(ec, ws):
    t = now()
    ev = make_event(
        ws,
        event_time=t,
        event_source="h2oai-enginemanager-server",
        action="actions/enginemanager/daiEngines/CREATE",
        read_only=True,
        status=Status(code=3, message="bad thing"),
        principal="services/appstore",
        source_ip_address="8.8.4.4",
        request_parameters={"p": "v", "q": "ü€"},
        user_agent="ua/1.0",
        metadata={"k_1": "v1", "a": "ümlaut"},
        type=EventType.TYPE_SYSTEM,
    )
    eid = new_id()
    created = ec.create_event(event_id=eid, event=ev)
    assert created.name == f"events/{eid}"
    assert created.event_time == t
    assert created.event_time.utcoffset() == timedelta(0)
    assert created.event_source == ev.event_source
    assert created.action == ev.action
    assert created.read_only is True
    assert created.status.code == 3 and created.status.message == "bad thing"
    assert created.principal == "services/appstore"
    assert created.source_ip_address == "8.8.4.4"
    assert created.resource == ev.resource
    assert created.request_parameters == {"p": "v", "q": "ü€"}
    assert created.user_agent == "ua/1.0"
    assert created.metadata == {"k_1": "v1", "a": "ümlaut"}
    assert created.workspace == ws
    assert created.login_principal == ""
    assert created.type == EventType.TYPE_SYSTEM
    assert created.receive_time is not None and created.receive_time.utcoffset() == timedelta(0)
    assert created.receive_time > created.event_time, "receive_time must be after an event created 'now'"

    # the same event comes back from search
    got, _ = search_all(ec, SearchEventsRequestFilter(start_event_time=t, workspace_exact=ws))
    assert got == [created]


@pytest.mark.parametrize("etype", list(EventType))
def test_create_type_round_trip(ec, ws, etype):
    created = ec.create_event(event_id=new_id(), event=make_event(ws, type=etype))
    assert created.type == etype


def test_create_raw_response_shape(raw, ws):
    eid = new_id()
    r = raw.create(wire_event(ws), event_id=eid)
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").split(";")[0] == "application/json"
    assert r.header("Content-Encoding") in (None, "identity"), "the client asks for identity encoding"
    body = r.json
    assert set(body) == {"event"}, body
    ev = body["event"]
    for k in EMITTED_FIELDS:
        assert k in ev and ev[k] is not None, f"{k} missing or null in {ev}"
    assert "workspaceOverride" not in ev
    assert ev["status"] == {"code": 0, "message": ""} or ev["status"] == {"code": 0}
    assert ev["name"] == f"events/{eid}"
    assert ev["eventTime"].endswith("Z") and ev["receiveTime"].endswith("Z")
    assert ev["type"] == "TYPE_API"
    assert ev["loginPrincipal"] == ""


def test_create_without_type_and_status_raw(raw, ec, ws):
    wev = wire_event(ws)
    del wev["type"], wev["status"]
    r = raw.create(wev)
    assert r.status == 200, r
    ev = r.json["event"]
    assert ev["type"] == "TYPE_UNSPECIFIED", "absent type = TYPE_UNSPECIFIED (§3.2)"
    assert "status" not in ev, "absent status is stored absent and omitted, never null (§7.3)"
    # and the client can read it back
    got, _ = search_all(ec, SearchEventsRequestFilter(workspace_exact=ws))
    assert names(got) == [ev["name"]]


def test_create_minimal_event_defaults_raw(raw, ws):
    """Optional fields absent -> emitted with empty defaults; readOnly absent = false."""
    wev = {
        "eventTime": now().isoformat(),
        "eventSource": "h2oai-conformance",
        "action": "actions/conformance/things/CREATE",
        "principal": PRINCIPAL,
        "sourceIpAddress": "8.8.8.8",
    }
    r = raw.create(wev)
    assert r.status == 200, r
    ev = r.json["event"]
    assert ev["readOnly"] is False
    assert ev["resource"] == "" and ev["workspace"] == "" and ev["userAgent"] == ""
    assert ev["requestParameters"] == {} and ev["metadata"] == {}
    assert ev["type"] == "TYPE_UNSPECIFIED"


def test_create_ignores_read_only_and_unknown_fields_raw(raw, ws):
    eid = new_id()
    wev = wire_event(
        ws,
        name="events/11111111-1111-4111-8111-111111111111",
        receiveTime="2030-01-01T00:00:00Z",
        loginPrincipal="someone",
        workspace="workspaces/forged",
        someUnknownKey={"x": 1},
    )
    r = raw.create(wev, event_id=eid)
    assert r.status == 200, r
    ev = r.json["event"]
    assert ev["name"] == f"events/{eid}"
    assert ev["receiveTime"] != "2030-01-01T00:00:00Z"
    assert ev["loginPrincipal"] == ""
    assert ev["workspace"] == ws
    assert "someUnknownKey" not in ev


def test_create_uppercase_event_id_is_stored_lowercase(ec, ws):
    eid = new_id()
    created = ec.create_event(event_id=eid.upper(), event=make_event(ws))
    assert created.name == f"events/{eid}"


@pytest.mark.parametrize(
    "resource,expected",
    [
        ("workspaces/{W}/daiEngine/e1", "workspaces/{W}"),
        ("//engine-manager/workspaces/{W}/daiEngines/e1", "workspaces/{W}"),
        ("//engine-manager/workspaces/{W}/daiEngines", "workspaces/{W}"),
        ("//engine-manager/workspaces/{W}", "workspaces/{W}"),
        ("//svc/projects/p1/workspaces/{W}/things/x", "workspaces/{W}"),
        ("//svc/workspaces/{W}/things/workspaces/other", "workspaces/{W}"),
        ("//audittrail", ""),
        ("workspaces/", ""),
        ("", ""),
    ],
)
def test_create_workspace_derived_from_resource(ec, resource, expected):
    w = str(uuid.uuid4())
    created = ec.create_event(
        event_id=new_id(), event=make_event(resource=resource.replace("{W}", w))
    )
    assert created.workspace == expected.replace("{W}", w)


def test_create_workspace_override_raw(raw, ec):
    ws_res, ws_over = new_ws(), new_ws()
    # override beats resource
    r = raw.create(wire_event(ws_res, workspaceOverride=ws_over))
    assert r.status == 200, r
    assert r.json["event"]["workspace"] == ws_over
    assert r.json["event"]["resource"] == resource_in(ws_res)
    assert "workspaceOverride" not in r.json["event"]
    # explicit "" beats resource too
    r = raw.create(wire_event(ws_res, workspaceOverride=""))
    assert r.status == 200, r
    assert r.json["event"]["workspace"] == ""
    # null = absent -> derived from resource
    r = raw.create(wire_event(ws_res, workspaceOverride=None))
    assert r.status == 200, r
    assert r.json["event"]["workspace"] == ws_res
    # the override is what search sees
    got, _ = search_all(ec, SearchEventsRequestFilter(workspace_exact=ws_over))
    assert len(got) == 1 and got[0].workspace == ws_over


@pytest.mark.parametrize("bad", ["foo", "workspaces/", "workspaces/a/b", "projects/p", "/workspaces/a"])
def test_create_bad_workspace_override_raw(raw, ws, bad):
    r = raw.create(wire_event(ws, workspaceOverride=bad))
    assert_error(r, 400, 3, "event.workspace_override must have the form workspaces/{workspace}")


PRIVATE_IPS = [
    "10.0.0.1", "10.255.255.255",
    "172.16.0.1", "172.31.255.254",
    "192.168.0.1", "192.168.255.255",
    "127.0.0.1", "127.255.0.9",
    "169.254.0.1", "169.254.255.254",
    "100.64.0.1", "100.127.255.254",
    "::1",
    "fc00::1", "fd12:3456:789a::1",
    "fe80::1", "febf::1",
    "::ffff:10.1.2.3", "::ffff:172.20.0.1", "::ffff:192.168.1.1", "::ffff:127.0.0.1",
    "::ffff:169.254.3.4", "::ffff:100.100.0.1",
]
PUBLIC_IPS = [
    "8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "192.169.0.1", "100.63.255.255",
    "100.128.0.1", "169.255.0.1", "11.0.0.1", "2001:4860:4860::8888", "fec0::1", "::ffff:8.8.8.8",
]


@pytest.mark.parametrize("ip", PRIVATE_IPS)
def test_create_private_ip_is_redacted(ec, ws, ip):
    created = ec.create_event(event_id=new_id(), event=make_event(ws, source_ip_address=ip))
    assert created.source_ip_address == "private"


@pytest.mark.parametrize("ip", PUBLIC_IPS + ["not-an-ip", "10.0.0.1.example.com", "private"])
def test_create_public_ip_or_non_ip_is_kept(ec, ws, ip):
    created = ec.create_event(event_id=new_id(), event=make_event(ws, source_ip_address=ip))
    assert created.source_ip_address == ip


@pytest.mark.parametrize(
    "event_time",
    [
        datetime(2025, 7, 2, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(2025, 7, 1, 0, 0, 0, tzinfo=UTC),
        datetime(2025, 7, 10, 12, 30, 0, 5, tzinfo=UTC),
        datetime(2025, 7, 2, 12, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2))),
        datetime(2025, 7, 2, 1, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    ],
)
def test_create_event_time_round_trip_microseconds(ec, ws, event_time):
    created = ec.create_event(event_id=new_id(), event=make_event(ws, event_time=event_time))
    assert created.event_time == event_time
    assert created.event_time.microsecond == event_time.astimezone(UTC).microsecond
    assert created.event_time.utcoffset() == timedelta(0), "emitted in UTC (§4.3)"
    got, _ = search_all(ec, SearchEventsRequestFilter(workspace_exact=ws, start_event_time=DEFAULT_START))
    assert [e.event_time for e in got] == [event_time]


@pytest.mark.parametrize(
    "sent,emitted",
    [
        ("2025-07-02T10:00:00.123456+00:00", "2025-07-02T10:00:00.123456Z"),
        ("2025-07-01T00:00:00+00:00", "2025-07-01T00:00:00Z"),
        ("2025-07-10T12:30:00.000005+00:00", "2025-07-10T12:30:00.000005Z"),
        ("2025-07-02T12:00:00+02:00", "2025-07-02T10:00:00Z"),
        ("2025-07-02T10:00:00.123456789Z", "2025-07-02T10:00:00.123456789Z"),
        ("2025-07-02T10:00:00.5Z", "2025-07-02T10:00:00.500Z"),
        ("2025-07-02T10:00:00.120Z", "2025-07-02T10:00:00.120Z"),
        ("2025-07-02t10:00:00z", "2025-07-02T10:00:00Z"),
    ],
)
def test_create_timestamp_wire_format_raw(raw, ws, sent, emitted):
    r = raw.create(wire_event(ws, eventTime=sent))
    assert r.status == 200, r
    assert r.json["event"]["eventTime"] == emitted
    s = raw.search({"filter": {"workspaceExact": ws}})
    assert s.status == 200, s
    assert [e["eventTime"] for e in s.json["events"]] == [emitted]


def test_create_idempotent_retry_returns_stored_event(ec, ws):
    eid = new_id()
    ev = make_event(ws, metadata={"a": "b"})
    first = ec.create_event(event_id=eid, event=ev)
    time.sleep(0.01)
    second = ec.create_event(event_id=eid, event=ev)
    assert second.name == first.name
    assert second.receive_time == first.receive_time, "a retry returns the stored event"
    assert second.event_time == first.event_time and second.metadata == first.metadata
    got, _ = search_all(ec, SearchEventsRequestFilter(workspace_exact=ws))
    assert names(got) == [first.name], "the retry must not add a second event"


def test_create_conflict_with_different_content(ec, ws):
    eid = new_id()
    ev = make_event(ws)
    ec.create_event(event_id=eid, event=ev)
    changed = make_event(ws, event_time=ev.event_time, action="actions/conformance/things/DELETE")
    e = api_error(ec.create_event, event_id=eid, event=changed)
    assert e.status == 409
    assert str(e) == f"409 (Conflict): event events/{eid} already exists"
    assert json.loads(e.body)["code"] == 6
    got, _ = search_all(ec, SearchEventsRequestFilter(workspace_exact=ws))
    assert len(got) == 1 and got[0].action == ev.action


@pytest.mark.parametrize(
    "event_id",
    [
        "x",
        "",
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        "b096430b-c7a8-17f2-a129-d9ae58cf454f",  # version 1
        "b096430b-c7a8-47f2-c129-d9ae58cf454f",  # variant c
        "b096430bc7a847f2a129d9ae58cf454f",  # no dashes
        "{b096430b-c7a8-47f2-a129-d9ae58cf454f}",
        "b096430b-c7a8-47f2-a129-d9ae58cf454f0",
        "../../etc/passwd",
    ],
)
def test_create_invalid_event_id(ec, ws, event_id):
    e = api_error(ec.create_event, event_id=event_id, event=make_event(ws))
    assert e.status == 400
    assert str(e) == "400 (Bad Request): event_id must be in UUIDv4 format"


def test_create_missing_event_id_raw(raw, ws):
    assert_error(raw.post("/v1/events", wire_event(ws)), 400, 3, UUID_MSG)


def test_create_naive_event_time_via_client(ec, ws):
    ev = make_event(ws, event_time=datetime(2025, 7, 2, 10, 0, 0))
    e = api_error(ec.create_event, event_id=new_id(), event=ev)
    assert str(e) == f"400 (Bad Request): {EVENT_TIME_MSG}"


# =============================================================================== batch (§5.2)


def test_batch_partial_failure_by_index(ec, ws):
    t = now()
    reqs = [
        CreateEventRequest(event_id=new_id(), event=make_event(ws, event_time=t)),
        CreateEventRequest(event_id=new_id(), event=make_event(ws, event_time=t, metadata={"Bad": "x"})),
        CreateEventRequest(event_id=new_id(), event=make_event(ws, event_time=t + timedelta(microseconds=1))),
        CreateEventRequest(event_id="invalid", event=make_event(ws, event_time=t)),
        CreateEventRequest(event_id=new_id(), event=make_event(ws, event_time=t, principal="")),
        CreateEventRequest(event_id=new_id(), event=make_event(ws, event_time=t - timedelta(seconds=1))),
    ]
    r = ec.batch_create_events(reqs)
    assert names(r.events) == [f"events/{reqs[i].event_id}" for i in (0, 2, 5)], "request order, failures removed"
    assert set(r.failed_requests) == {1, 3, 4}
    assert r.failed_requests[1].code == 3
    assert r.failed_requests[1].message == f'event.metadata key "Bad" must match {METADATA_KEY_RE}'
    assert r.failed_requests[3].code == 3 and r.failed_requests[3].message == UUID_MSG
    assert r.failed_requests[4].code == 3 and r.failed_requests[4].message == "event.principal is required"
    for e in r.events:
        assert e.workspace == ws
    got, _ = search_all(ec, SearchEventsRequestFilter(workspace_exact=ws))
    assert sorted(names(got)) == sorted(names(r.events))


def test_batch_vendor_example(ec, ws):
    """H2O's test: 3 requests, the third with eventId "invalid"."""
    ev = make_event(ws)
    r = ec.batch_create_events(
        [
            CreateEventRequest(event_id=new_id(), event=ev),
            CreateEventRequest(event_id=new_id(), event=ev),
            CreateEventRequest(event_id="invalid", event=ev),
        ]
    )
    assert len(r.events) == 2
    assert set(r.failed_requests) == {2}
    assert (r.failed_requests[2].code, r.failed_requests[2].message) == (3, UUID_MSG)


def test_batch_raw_shape(raw, ws):
    eid = new_id()
    r = raw.post(
        "/v1/events:batchCreate",
        {"requests": [{"eventId": eid, "event": wire_event(ws)}, {"eventId": "not-a-uuid", "event": wire_event(ws)}, {"eventId": new_id()}]},
    )
    assert r.status == 200, r
    body = r.json
    assert set(body) == {"events", "failedRequests"}
    assert [e["name"] for e in body["events"]] == [f"events/{eid}"]
    assert set(body["failedRequests"]) == {"1", "2"}
    assert body["failedRequests"]["1"]["code"] == 3
    assert body["failedRequests"]["1"]["message"] == UUID_MSG
    assert body["failedRequests"]["1"].get("details") == []
    assert body["failedRequests"]["2"]["code"] == 3
    assert body["failedRequests"]["2"]["message"] == "event is required"


def test_batch_in_batch_duplicate_id(ec, ws):
    eid = new_id()
    ev = make_event(ws)
    r = ec.batch_create_events(
        [
            CreateEventRequest(event_id=eid, event=ev),
            CreateEventRequest(event_id=new_id(), event=ev),
            CreateEventRequest(event_id=eid, event=ev),
        ]
    )
    assert len(r.events) == 2 and r.events[0].name == f"events/{eid}"
    assert set(r.failed_requests) == {2}
    assert r.failed_requests[2].code == 6
    got, _ = search_all(ec, SearchEventsRequestFilter(workspace_exact=ws))
    assert len(got) == 2


def test_batch_too_large(ec, ws):
    ev = make_event(ws)
    reqs = [CreateEventRequest(event_id=new_id(), event=ev) for _ in range(1001)]
    e = api_error(ec.batch_create_events, reqs)
    assert e.status == 400
    assert str(e) == "400 (Bad Request): requests: at most 1000 events can be created in a batch"
    assert json.loads(e.body)["code"] == 3
    res = ec.search_events(filter_=SearchEventsRequestFilter(workspace_exact=ws))
    assert res.events == [], "a rejected batch stores nothing"


def test_batch_empty(ec, raw):
    r = ec.batch_create_events([])
    assert r.events == [] and r.failed_requests == {}
    rr = raw.post("/v1/events:batchCreate", {"requests": []})
    assert rr.status == 200, rr
    assert rr.json == {"events": [], "failedRequests": {}}
    rr = raw.post("/v1/events:batchCreate", {})
    assert rr.status == 200, rr
    assert rr.json == {"events": [], "failedRequests": {}}


# =============================================================================== search filters (§9.1)


@dataclass
class Dataset:
    ws: str
    base: datetime
    ids: Dict[str, str]  # label -> name

    def n(self, *labels: str) -> List[str]:
        return [self.ids[l] for l in labels]


@pytest.fixture
def dataset(ec, raw) -> Dataset:
    """Five events A..E (E newest) in a fresh workspace, one second apart, one hour ago."""
    ws = new_ws()
    base = (now() - timedelta(hours=1)).replace(microsecond=250000)
    t = {l: base + timedelta(seconds=i + 1) for i, l in enumerate("ABCDE")}
    a = make_event(
        event_time=t["A"], event_source="src-alpha", action="actions/test/things/CREATE",
        read_only=False, status=Status(code=0), principal="users/alice", source_ip_address="8.8.8.8",
        resource=f"//svc/{ws}/things/a", metadata={"env": "prod", "team": "red"}, type=EventType.TYPE_API,
    )
    b = make_event(
        event_time=t["B"], event_source="src-beta", action="actions/test/things/READ",
        read_only=True, status=Status(code=3, message="invalid"), principal="users/bob",
        source_ip_address="10.0.0.5", resource=f"//svc/{ws}/things/b", metadata={"env": "dev"},
        type=EventType.TYPE_SYSTEM,
    )
    c = make_event(
        event_time=t["C"], event_source="src-alpha", action="actions/test/things/DELETE",
        read_only=False, status=Status(code=5), principal="services/appstore",
        source_ip_address="1.1.1.1", resource=f"//other/{ws}/rsrc3", metadata={},
        type=EventType.TYPE_UNSPECIFIED,
    )
    ids: Dict[str, str] = {}
    reqs = [CreateEventRequest(event_id=new_id(), event=e) for e in (a, b, c)]
    res = ec.batch_create_events(reqs)
    assert res.failed_requests == {}, res.failed_requests
    for l, e in zip("ABC", res.events):
        ids[l] = e.name
    # D: no status at all (only possible via raw HTTP: the client always sends one)
    d = wire_event(
        eventTime=t["D"].isoformat(), eventSource="src-gamma", action="actions/test/things/CREATE",
        readOnly=True, principal="users/alice", sourceIpAddress="9.9.9.9",
        resource=f"//svc/{ws}/things/d", metadata={"team": "blue", "env": "prod"}, type="TYPE_API",
    )
    del d["status"]
    r = raw.create(d)
    assert r.status == 200, r
    ids["D"] = r.json["event"]["name"]
    # E: empty resource, workspace only via workspaceOverride
    e = wire_event(
        eventTime=t["E"].isoformat(), eventSource="src-epsilon", action="actions/test/things/UPDATE",
        readOnly=False, principal="users/eve", sourceIpAddress="2001:db8::1", resource="",
        status={"code": 7, "message": ""}, metadata={"team": "green"}, type="TYPE_SYSTEM",
        workspaceOverride=ws,
    )
    r = raw.create(e)
    assert r.status == 200, r
    assert r.json["event"]["workspace"] == ws
    ids["E"] = r.json["event"]["name"]
    return Dataset(ws=ws, base=base, ids=ids)


FILTER_CASES = [
    # (id, filter kwargs, expected labels newest first)
    ("all", {}, "EDCBA"),
    ("event_source_exact", {"event_source_exact": "src-alpha"}, "CA"),
    ("event_source_exact_case", {"event_source_exact": "SRC-ALPHA"}, ""),
    ("event_source_regex_anchored", {"event_source_regex": "^src-(beta|gamma)$"}, "DB"),
    ("event_source_regex_partial", {"event_source_regex": "alp"}, "CA"),
    ("resource_exact", {"resource_exact": "//svc/{ws}/things/a"}, "A"),
    ("resource_regex", {"resource_regex": "^//svc/"}, "DBA"),
    ("resource_regex_alternation", {"resource_regex": "(things/a|rsrc3)"}, "CA"),
    ("resource_exact_empty", {"resource_exact": ""}, "E"),
    ("read_only_true", {"read_only": True}, "DB"),
    ("read_only_false", {"read_only": False}, "ECA"),
    ("status_code_regex_ok_or_invalid", {"status_code_regex": "^(0|3)$"}, "BA"),
    ("status_code_regex_no_status", {"status_code_regex": "^$"}, "D"),
    ("status_code_regex_partial", {"status_code_regex": "5"}, "C"),
    ("principal_exact", {"principal_exact": "users/alice"}, "DA"),
    ("principal_regex", {"principal_regex": "^services/"}, "C"),
    ("source_ip_address_exact_private", {"source_ip_address_exact": "private"}, "B"),
    ("source_ip_address_exact_public", {"source_ip_address_exact": "1.1.1.1"}, "C"),
    ("source_ip_address_regex", {"source_ip_address_regex": r"^\d+\.\d+\.\d+\.\d+$"}, "DCA"),
    ("metadata_exact_one", {"metadata_exact": {"env": "prod"}}, "DA"),
    ("metadata_exact_two", {"metadata_exact": {"env": "prod", "team": "red"}}, "A"),
    ("metadata_exact_missing_key", {"metadata_exact": {"nokey": "x"}}, ""),
    ("metadata_regex", {"metadata_regex": {"team": "^(red|blue)$"}}, "DA"),
    ("metadata_regex_partial", {"metadata_regex": {"env": "d"}}, "DBA"),
    ("metadata_regex_key_presence", {"metadata_regex": {"team": ""}}, "EDA"),
    ("metadata_regex_two", {"metadata_regex": {"team": "r", "env": "^p"}}, "A"),
    ("metadata_exact_and_regex", {"metadata_exact": {"env": "prod"}, "metadata_regex": {"team": "blue"}}, "D"),
    ("action_exact", {"action_exact": "actions/test/things/CREATE"}, "DA"),
    ("action_regex", {"action_regex": "(CREATE|DELETE)$"}, "DCA"),
    ("include_api", {"include_types": [EventType.TYPE_API]}, "DA"),
    ("include_api_system", {"include_types": [EventType.TYPE_API, EventType.TYPE_SYSTEM]}, "EDBA"),
    ("include_unspecified", {"include_types": [EventType.TYPE_UNSPECIFIED]}, "C"),
    ("exclude_api", {"exclude_types": [EventType.TYPE_API]}, "ECB"),
    ("exclude_all", {"exclude_types": list(EventType)}, ""),
    ("include_and_exclude", {"include_types": [EventType.TYPE_API, EventType.TYPE_SYSTEM], "exclude_types": [EventType.TYPE_SYSTEM]}, "DA"),
    ("exact_and_regex_both_hold", {"principal_exact": "users/alice", "principal_regex": "ali"}, "DA"),
    ("exact_and_regex_conflict", {"principal_exact": "users/alice", "principal_regex": "bob"}, ""),
    ("and_of_fields", {"event_source_exact": "src-alpha", "read_only": False, "status_code_regex": "^0$"}, "A"),
    ("start_inclusive_end_exclusive", {"start_event_time": "B", "end_event_time": "D"}, "CB"),
    ("start_only", {"start_event_time": "D"}, "ED"),
    ("end_only", {"end_event_time": "B"}, "A"),
]


@pytest.mark.parametrize("kwargs,expected", [c[1:] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES])
def test_search_filter(ec, dataset, kwargs, expected):
    times = {l: dataset.base + timedelta(seconds=i + 1) for i, l in enumerate("ABCDE")}
    kw: Dict[str, Any] = {}
    for k, v in kwargs.items():
        if k in ("start_event_time", "end_event_time"):
            v = times[v]
        elif isinstance(v, str):
            v = v.replace("{ws}", dataset.ws)
        kw[k] = v
    kw.setdefault("start_event_time", dataset.base)
    f = SearchEventsRequestFilter(workspace_exact=dataset.ws, **kw)
    got, pages = search_all(ec, f)
    assert names(got) == dataset.n(*expected)
    assert len(pages) == 1


def test_search_workspace_regex(ec, dataset):
    """workspaceRegex without workspaceExact (a global search, admin key)."""
    w = dataset.ws.split("/", 1)[1]
    f = SearchEventsRequestFilter(start_event_time=dataset.base, workspace_regex=w + "$")
    got, _ = search_all(ec, f)
    assert names(got) == dataset.n(*"EDCBA")
    f = SearchEventsRequestFilter(start_event_time=dataset.base, workspace_regex="^" + dataset.ws + "$", read_only=True)
    got, _ = search_all(ec, f)
    assert names(got) == dataset.n(*"DB")


def test_search_explicit_empty_workspace_exact(ec):
    """`workspaceExact: ""` selects events without a workspace (Q15), unlike an unset filter."""
    ws = new_ws()
    src = f"src-{uuid.uuid4().hex}"
    t = now()
    r = ec.batch_create_events(
        [
            CreateEventRequest(event_id=new_id(), event=make_event(None, event_source=src, event_time=t)),
            CreateEventRequest(event_id=new_id(), event=make_event(ws, event_source=src, event_time=t)),
        ]
    )
    assert r.failed_requests == {}
    no_ws, in_ws = r.events
    assert no_ws.workspace == "" and in_ws.workspace == ws
    got, _ = search_all(ec, SearchEventsRequestFilter(event_source_exact=src, workspace_exact=""))
    assert names(got) == [no_ws.name]
    got, _ = search_all(ec, SearchEventsRequestFilter(event_source_exact=src))
    assert names(got) == [in_ws.name, no_ws.name]


def test_search_null_filter_keys_raw(raw, ws):
    """`null` is treated exactly like an absent key (§5.3)."""
    r = raw.create(wire_event(ws))
    assert r.status == 200, r
    flt = {k: None for k in (
        "startEventTime", "endEventTime", "eventSourceExact", "eventSourceRegex", "resourceExact",
        "resourceRegex", "readOnly", "statusCodeRegex", "principalExact", "principalRegex",
        "sourceIpAddressExact", "sourceIpAddressRegex", "workspaceRegex", "actionExact", "actionRegex")}
    flt.update({"metadataExact": {}, "metadataRegex": {}, "includeTypes": [], "excludeTypes": [], "workspaceExact": ws})
    s = raw.search({"filter": flt, "pageSize": 0, "pageToken": ""})
    assert s.status == 200, s
    body = s.json
    assert set(body) >= {"events", "nextPageToken", "searchedUntilTime"}
    assert [e["name"] for e in body["events"]] == [r.json["event"]["name"]]
    assert body["nextPageToken"] == ""
    assert body["searchedUntilTime"] == "2025-07-01T00:00:00Z"
    # a body without filter / with an empty object works too
    s = raw.search({})
    assert s.status == 200, s
    assert set(s.json) >= {"events", "nextPageToken", "searchedUntilTime"}


def test_search_no_filter_default_request(ec):
    """`search_events()` with no arguments sends `{"filter": {}, "pageSize": 0, "pageToken": ""}`."""
    res = ec.search_events()
    assert isinstance(res.events, list) and len(res.events) <= 50
    assert isinstance(res.next_page_token, str)


# =============================================================================== ordering and paging (§9.3)


def test_search_newest_first_vendor(ec, ws):
    """H2O's test: create e1, e2, e3 -> [e3, e2, e1]."""
    start = now()
    created = []
    for _ in range(3):
        created.append(ec.create_event(event_id=new_id(), event=make_event(ws, event_time=now())))
        time.sleep(0.002)
    got, _ = search_all(ec, SearchEventsRequestFilter(start_event_time=start, workspace_exact=ws))
    assert names(got) == names(reversed(created))


def test_search_order_is_event_time_not_ingestion(ec, ws):
    base = now() - timedelta(minutes=5)
    offsets = [3, 1, 4, 0, 2]
    created = {o: ec.create_event(event_id=new_id(), event=make_event(ws, event_time=base + timedelta(seconds=o))) for o in offsets}
    got, _ = search_all(ec, SearchEventsRequestFilter(start_event_time=base, workspace_exact=ws), page_size=2)
    assert names(got) == [created[o].name for o in (4, 3, 2, 1, 0)]


def test_search_tie_break_by_ingestion_sequence(ec, ws):
    t = now() - timedelta(minutes=1)
    created = [ec.create_event(event_id=new_id(), event=make_event(ws, event_time=t)) for _ in range(5)]
    rts = [c.receive_time for c in created]
    assert rts == sorted(rts), "receiveTime is never earlier than the previous commit (§7.2)"
    f = SearchEventsRequestFilter(start_event_time=t, workspace_exact=ws)
    got, _ = search_all(ec, f)
    assert names(got) == names(reversed(created))
    # the same order across page boundaries
    got, pages = search_all(ec, f, page_size=2)
    assert names(got) == names(reversed(created))
    assert [len(p.events) for p in pages] == [2, 2, 1]


def test_search_default_page_size_is_50(ec, ws):
    t = now() - timedelta(minutes=1)
    r = ec.batch_create_events(
        [CreateEventRequest(event_id=new_id(), event=make_event(ws, event_time=t + timedelta(milliseconds=i))) for i in range(51)]
    )
    assert r.failed_requests == {} and len(r.events) == 51
    f = SearchEventsRequestFilter(start_event_time=t, workspace_exact=ws)
    p1 = ec.search_events(filter_=f)
    assert len(p1.events) == 50
    assert p1.next_page_token != ""
    p2 = ec.search_events(filter_=f, page_token=p1.next_page_token)
    assert len(p2.events) == 1 and p2.next_page_token == ""
    assert set(names(p1.events + p2.events)) == set(names(r.events))


@pytest.mark.slow
def test_batch_of_1000_and_page_size_coerced_to_1000(ec, ws):
    t = now() - timedelta(minutes=10)
    ev_reqs = [
        CreateEventRequest(event_id=new_id(), event=make_event(ws, event_time=t + timedelta(milliseconds=i), metadata={"i": str(i)}))
        for i in range(1000)
    ]
    r = ec.batch_create_events(ev_reqs)
    assert r.failed_requests == {} and len(r.events) == 1000
    assert names(r.events) == [f"events/{q.event_id}" for q in ev_reqs]
    ec.create_event(event_id=new_id(), event=make_event(ws, event_time=t - timedelta(seconds=1)))
    f = SearchEventsRequestFilter(start_event_time=t - timedelta(seconds=2), workspace_exact=ws)
    for ps in (1001, 5000, 2**31 - 1):
        p1 = ec.search_events(filter_=f, page_size=ps)
        assert len(p1.events) == 1000, ps
        assert p1.next_page_token != ""
        p2 = ec.search_events(filter_=f, page_size=ps, page_token=p1.next_page_token)
        assert len(p2.events) == 1 and p2.next_page_token == ""
    p = ec.search_events(filter_=f, page_size=1000)
    assert len(p.events) == 1000 and p.next_page_token != ""


def test_search_negative_page_size(ec, ws):
    e = api_error(ec.search_events, filter_=SearchEventsRequestFilter(workspace_exact=ws), page_size=-1)
    assert e.status == 400
    assert str(e) == "400 (Bad Request): page_size must not be negative"


def test_search_exact_page_boundary(ec, ws):
    """pageSize+1 look-ahead: 4 events with pageSize 2 -> exactly 2 pages, the last with no token."""
    t = now() - timedelta(minutes=1)
    r = ec.batch_create_events(
        [CreateEventRequest(event_id=new_id(), event=make_event(ws, event_time=t + timedelta(seconds=i))) for i in range(4)]
    )
    assert r.failed_requests == {}
    got, pages = search_all(ec, SearchEventsRequestFilter(start_event_time=t, workspace_exact=ws), page_size=2)
    assert [len(p.events) for p in pages] == [2, 2]
    assert pages[-1].next_page_token == ""


@pytest.mark.slow
def test_search_pagination_during_concurrent_inserts(server, ec, ws):
    """Page to exhaustion while another thread inserts into the same workspace: no duplicates,
    no gaps (every event that existed before the first page is seen exactly once)."""
    t0 = (now() - timedelta(minutes=10)).replace(microsecond=0)
    pre_reqs = [
        CreateEventRequest(
            event_id=new_id(),
            event=make_event(ws, event_time=t0 + timedelta(seconds=(i // 3) * 0.4)),  # triples share a time
        )
        for i in range(150)
    ]
    r = ec.batch_create_events(pre_reqs)
    assert r.failed_requests == {}
    pre = set(names(r.events))
    assert len(pre) == 150

    inserted: List[str] = []
    stop = threading.Event()
    errors: List[BaseException] = []

    def inserter():
        wec = direct_client(server)
        rnd = random.Random(1234)
        try:
            for _ in range(400):
                if stop.is_set():
                    return
                if rnd.random() < 0.7:
                    et = t0 + timedelta(microseconds=rnd.randrange(0, 60 * 1_000_000))
                else:
                    et = now()
                eid = new_id()
                inserted.append(f"events/{eid}")
                wec.create_event(event_id=eid, event=make_event(ws, event_time=et))
                time.sleep(0.003)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    th = threading.Thread(target=inserter, daemon=True)
    th.start()
    try:
        time.sleep(0.05)
        f = SearchEventsRequestFilter(start_event_time=t0, workspace_exact=ws)
        seen: List[Event] = []
        page = ec.search_events(filter_=f, page_size=7)
        first_page_done = now()
        inserted_before_paging = len(inserted)
        pages = 1
        while True:
            seen += page.events
            if not page.next_page_token:
                break
            time.sleep(0.01)
            page = ec.search_events(filter_=f, page_size=7, page_token=page.next_page_token)
            pages += 1
            assert pages < 1000
    finally:
        stop.set()
        th.join(timeout=60)
    assert not errors, errors
    assert len(inserted) > inserted_before_paging, "the inserter made no progress while paging"
    seen_names = names(seen)
    dupes = {n for n in seen_names if seen_names.count(n) > 1}
    assert not dupes, f"duplicates across pages: {sorted(dupes)[:5]}"
    missing = pre - set(seen_names)
    assert not missing, f"{len(missing)} pre-existing events never returned (gaps)"
    assert set(seen_names) <= pre | set(inserted)
    times = [e.event_time for e in seen]
    assert times == sorted(times, reverse=True), "newest-first order across pages"
    assert all(e.event_time < first_page_done for e in seen), "end is frozen at the first page"
    assert all(e.workspace == ws for e in seen)
    assert page.searched_until_time == t0


def test_searched_until_time_rules(ec, ws):
    start = (now() - timedelta(minutes=5)).replace(microsecond=123456)
    times = [start + timedelta(seconds=s, microseconds=7) for s in (10, 20, 30)]
    r = ec.batch_create_events([CreateEventRequest(event_id=new_id(), event=make_event(ws, event_time=t)) for t in times])
    assert r.failed_requests == {}
    f = SearchEventsRequestFilter(start_event_time=start, workspace_exact=ws)
    _, pages = search_all(ec, f, page_size=2)
    assert len(pages) == 2
    assert pages[0].searched_until_time == times[1], "non-final page: eventTime of its oldest event"
    assert pages[1].searched_until_time == start, "last page: the effective start, exactly"
    # single last page
    one = ec.search_events(filter_=f)
    assert one.next_page_token == "" and one.searched_until_time == start
    # no match at all
    empty = ec.search_events(filter_=SearchEventsRequestFilter(start_event_time=start, workspace_exact=new_ws()))
    assert empty.events == [] and empty.next_page_token == "" and empty.searched_until_time == start
    # default start
    dflt = ec.search_events(filter_=SearchEventsRequestFilter(workspace_exact=ws))
    assert dflt.searched_until_time == DEFAULT_START
    assert dflt.searched_until_time.utcoffset() == timedelta(0)


def _two_page_token(ec, ws) -> Tuple[SearchEventsRequestFilter, str]:
    t = now() - timedelta(minutes=1)
    r = ec.batch_create_events(
        [CreateEventRequest(event_id=new_id(), event=make_event(ws, event_time=t + timedelta(seconds=i))) for i in range(3)]
    )
    assert r.failed_requests == {}
    f = SearchEventsRequestFilter(start_event_time=t, workspace_exact=ws)
    p = ec.search_events(filter_=f, page_size=1)
    assert p.next_page_token
    return f, p.next_page_token


def test_search_forged_page_token(ec, ws):
    f, tok = _two_page_token(ec, ws)
    for forged in ("garbage", "AAAA", "tok123", "x" * 200, tok + "A", tok[: len(tok) // 2]):
        e = api_error(ec.search_events, filter_=f, page_size=1, page_token=forged)
        assert str(e) == "400 (Bad Request): invalid page_token", forged


def test_search_tampered_page_token(ec, ws):
    f, tok = _two_page_token(ec, ws)
    for pos in (len(tok) // 3, len(tok) // 2, 2 * len(tok) // 3):
        c = tok[pos]
        repl = "A" if c != "A" else "B"
        tampered = tok[:pos] + repl + tok[pos + 1:]
        e = api_error(ec.search_events, filter_=f, page_size=1, page_token=tampered)
        assert str(e) == "400 (Bad Request): invalid page_token", pos
    # the genuine token still works
    assert len(ec.search_events(filter_=f, page_size=1, page_token=tok).events) == 1


def test_search_page_token_with_different_filter(ec, ws):
    f, tok = _two_page_token(ec, ws)
    other = SearchEventsRequestFilter(start_event_time=f.start_event_time, workspace_exact=ws, read_only=False)
    e = api_error(ec.search_events, filter_=other, page_size=1, page_token=tok)
    assert e.status == 400
    assert str(e) == "400 (Bad Request): page_token does not match the search request"
    e = api_error(ec.search_events, filter_=SearchEventsRequestFilter(workspace_exact=new_ws()), page_size=1, page_token=tok)
    assert str(e) == "400 (Bad Request): page_token does not match the search request"


@pytest.mark.parametrize("pattern", ["(", "[", "a)", r"(a)\1", r"\k<n>", "(?x)a", "a{1001}", r"\C", "*a"])
def test_search_invalid_regex(ec, ws, pattern):
    e = api_error(ec.search_events, filter_=SearchEventsRequestFilter(workspace_exact=ws, principal_regex=pattern))
    assert e.status == 400
    assert json.loads(e.body)["code"] == 3
    assert error_message(e).startswith("filter.principal_regex is not a valid RE2 pattern:"), str(e)


@pytest.mark.parametrize(
    "field,wire",
    [("event_source_regex", "event_source"), ("resource_regex", "resource"), ("action_regex", "action"),
     ("workspace_regex", "workspace"), ("source_ip_address_regex", "source_ip_address"),
     ("status_code_regex", "status_code")],
)
def test_search_invalid_regex_field_names(ec, ws, field, wire):
    kw = {field: "("}
    if field != "workspace_regex":
        kw["workspace_exact"] = ws
    e = api_error(ec.search_events, filter_=SearchEventsRequestFilter(**kw))
    assert error_message(e).startswith(f"filter.{wire}_regex is not a valid RE2 pattern:"), str(e)


def test_search_invalid_metadata_regex(ec, ws):
    e = api_error(ec.search_events, filter_=SearchEventsRequestFilter(workspace_exact=ws, metadata_regex={"k": "("}))
    assert e.status == 400
    assert error_message(e).startswith('filter.metadata_regex["k"] is not a valid RE2 pattern:'), str(e)


def test_search_start_not_before_end(ec, ws):
    t = now() - timedelta(minutes=1)
    for end in (t, t - timedelta(seconds=1)):
        e = api_error(ec.search_events, filter_=SearchEventsRequestFilter(workspace_exact=ws, start_event_time=t, end_event_time=end))
        assert str(e) == "400 (Bad Request): filter.start_event_time must be before filter.end_event_time"


def test_search_malformed_filter_values_raw(raw, ws):
    r = raw.search({"filter": {"workspaceExact": ws, "startEventTime": "2025-07-01"}})
    assert_error(r, 400, 3, "filter.start_event_time must be an RFC 3339 timestamp with a UTC offset")
    r = raw.search({"filter": {"workspaceExact": ws, "endEventTime": "2025-07-01T00:00:00"}})
    assert_error(r, 400, 3, "filter.end_event_time must be an RFC 3339 timestamp with a UTC offset")
    r = raw.search({"filter": {"workspaceExact": ws, "includeTypes": ["TYPE_FOO"]}})
    assert_error(r, 400, 3, "filter.include_types must contain only TYPE_UNSPECIFIED, TYPE_API, TYPE_SYSTEM")
    r = raw.search({"filter": {"workspaceExact": ws, "excludeTypes": [1]}})
    assert r.status == 400 and r.json["code"] == 3, r
    r = raw.search({"filter": {"workspaceExact": ws}, "pageSize": -5})
    assert_error(r, 400, 3, "page_size must not be negative")


def test_search_self_audit_event(ec, ws):
    """One self-audit event per first-page search (§9.4), none for later pages."""
    marker = f"selfaudit-{uuid.uuid4().hex}"
    t = now() - timedelta(seconds=30)
    r = ec.batch_create_events(
        [CreateEventRequest(event_id=new_id(), event=make_event(ws, principal=marker, event_time=t + timedelta(seconds=i))) for i in range(2)]
    )
    assert r.failed_requests == {}
    t0 = now()
    f = SearchEventsRequestFilter(start_event_time=t, principal_exact=marker, workspace_exact=ws)
    _, pages = search_all(ec, f, page_size=1)
    assert len(pages) == 2

    def audit_events():
        af = SearchEventsRequestFilter(
            start_event_time=t0 - timedelta(seconds=5),
            event_source_exact="h2oai-audittrail-server",
            action_exact="actions/audittrail/events/SEARCH",
        )
        evs, _ = search_all(ec, af, page_size=1000)
        return [e for e in evs if marker in e.request_parameters.get("filter", "")]

    deadline = time.monotonic() + 5
    found = audit_events()
    while not found and time.monotonic() < deadline:
        time.sleep(0.25)
        found = audit_events()
    time.sleep(0.5)
    found = audit_events()
    assert len(found) == 1, f"expected exactly one self-audit event, got {len(found)}"
    a = found[0]
    assert a.resource == "//audittrail" and a.workspace == ""
    assert a.read_only is True and a.type == EventType.TYPE_API
    assert a.status.code == 0
    assert a.source_ip_address == "private", "peer 127.0.0.1 is redacted"
    assert a.user_agent.startswith("OpenAPI-Generator/")


# =============================================================================== errors (§8)


def test_error_unauthenticated_via_client(server, ws):
    ec = direct_client(server, key="tk_nope_" + "x" * 40)
    e = api_error(ec.search_events, filter_=SearchEventsRequestFilter(workspace_exact=ws))
    assert e.status == 401
    assert str(e) == "401 (Unauthorized): unauthenticated"
    e = api_error(ec.create_event, event_id=new_id(), event=make_event(ws))
    assert str(e) == "401 (Unauthorized): unauthenticated"


def test_error_invalid_json_raw(raw, ws):
    for body in ('{"eventTime": ', "not json", "", "[]", '"str"', "123", "\ufeff{}"):
        r = raw.create(body)
        assert_error(r, 400, 3, prefix="invalid request body: ")
        assert len(r.json["message"]) <= len("invalid request body: ") + 200
    r = raw.post("/v1/events:search", "{")
    assert_error(r, 400, 3, prefix="invalid request body: ")
    r = raw.post("/v1/events:batchCreate", '{"requests": [')
    assert_error(r, 400, 3, prefix="invalid request body: ")


def test_error_wrong_json_type_raw(raw, ws):
    for field, value in (("readOnly", "false"), ("readOnly", 0), ("metadata", {"a": 1}), ("requestParameters", []),
                         ("eventSource", 5), ("principal", ["users/x"])):
        r = raw.create(wire_event(ws, **{field: value}))
        assert_error(r, 400, 3, prefix="invalid request body: ")


def test_error_duplicate_json_keys_raw(raw, ws):
    ev = json.dumps(wire_event(ws))
    body = ev[:-1] + ', "action": "actions/x/y/DELETE"}'
    assert_error(raw.create(body), 400, 3, 'invalid request body: duplicate key "action"')
    body = ev.replace('"metadata": {}', '"metadata": {"k": "1", "k": "2"}')
    assert_error(raw.create(body), 400, 3, 'invalid request body: duplicate key "k"')
    body = '{"filter": {"workspaceExact": "%s", "workspaceExact": "workspaces/x"}}' % ws
    assert_error(raw.search(body), 400, 3, 'invalid request body: duplicate key "workspaceExact"')


@pytest.mark.parametrize(
    "value",
    ["2025-07-02T10:00:00", "2025-07-02", "2025-07-02 10:00:00Z", "2025-07-02T10:00:60Z",
     "2025-07-02T23:59:60Z", "10000-01-01T00:00:00Z", "2025-13-01T00:00:00Z", "2025-07-02T10:00:00+25:00", ""],
)
def test_error_bad_event_time_raw(raw, ws, value):
    r = raw.create(wire_event(ws, eventTime=value))
    assert_error(r, 400, 3, EVENT_TIME_MSG)


def test_error_missing_event_time_raw(raw, ws):
    wev = wire_event(ws)
    del wev["eventTime"]
    assert_error(raw.create(wev), 400, 3, "event.event_time is required")
    assert_error(raw.create(wire_event(ws, eventTime=None)), 400, 3, "event.event_time is required")


@pytest.mark.parametrize(
    "field,wire", [("eventSource", "event_source"), ("action", "action"), ("principal", "principal"),
                   ("sourceIpAddress", "source_ip_address")],
)
def test_error_empty_required_string(raw, ws, field, wire):
    assert_error(raw.create(wire_event(ws, **{field: ""})), 400, 3, f"event.{wire} is required")
    wev = wire_event(ws)
    del wev[field]
    assert_error(raw.create(wev), 400, 3, f"event.{wire} is required")


@pytest.mark.parametrize("key", ["Bad", "1abc", "a_", "_a", "a-b", "", "a" * 64, "ü"])
def test_error_bad_metadata_key(raw, ec, ws, key):
    r = raw.create(wire_event(ws, metadata={key: "v"}))
    assert_error(r, 400, 3, f'event.metadata key "{key}" must match {METADATA_KEY_RE}')
    e = api_error(ec.create_event, event_id=new_id(), event=make_event(ws, metadata={key: "v"}))
    assert str(e) == f'400 (Bad Request): event.metadata key "{key}" must match {METADATA_KEY_RE}'


def test_error_bad_metadata_key_truncated_to_64_chars(raw, ws):
    key = "A" * 100
    r = raw.create(wire_event(ws, metadata={key: "v"}))
    assert_error(r, 400, 3, f'event.metadata key "{"A" * 64}" must match {METADATA_KEY_RE}')


@pytest.mark.parametrize("key", ["a", "a1", "a_b", "abc_123", "a" * 63, "z" + "_" * 61 + "9"])
def test_good_metadata_keys(ec, ws, key):
    created = ec.create_event(event_id=new_id(), event=make_event(ws, metadata={key: "v"}))
    assert created.metadata == {key: "v"}


@pytest.mark.parametrize("value", [1, 2, 0, "TYPE_FOO", "type_api", ""])
def test_error_bad_type(raw, ws, value):
    assert_error(raw.create(wire_event(ws, type=value)), 400, 3, TYPE_MSG)


def test_string_size_limit(raw, ws):
    ok = raw.create(wire_event(ws, principal="p" * 8192))
    assert ok.status == 200, ok
    r = raw.create(wire_event(ws, principal="p" * 8193))
    assert_error(r, 400, 3, prefix="event.principal exceeds the maximum size of")


def test_error_body_too_large(raw, server, ws):
    big = json.dumps(wire_event(ws, requestParameters={f"p{i}": "x" * 8000 for i in range(300)})).encode()
    assert len(big) > 2 * 1024 * 1024
    head = (
        f"POST /v1/events?eventId={new_id()} HTTP/1.1\r\nHost: {raw.host}:{raw.port}\r\n"
        f"Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: {len(big)}\r\n"
        f"Authorization: Bearer {server.admin_key}\r\nConnection: close\r\n\r\n"
    )
    r = raw.send_bytes(head, big)
    assert_error(r, 413, 3, "request body too large")
    # the server is fine afterwards
    assert raw.create(wire_event(ws)).status == 200


@pytest.mark.parametrize(
    "method,path",
    [("GET", "/v1/events:search"), ("GET", "/v1/events:batchCreate"), ("GET", "/v1/events"),
     ("PUT", "/v1/events"), ("DELETE", "/v1/events:search"), ("POST", "/version")],
)
def test_error_wrong_method(raw, method, path):
    r = raw.request(method, path, {} if method in ("PUT", "POST") else None)
    assert_error(r, 405, 12, "Method Not Allowed")


@pytest.mark.parametrize(
    "method,path",
    [("GET", "/nope"), ("POST", "/v1/nope"), ("POST", "/v1/events:frobnicate"), ("GET", "/v2/events"),
     ("POST", "/v1/events/123")],
)
def test_error_unknown_path(raw, method, path):
    r = raw.request(method, path, {} if method == "POST" else None)
    assert_error(r, 404, 5, "Not Found")


@pytest.mark.parametrize("path", ["/v1/events%3Asearch", "/v1/events%3asearch", "//v1/events:search", "//v1//events:search"])
def test_search_path_variants(raw, ws, path):
    c = raw.create(wire_event(ws))
    assert c.status == 200, c
    r = raw.post(path, {"filter": {"workspaceExact": ws}})
    assert r.status == 200, r
    assert [e["name"] for e in r.json["events"]] == [c.json["event"]["name"]]


@pytest.mark.parametrize("path", ["/v1/events%3AbatchCreate", "/v1/events%3abatchCreate", "//v1/events:batchCreate"])
def test_batch_path_variants(raw, ws, path):
    eid = new_id()
    r = raw.post(path, {"requests": [{"eventId": eid, "event": wire_event(ws)}]})
    assert r.status == 200, r
    assert [e["name"] for e in r.json["events"]] == [f"events/{eid}"]


def test_create_double_slash_path(raw, ws):
    eid = new_id()
    r = raw.post(f"//v1/events?eventId={eid}", wire_event(ws))
    assert r.status == 200, r
    assert r.json["event"]["name"] == f"events/{eid}"


def test_version_endpoint(raw):
    r = raw.get("/version", key=None)
    assert r.status == 200, r
    assert isinstance(r.json.get("version"), str) and r.json["version"]


# =============================================================================== OIDC and discovery (§10.4, §10.5)


def test_openid_configuration(raw, server):
    r = raw.get("/.well-known/openid-configuration", key=None)
    assert r.status == 200, r
    doc = r.json
    assert doc["issuer"] == server.url
    assert doc["token_endpoint"] == server.url + "/oauth/token"
    assert "refresh_token" in doc["grant_types_supported"]
    assert set(doc["token_endpoint_auth_methods_supported"]) >= {"client_secret_post", "none"}
    assert doc["response_types_supported"] == []


def test_token_endpoint_success(raw, server):
    key = server.create_key(["search"])
    r = raw.form("/oauth/token", {"grant_type": "refresh_token", "client_id": "c", "refresh_token": key})
    assert r.status == 200, r
    body = r.json
    assert isinstance(body["access_token"], str) and body["access_token"]
    assert body["access_token"] != key, "the access token is minted, not the key echoed"
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], (int, float)) and not isinstance(body["expires_in"], bool)
    assert body["expires_in"] > 5
    assert "refresh_token" not in body
    assert "no-store" in (r.header("Cache-Control") or "")
    # client_secret is accepted and ignored
    r = raw.form("/oauth/token", {"grant_type": "refresh_token", "client_id": "c", "refresh_token": key, "client_secret": "sec ret&x"})
    assert r.status == 200, r


def test_token_endpoint_errors(raw, server):
    r = raw.form("/oauth/token", {"grant_type": "refresh_token", "client_id": "c", "refresh_token": "tk_nope_" + "y" * 40})
    assert r.status == 400, r
    assert r.json["error"] == "invalid_grant"
    assert r.json.get("error_description") == "invalid refresh token"
    r = raw.form("/oauth/token", {"grant_type": "password", "client_id": "c", "refresh_token": server.admin_key})
    assert r.status == 400, r
    assert r.json["error"] == "unsupported_grant_type"
    assert r.json.get("error_description") == "only refresh_token is supported"
    r = raw.form("/oauth/token", {"grant_type": "refresh_token", "client_id": "c"})
    assert r.status == 400, r
    assert r.json["error"] == "invalid_request"
    assert r.json.get("error_description") == "refresh_token is required"
    r = raw.post("/oauth/token", {"grant_type": "refresh_token"}, key=None)
    assert r.status == 400, r
    assert r.json["error"] == "invalid_request"


def test_access_token_works_until_key_revoked(raw, server, ws):
    key = server.create_key(["search", "ingest"])
    r = raw.form("/oauth/token", {"grant_type": "refresh_token", "client_id": "c", "refresh_token": key})
    assert r.status == 200, r
    tok = r.json["access_token"]
    c = raw.create(wire_event(ws), key=tok)
    assert c.status == 200, c
    s = raw.search({"filter": {"workspaceExact": ws}}, key=tok)
    assert s.status == 200, s
    assert [e["name"] for e in s.json["events"]] == [c.json["event"]["name"]]
    # the same through the client, with the token as a static bearer
    ec = direct_client(server, key=tok)
    assert len(ec.search_events(filter_=SearchEventsRequestFilter(workspace_exact=ws)).events) == 1

    server.revoke_key(key)
    for k in (tok, key):
        r = raw.search({"filter": {"workspaceExact": ws}}, key=k)
        assert_error(r, 401, 16, "unauthenticated")
    e = api_error(ec.search_events, filter_=SearchEventsRequestFilter(workspace_exact=ws))
    assert str(e) == "401 (Unauthorized): unauthenticated"
    r = raw.form("/oauth/token", {"grant_type": "refresh_token", "client_id": "c", "refresh_token": key})
    assert r.status == 400 and r.json["error"] == "invalid_grant", r


def test_discovery_endpoints(raw, server):
    base = "/.ai.h2o.cloud.discovery/v1/"
    r = raw.get(base + "environment", key=None)
    assert r.status == 200, r
    env = r.json["environment"]
    assert env["h2oCloudEnvironment"] == server.url
    assert env["issuerUrl"] == server.url
    assert isinstance(env["h2oCloudPlatformOauth2Scope"], str)
    assert "nextPageToken" not in r.json

    r = raw.get(base + "services", key=None)
    assert r.status == 200, r
    assert "nextPageToken" not in r.json
    svc = [s for s in r.json["services"] if s["name"] == "services/audit-trail"]
    assert len(svc) == 1
    assert svc[0]["displayName"]
    assert svc[0]["uri"] == server.url and not svc[0]["uri"].endswith("/")
    assert all(s["name"].startswith("services/") for s in r.json["services"])

    r = raw.get(base + "clients", key=None)
    assert r.status == 200, r
    assert "nextPageToken" not in r.json
    plat = [c for c in r.json["clients"] if c["name"] == "clients/platform"]
    assert len(plat) == 1 and plat[0]["oauth2ClientId"] and plat[0]["displayName"]

    for path, k in (("links", "links"), ("components", "components")):
        r = raw.get(base + path, key=None)
        assert r.status in (200, 404), r
        if r.status == 200:
            assert isinstance(r.json[k], list)
            assert "nextPageToken" not in r.json

    # with a page token, still no nextPageToken (the client loops while it is not None)
    r = raw.get(base + "services?pageToken=abc", key=None)
    assert r.status in (200, 400), r
    if r.status == 200:
        assert "nextPageToken" not in r.json


# =============================================================================== authorization (§10.3, reliability §5)


def test_ingest_only_key_cannot_search(server, ws):
    key = server.create_key(["ingest"])
    ec = direct_client(server, key)
    ec.create_event(event_id=new_id(), event=make_event(ws))
    for f in (None, SearchEventsRequestFilter(workspace_exact=ws), SearchEventsRequestFilter(workspace_regex=".")):
        e = api_error(ec.search_events, filter_=f)
        assert e.status == 403
        assert str(e) == "403 (Forbidden): permission denied"
        assert json.loads(e.body)["code"] == 7


def test_search_only_key_cannot_create(server, ws):
    key = server.create_key(["search"])
    ec = direct_client(server, key)
    e = api_error(ec.create_event, event_id=new_id(), event=make_event(ws))
    assert e.status == 403
    assert str(e) == "403 (Forbidden): permission denied"
    e = api_error(ec.batch_create_events, [CreateEventRequest(event_id=new_id(), event=make_event(ws))])
    assert str(e) == "403 (Forbidden): permission denied"
    e = api_error(ec.batch_create_events, [])
    assert str(e) == "403 (Forbidden): permission denied"
    assert ec.search_events(filter_=SearchEventsRequestFilter(workspace_exact=ws)).events == []


def test_workspace_limited_search_key(server, ec):
    w1, w2 = new_ws(), new_ws()
    start = now()
    r = ec.batch_create_events(
        [CreateEventRequest(event_id=new_id(), event=make_event(w, event_time=now())) for w in (w1, w1, w2, None)]
    )
    assert r.failed_requests == {}
    in_w1 = set(names(r.events[:2]))
    key = server.create_key(["search"], workspaces=[w1])
    sec = direct_client(server, key)

    # its own workspace
    got, _ = search_all(sec, SearchEventsRequestFilter(start_event_time=start, workspace_exact=w1))
    assert set(names(got)) == in_w1
    # another workspace: 200 and zero events, as for a nonexistent workspace
    res = sec.search_events(filter_=SearchEventsRequestFilter(start_event_time=start, workspace_exact=w2))
    assert res.events == [] and res.next_page_token == ""
    # no workspace filter: silently restricted to W1
    got, _ = search_all(sec, SearchEventsRequestFilter(start_event_time=start), page_size=1000)
    assert set(names(got)) == in_w1 and all(e.workspace == w1 for e in got)
    got, _ = search_all(sec, None, page_size=1000)
    assert all(e.workspace == w1 for e in got) and in_w1 <= set(names(got))
    # a regex over all workspaces: still only W1
    got, _ = search_all(sec, SearchEventsRequestFilter(start_event_time=start, workspace_regex="."), page_size=1000)
    assert set(names(got)) == in_w1
    # explicit "" (no workspace): nothing
    res = sec.search_events(filter_=SearchEventsRequestFilter(start_event_time=start, workspace_exact=""))
    assert res.events == []
    # and it cannot ingest
    e = api_error(sec.create_event, event_id=new_id(), event=make_event(w1))
    assert str(e) == "403 (Forbidden): permission denied"


def test_workspace_limited_ingest_key(server, ec, raw):
    w1, w2 = new_ws(), new_ws()
    key = server.create_key(["ingest"], workspaces=[w1])
    iec = direct_client(server, key)
    ok = iec.create_event(event_id=new_id(), event=make_event(w1))
    assert ok.workspace == w1
    e = api_error(iec.create_event, event_id=new_id(), event=make_event(w2))
    assert e.status == 403 and str(e) == "403 (Forbidden): permission denied"
    # via workspaceOverride
    r = raw.create(wire_event(w1, workspaceOverride=w2), key=key)
    assert_error(r, 403, 7, "permission denied")
    # batch: the W2 item fails with code 7, the others succeed
    reqs = [
        CreateEventRequest(event_id=new_id(), event=make_event(w1)),
        CreateEventRequest(event_id=new_id(), event=make_event(w2)),
        CreateEventRequest(event_id=new_id(), event=make_event(w1)),
    ]
    b = iec.batch_create_events(reqs)
    assert names(b.events) == [f"events/{reqs[0].event_id}", f"events/{reqs[2].event_id}"]
    assert set(b.failed_requests) == {1}
    assert b.failed_requests[1].code == 7
    assert b.failed_requests[1].message == "permission denied"
    # nothing reached W2
    assert ec.search_events(filter_=SearchEventsRequestFilter(workspace_exact=w2)).events == []
    got, _ = search_all(ec, SearchEventsRequestFilter(workspace_exact=w1))
    assert len(got) == 3


def test_admin_key_can_do_everything(server, ws):
    key = server.create_key(["admin"])
    ec = direct_client(server, key)
    c = ec.create_event(event_id=new_id(), event=make_event(ws))
    assert names(ec.search_events(filter_=SearchEventsRequestFilter(workspace_exact=ws)).events) == [c.name]


def test_revoked_key_is_rejected_immediately(server, ws):
    key = server.create_key(["ingest", "search"])
    ec = direct_client(server, key)
    ec.create_event(event_id=new_id(), event=make_event(ws))
    assert len(ec.search_events(filter_=SearchEventsRequestFilter(workspace_exact=ws)).events) == 1
    server.revoke_key(key)
    e = api_error(ec.search_events, filter_=SearchEventsRequestFilter(workspace_exact=ws))
    assert e.status == 401 and str(e) == "401 (Unauthorized): unauthenticated"
    e = api_error(ec.create_event, event_id=new_id(), event=make_event(ws))
    assert str(e) == "401 (Unauthorized): unauthenticated"


def test_revoke_by_id(server, ws):
    key = server.create_key(["search"])
    ec = direct_client(server, key)
    ec.search_events(filter_=SearchEventsRequestFilter(workspace_exact=ws))
    server.revoke_key(key_id_of(key))
    e = api_error(ec.search_events, filter_=SearchEventsRequestFilter(workspace_exact=ws))
    assert str(e) == "401 (Unauthorized): unauthenticated"


@pytest.mark.parametrize(
    "auth",
    [None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer tk_nope_abcdef", "Bearer not-a-key", "Token {admin}",
     "Bearer {admin}x", "Bearer x{admin}"],
)
def test_unauthenticated_raw(raw, server, ws, auth):
    headers = {}
    if auth is not None:
        headers["Authorization"] = auth.replace("{admin}", server.admin_key)
    r = raw.request("POST", "/v1/events:search", {"filter": {"workspaceExact": ws}}, key=None, headers=headers)
    assert_error(r, 401, 16, "unauthenticated")
    assert (r.header("WWW-Authenticate") or "").split(" ")[0] == "Bearer", r.headers


def test_bearer_scheme_is_case_insensitive(raw, server, ws):
    for scheme in ("bearer", "BEARER", "Bearer"):
        r = raw.request("POST", "/v1/events:search", {"filter": {"workspaceExact": ws}}, key=None,
                        headers={"Authorization": f"{scheme} {server.admin_key}"})
        assert r.status == 200, (scheme, r)


def test_no_key_unauthenticated_on_every_api_route(raw, ws):
    for path, body in (
        (f"/v1/events?eventId={new_id()}", wire_event(ws)),
        ("/v1/events:batchCreate", {"requests": []}),
        ("/v1/events:search", {}),
    ):
        r = raw.post(path, body, key=None)
        assert_error(r, 401, 16, "unauthenticated")
        assert (r.header("WWW-Authenticate") or "").startswith("Bearer")


# =============================================================================== CLI and restart


def test_keys_list_shows_id_but_not_secret(server):
    key = server.create_key(["search"], name=f"listme-{uuid.uuid4().hex[:8]}")
    kid = key_id_of(key)
    out = server.list_keys()
    assert key not in out, "the secret is shown once only"
    first_cols = [l.split()[0] for l in out.splitlines() if l.split()]
    assert kid in first_cols, out


def test_restart_keeps_events_and_keys(fresh_server):
    srv = fresh_server()
    assert srv.admin_key
    ws = new_ws()
    ec = direct_client(srv)
    c = ec.create_event(event_id=new_id(), event=make_event(ws))
    key = srv.create_key(["search"])
    assert srv.stop() == 0
    srv2 = fresh_server(data_dir=srv.data_dir)
    assert srv2.admin_key is None, "the admin key is printed on first start only"
    got, _ = search_all(direct_client(srv2, srv.admin_key), SearchEventsRequestFilter(workspace_exact=ws))
    assert names(got) == [c.name] and got[0] == c
    got, _ = search_all(direct_client(srv2, key), SearchEventsRequestFilter(workspace_exact=ws))
    assert names(got) == [c.name]
