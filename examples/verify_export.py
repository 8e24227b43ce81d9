#!/usr/bin/env python3
"""Verify one exported event offline, with nothing but the server's public key.

    pip install cryptography          # for Ed25519; everything else is the standard library
    python3 examples/verify_export.py http://127.0.0.1:8080 tk_...
    python3 examples/verify_export.py URL KEY --file export.jsonl.gz --public-key BASE64

Every line of a JSON Lines export (`trailkeep export --format jsonl.gz`, `GET
/api/v1/export?format=jsonl.gz`, or the web UI's Export > JSON Lines) carries the event's
envelope, its hash, its membership proof and the signed root the proof leads to (README, "The
line format"; replicated archive objects hold the same lines without the proof fields, and
`trailkeep verify --archive` checks those). Three checks make the line trustworthy on its own:

  1. hash:      SHA-256 of the envelope's canonical JSON equals `hash`;
  2. proof:     folding `membership_proof` over the hash gives `root.root_hash`;
  3. signature: `root.signature` is the server's Ed25519 signature of the root.

Without --file, the program logs three events through the Pangea API (KEY needs the `ingest`
and `search` scopes), exports them through `GET /api/v1/export` and verifies each line; with
--file it verifies every line of that export file instead (URL is then only used to fetch the
public key when --public-key is not given). It also shows that an edited copy of a line fails.
Exit status 0 when every line verifies and the edited copy does not.
"""

import argparse
import base64
import copy
import gzip
import hashlib
import json
import sys
import urllib.parse
import urllib.request
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def canonical(value) -> bytes:
    """trailkeep's (and Pangea's) canonical JSON: sorted keys, no spaces, UTF-8 as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fold_proof(leaf: bytes, proof: str) -> bytes:
    """A membership proof is `l:<hex>,r:<hex>,...` from the leaf up: `l` = the sibling is on
    the left. Each step hashes the two raw 32-byte halves together: SHA-256(left || right)."""
    node = leaf
    for item in proof.split(",") if proof else []:
        side, sibling = item.split(":", 1)
        pair = bytes.fromhex(sibling) + node if side == "l" else node + bytes.fromhex(sibling)
        node = hashlib.sha256(pair).digest()
    return node


def verify_line(row: dict, public_key_b64: str) -> list:
    """The problems found in one exported event (an empty list: it verifies)."""
    problems = []
    # A purged event (retention removed its content: `"envelope": null`) keeps its hash, which the
    # proof and the signature still cover.
    if row.get("envelope") is not None and hashlib.sha256(canonical(row["envelope"])).hexdigest() != row["hash"]:
        problems.append("the envelope does not hash to `hash`")
    root = row.get("root")
    if not row.get("published") or not root:
        return problems + ["no membership proof (only JSON Lines exports carry them)"]
    if fold_proof(bytes.fromhex(row["hash"]), row["membership_proof"]).hex() != root["root_hash"]:
        problems.append("the membership proof does not lead to the root")
    if row["tree_size"] != root["size"]:
        problems.append("the proof is for another tree size than the root")
    # The signed message: canonical JSON of the root's four fields.
    message = canonical({k: root[k] for k in ("published_at", "root_hash", "size", "tree_name")})
    try:
        public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        public_key.verify(base64.b64decode(root["signature"]), message)
    except (InvalidSignature, ValueError):
        problems.append("the root's signature does not verify with the public key")
    return problems


def http(url: str, key: str = "", body=None) -> bytes:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def exported_lines(url: str, key: str) -> list:
    """Logs three events and exports them through the UI route (what the Export button downloads)."""
    marker = f"verify-export-{uuid.uuid4()}"
    for actor in ("alice", "bob", "carol"):
        event = {"message": f"{marker} {actor} signed in", "actor": actor, "action": "login"}
        http(f"{url}/pangea/v1/log", key, {"event": event})
    query = urllib.parse.urlencode({"format": "jsonl.gz", "query": f'message:"{marker}"'})
    lines = gzip.decompress(http(f"{url}/api/v1/export?{query}", key)).decode().splitlines()
    print(f"exported {len(lines)} events through /api/v1/export")
    return [json.loads(line) for line in lines if line.strip()]


def lines_from_file(path: str) -> list:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print(f"read {len(rows)} events from {path}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("key")
    ap.add_argument("--file", help="an export (JSON Lines, optionally gzipped) to verify instead")
    ap.add_argument("--public-key", help="the server's public key (base64), from `trailkeep keys public`")
    args = ap.parse_args()
    url = args.url.rstrip("/")

    # Pin the public key you got from the server's operator (`trailkeep keys public` prints it).
    # Fetching it from the same server that sent the export proves less: a server that forged
    # the export could send a matching key too.
    public_key = args.public_key
    if not public_key:
        public_key = json.loads(http(f"{url}/api/v1/public-key"))["public_key"]
        print(f"public key (fetched from {url}/api/v1/public-key): {public_key}")

    rows = lines_from_file(args.file) if args.file else exported_lines(url, args.key)
    if not rows:
        print("no event to verify", file=sys.stderr)
        return 1
    failed = 0
    for row in rows:
        problems = verify_line(row, public_key)
        event = row["envelope"]["event"] if row.get("envelope") else {}
        print(f"{row['hash']} {event.get('message')!r}: proof to the root of tree size {row.get('tree_size')}: "
              + ("verified (hash, membership proof, root signature)" if not problems else "FAILED"))
        for p in problems:
            print(f"  {p}")
        failed += bool(problems)
    if failed:
        print(f"{failed} of {len(rows)} events did not verify", file=sys.stderr)
        return 1

    # The same line with one character of the event changed must not verify.
    forged = copy.deepcopy(next((r for r in rows if r.get("envelope")), rows[0]))
    if not forged.get("envelope"):  # every line purged: give one a content it never had
        forged["envelope"] = {"event": {}}
    forged["envelope"]["event"]["message"] = str(forged["envelope"]["event"].get("message")) + "!"
    caught = verify_line(forged, public_key)
    print(f"an edited copy of the first line: {caught[0] if caught else 'NOT DETECTED'}")
    return 0 if caught else 1


if __name__ == "__main__":
    sys.exit(main())
