#!/usr/bin/env python3
"""The official H2O Audit Trail client against trailkeep, in its three connection modes.

    pip install h2o-audit-trail==1.5.3
    python3 examples/h2o_client.py http://127.0.0.1:8080 tk_...

KEY is a trailkeep API key with the `ingest` and `search` scopes (the admin key printed at
first start has both). The program connects three ways, writes one event through each
connection (and a batch through the first), then searches them back, page by page.
Exit status 0 when every step worked.
"""

import sys
import uuid
from datetime import datetime, timezone

import h2o_audit_trail
from h2o_audit_trail.connection_config import ConnectionConfig
from h2o_audit_trail.event.client import EventClient
from h2o_audit_trail.event.create import CreateEventRequest
from h2o_audit_trail.event.event import Event
from h2o_audit_trail.event.event_type import EventType
from h2o_audit_trail.event.search import SearchEventsRequestFilter
from h2o_audit_trail.model.status import Status


def connect(url: str, key: str) -> dict:
    """The three ways to get an EventClient; each one talks to trailkeep only."""
    return {
        # 1. Direct: the client sends the key as a bearer token on every request.
        "token provider": EventClient(ConnectionConfig(audit_trail_url=url, token_provider=lambda: key)),
        # 2. OIDC: trailkeep is its own issuer. The key is the refresh token; the client trades
        #    it at URL/oauth/token for one-hour access tokens bound to the key.
        "login_custom": h2o_audit_trail.login_custom(
            endpoint=url, refresh_token=key, issuer_url=url, client_id="trailkeep"
        ).event_client,
        # 3. H2O AI Cloud style: the environment URL is trailkeep, which answers the discovery
        #    endpoints (/.ai.h2o.cloud.discovery/...) and takes the key as the platform token.
        "login": h2o_audit_trail.login(environment=url, platform_token=key).event_client,
    }


def event(workspace: str, action: str) -> Event:
    """One H2O event. The resource names the workspace the event belongs to."""
    return Event(
        event_time=datetime.now(timezone.utc),
        event_source="example-service",
        action=action,
        read_only=False,
        status=Status(code=0),  # google.rpc code 0 = OK; required by the 1.5.x client
        principal="users/alice",
        source_ip_address="203.0.113.7",  # private addresses are stored as "private"
        resource=f"//example-service/{workspace}/things/t1",
        metadata={"ticket": "42"},
        type=EventType.TYPE_API,
    )


def main(url: str, key: str) -> int:
    workspace = f"workspaces/{uuid.uuid4()}"  # a workspace of our own, so the search is exact
    clients = connect(url.rstrip("/"), key)

    for mode, client in clients.items():
        created = client.create_event(event_id=str(uuid.uuid4()), event=event(workspace, "actions/things/CREATE"))
        print(f"{mode}: created {created.name} in {created.workspace} (received {created.receive_time})")

    direct = clients["token provider"]
    batch = direct.batch_create_events(
        [CreateEventRequest(event_id=str(uuid.uuid4()), event=event(workspace, "actions/things/UPDATE")) for _ in range(3)]
    )
    print(f"batch: created {len(batch.events)} events, {len(batch.failed_requests)} failed")
    if batch.failed_requests:
        return 1

    # Search every event of the workspace, two per page, following next_page_token.
    flt = SearchEventsRequestFilter(workspace_exact=workspace)
    found, token = [], ""
    while True:
        page = clients["login"].search_events(filter_=flt, page_size=2, page_token=token)
        found.extend(page.events)
        token = page.next_page_token
        if not token:
            break
    for e in found:
        print(f"search: {e.event_time.isoformat()} {e.action} by {e.principal} -> {e.name}")

    # Regex filters use RE2 syntax, as in H2O Audit Trail.
    updates = direct.search_events(filter_=SearchEventsRequestFilter(workspace_exact=workspace, action_regex="UPDATE$"))
    print(f"search: {len(updates.events)} events match actionRegex 'UPDATE$'")

    expected = len(clients) + 3
    if len(found) != expected or len(updates.events) != 3:
        print(f"expected {expected} events and 3 updates, found {len(found)} and {len(updates.events)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} URL KEY")
    sys.exit(main(sys.argv[1], sys.argv[2]))
