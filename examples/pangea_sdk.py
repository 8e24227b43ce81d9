#!/usr/bin/env python3
"""The official Pangea SDK (Secure Audit Log) against trailkeep, with every proof checked.

    pip install pangea-sdk==6.13.0
    python3 examples/pangea_sdk.py http://127.0.0.1:8080 tk_...

KEY is a trailkeep API key with the `ingest` and `search` scopes. The program logs one event
and checks its membership proof, logs a bulk of signed events, searches them with consistency
verification, pages through the results and downloads them as a file. Exit status 0 when
every step worked and every proof verified.
"""

import gzip
import json
import sys
import tempfile
import uuid
from pathlib import Path

# Pangea publishes its roots on Arweave and the SDK fetches them there before checking
# consistency. trailkeep publishes nowhere else: make the lookup return nothing, and the SDK
# then takes the roots from trailkeep's own `v1/root`. Patch it before searching.
import pangea.services.audit.audit as pangea_audit

pangea_audit.get_arweave_published_roots = lambda tree_name, tree_sizes: {}

from cryptography.hazmat.primitives import serialization  # noqa: E402  (a dependency of pangea-sdk)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from pangea.config import PangeaConfig  # noqa: E402
from pangea.services import Audit  # noqa: E402
from pangea.services.audit.models import DownloadFormat, EventVerification, SearchOrder  # noqa: E402


def signing_key_file(directory: str) -> str:
    """An Ed25519 key for signing events on the client (`sign_local=True`); keep yours safe."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = Path(directory) / "audit-signing-key.pem"
    path.write_bytes(pem)
    return str(path)


def main(url: str, key: str) -> int:
    failures = []

    def check(what: str, ok: bool) -> None:
        print(f"  {what}: {'ok' if ok else 'FAILED'}")
        if not ok:
            failures.append(what)

    # The SDK builds every URL from base_url_template; trailkeep serves the Pangea API under /pangea.
    # tenant_id goes into every event logged through this client (trailkeep: its workspace).
    tenant = f"example-{uuid.uuid4()}"
    with tempfile.TemporaryDirectory() as tmp:
        audit = Audit(
            key,
            config=PangeaConfig(base_url_template=f"{url.rstrip('/')}/pangea"),
            private_key_file=signing_key_file(tmp),
            tenant_id=tenant,
        )

        # 1. One event; verify=True asks for the proofs and checks them: the event's hash, its
        #    membership in the tree, and the consistency with the previous root this client saw.
        r = audit.log(message="user signed in", actor="alice", action="login", status="success", verify=True)
        print(f"log: hash {r.result.hash}")
        check("membership proof of the logged event", r.result.membership_verification == EventVerification.PASS)

        # 2. A bulk of events, each signed on the client with the key above.
        events = [
            {"message": f"exported report {i}", "actor": "bob", "action": "export", "target": f"reports/{i}"}
            for i in range(5)
        ]
        bulk = audit.log_bulk(events, sign_local=True, verbose=True)
        print(f"log_bulk: {len(bulk.result.results)} events stored")
        check("one result per bulk event", len(bulk.result.results) == len(events))

        # 3. Search (Pangea query language), oldest first, two per page, verifying every event:
        #    hash, membership proof, client signature, and consistency between the roots.
        query = f'tenant_id:"{tenant}" AND (actor:alice OR action:export)'
        s = audit.search(query=query, order=SearchOrder.ASC, limit=2, verify_consistency=True)
        print(f"search: {s.result.count} events match, first page of {len(s.result.events)}")
        seen = list(s.result.events)
        # 4. The rest of the results, by the search's result id.
        while len(seen) < s.result.count:
            page = audit.results(s.result.id, limit=2, offset=len(seen), verify_consistency=True)
            seen.extend(page.result.events)
        for e in seen:
            print(
                f"  {e.envelope.received_at} {e.envelope.event.get('actor')}: {e.envelope.event.get('message')!r}"
                f" membership={e.membership_verification} consistency={e.consistency_verification}"
                f" signature={e.signature_verification}"
            )
        check("every event found", len(seen) == 1 + len(events))
        check("every membership proof", all(e.membership_verification == EventVerification.PASS for e in seen))
        # The first event of the tree has no earlier root to be consistent with.
        check(
            "every consistency proof",
            all(e.consistency_verification in (EventVerification.PASS, EventVerification.NONE) for e in seen)
            and any(e.consistency_verification == EventVerification.PASS for e in seen),
        )
        signed = [e for e in seen if e.envelope.signature]
        check("every client signature", len(signed) == len(events)
              and all(e.signature_verification == EventVerification.PASS for e in signed))

        # 5. All results as one gzipped JSON Lines file, from a short-lived capability URL
        #    (no key needed to fetch it).
        d = audit.download_results(result_id=s.result.id, format=DownloadFormat.JSON)
        file = audit.download_file(d.result.dest_url)
        rows = [json.loads(line) for line in gzip.decompress(file.file).splitlines() if line.strip()]
        print(f"download_results: {file.filename}, {len(rows)} events")
        check("the download holds every result", {row["hash"] for row in rows} == {e.hash for e in seen})

    if failures:
        print(f"{len(failures)} check(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} URL KEY")
    sys.exit(main(sys.argv[1], sys.argv[2]))
