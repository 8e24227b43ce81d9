#!/usr/bin/env python3
"""Ingest and search through both official clients against a running trailkeep.

    trailkeep serve &                      # prints "admin key: tk_..."
    pip install h2o-audit-trail==1.5.3 pangea-sdk==6.13.0
    python3 examples/ingest_and_search.py http://127.0.0.1:8080 tk_...
"""
import sys
import uuid
from datetime import datetime, timezone

import pangea.services.audit.audit as audit_module
from h2o_audit_trail.connection_config import ConnectionConfig
from h2o_audit_trail.event.client import EventClient
from h2o_audit_trail.event.event import Event
from h2o_audit_trail.event.event_type import EventType
from h2o_audit_trail.event.search import SearchEventsRequestFilter
from pangea.config import PangeaConfig
from pangea.services import Audit

audit_module.get_arweave_published_roots = lambda tree_name, tree_sizes: {}  # offline: roots from v1/root

url, key = sys.argv[1], sys.argv[2]
workspace = f"workspaces/{uuid.uuid4()}"

h2o = EventClient(ConnectionConfig(audit_trail_url=url, token_provider=lambda: key))
created = h2o.create_event(
    event_id=str(uuid.uuid4()),
    event=Event(event_time=datetime.now(timezone.utc), event_source="example", action="actions/example/CREATE",
                read_only=False, principal="users/alice", source_ip_address="203.0.113.7",
                resource=f"//example/{workspace}/things/1", metadata={"ticket": "42"}, type=EventType.TYPE_API),
)
print("H2O created:", created.name, "in", created.workspace)

pangea = Audit(key, config=PangeaConfig(base_url_template=f"{url}/pangea"))
logged = pangea.log(message="hello from pangea", actor="bob", tenant_id=workspace, verify=True)
print("Pangea logged:", logged.result.hash, "membership", logged.result.membership_verification)

found = h2o.search_events(filter_=SearchEventsRequestFilter(workspace_exact=workspace))
print("H2O search sees", len(found.events), "events:", [e.event_source for e in found.events])
result = pangea.search(query=f"tenant_id:{workspace}", verify_consistency=True)
for e in result.result.events:
    print("Pangea search:", e.envelope.event.get("message"), "membership", e.membership_verification,
          "consistency", e.consistency_verification)
