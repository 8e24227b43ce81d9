#!/usr/bin/env bash
# A walk through trailkeep's HTTP APIs with curl: the H2O Audit Trail dialect, the Pangea
# Secure Audit Log dialect (under /pangea), and the server's own routes.
#
#   bash examples/curl_walkthrough.sh http://127.0.0.1:8080 tk_...
#
# KEY needs the `ingest` and `search` scopes (the admin key printed at first start has both).
# Needs curl and python3 (only to pick fields out of JSON and make UUIDs). Every request must
# succeed (curl --fail-with-body); the script stops at the first one that does not, exit status 1.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 URL KEY" >&2
    exit 2
fi
URL=${1%/}
KEY=$2

step() { printf '\n== %s\n' "$*"; }
# POST a JSON body with the key; print the response body.
post() { curl -sS --fail-with-body -X POST "$URL$1" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$2"; }
# A Python expression over the JSON document on stdin (`d`), e.g. field 'd["result"]["id"]'.
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
# Fields of the JSON document on stdin put into a template, e.g. show 'id {d[result][id]}'.
show() { python3 -c 'import json,sys; print(sys.argv[1].format(d=json.load(sys.stdin)))' "$1"; }
uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }

WS="workspaces/$(uuid)"   # a workspace of our own: the searches below only see our events
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT

step "liveness and readiness (no key)"
curl -sS --fail-with-body "$URL/healthz"; echo
curl -sS --fail-with-body "$URL/readyz"; echo

# ---------------------------------------------------------------------------- H2O dialect
step "H2O: create one event (the event id is the client's, a UUIDv4; the workspace comes from the resource)"
EVENT='{"eventTime":"'$NOW'","eventSource":"my-service","action":"actions/things/CREATE","readOnly":false,
        "status":{"code":0},"principal":"users/alice","sourceIpAddress":"203.0.113.7",
        "resource":"//my-service/'$WS'/things/t1","metadata":{"ticket":"42"},"type":"TYPE_API"}'
post "/v1/events?eventId=$(uuid)" "$EVENT"; echo

step "H2O: batch create (each request succeeds or fails on its own; failures come back by index)"
post "/v1/events:batchCreate" '{"requests":[
    {"eventId":"'"$(uuid)"'","event":'"${EVENT/CREATE/UPDATE}"'},
    {"eventId":"'"$(uuid)"'","event":'"${EVENT/CREATE/DELETE}"'},
    {"eventId":"not-a-uuid","event":'"$EVENT"'}]}' > "$TMP"
field 'str(len(d["events"])) + " created; failed by index: " + json.dumps(d["failedRequests"])' < "$TMP"

step "H2O: search the workspace, two per page (RE2 regex filters; newest first)"
FILTER='{"workspaceExact":"'$WS'","actionRegex":"(CREATE|UPDATE|DELETE)$"}'
TOKEN=""
PAGES=0
FOUND=0
while :; do
    PAGE=$(post "/v1/events:search" '{"filter":'"$FILTER"',"pageSize":2,"pageToken":"'"$TOKEN"'"}')
    echo "$PAGE" | field '"\n".join(e["eventTime"] + " " + e["action"] + " " + e["name"] for e in d["events"])'
    PAGES=$((PAGES + 1))
    FOUND=$((FOUND + $(echo "$PAGE" | field 'len(d["events"])')))
    TOKEN=$(echo "$PAGE" | field 'd.get("nextPageToken", "")')
    [ -n "$TOKEN" ] || break
done
echo "$FOUND events in $PAGES pages"
[ "$FOUND" -eq 3 ] || { echo "expected 3 events" >&2; exit 1; }

step "H2O: the OIDC refresh-token grant (what login_custom does): the key buys a one-hour access token"
ACCESS=$(curl -sS --fail-with-body -X POST "$URL/oauth/token" \
    --data-urlencode grant_type=refresh_token --data-urlencode client_id=trailkeep \
    --data-urlencode "refresh_token=$KEY" | field 'd["access_token"]')
curl -sS --fail-with-body -X POST "$URL/v1/events:search" -H "Authorization: Bearer $ACCESS" \
    -H 'Content-Type: application/json' -d '{"filter":{"workspaceExact":"'$WS'"},"pageSize":1}' \
    | field '"with the access token: " + d["events"][0]["name"]'

# ---------------------------------------------------------------------------- Pangea dialect
TENANT="tenant-$(uuid)"   # Pangea's tenant_id is trailkeep's workspace

step "Pangea: log one event, verbose (the envelope, its hash and its membership proof come back)"
post "/pangea/v1/log" '{"event":{"message":"user signed in","actor":"alice","action":"login","status":"success",
    "tenant_id":"'$TENANT'"},"verbose":true}' \
    | show 'hash {d[result][hash]}, membership proof {d[result][membership_proof]}'

step "Pangea: log a bulk (v2/log)"
post "/pangea/v2/log" '{"events":[
    {"event":{"message":"report exported","actor":"bob","action":"export","tenant_id":"'$TENANT'"}},
    {"event":{"message":"login failed","actor":"bob","action":"login","status":"failure","tenant_id":"'$TENANT'"}}]}' \
    | field 'str(len(d["result"]["results"])) + " events stored"'

step "Pangea: search with the query language, one per page (verbose: proofs and the root)"
SEARCH=$(post "/pangea/v1/search" '{"query":"tenant_id:\"'$TENANT'\" AND -status:failure","limit":1,"order":"asc","verbose":true}')
echo "$SEARCH" | show '{d[result][count]} events match; root of tree size {d[result][root][size]}'
ID=$(echo "$SEARCH" | field 'd["result"]["id"]')
[ "$(echo "$SEARCH" | field 'd["result"]["count"]')" -eq 2 ] || { echo "expected 2 events" >&2; exit 1; }

step "Pangea: the next page of that search, by its result id"
post "/pangea/v1/results" '{"id":"'"$ID"'","limit":1,"offset":1}' \
    | field '"\n".join(e["envelope"]["event"]["actor"] + ": " + e["envelope"]["event"]["message"] for e in d["result"]["events"])'

step "Pangea: the current root (tree size, root hash)"
post "/pangea/v1/root" '{}' | show 'size {d[result][data][size]}, root {d[result][data][root_hash]}'

step "Pangea: download the search results (gzipped CSV from a short-lived URL that needs no key)"
DEST=$(post "/pangea/v1/download_results" '{"result_id":"'"$ID"'","format":"csv"}' | field 'd["result"]["dest_url"]')
curl -sS --fail-with-body "$DEST" | gunzip | cut -c1-100

# ---------------------------------------------------------------------------- the server's own routes
step "The server's Ed25519 public key (pin it: it signs every root)"
curl -sS --fail-with-body "$URL/api/v1/public-key"; echo

step "The signed root of the current tree (the signature covers signed_message)"
SIZE=$(post "/pangea/v1/root" '{}' | field 'd["result"]["data"]["size"]')
curl -sS --fail-with-body -H "Authorization: Bearer $KEY" "$URL/api/v1/roots/$SIZE" | field 'd["signed_message"]'

step "Export the tenant's events as gzipped JSON Lines (each line carries its proof and signed root: verify_export.py)"
curl -sS --fail-with-body -G -H "Authorization: Bearer $KEY" "$URL/api/v1/export" -o "$TMP" \
    --data-urlencode format=jsonl.gz --data-urlencode "query=tenant_id:\"$TENANT\""
gunzip -c "$TMP" | python3 -c 'import json,sys
for line in sys.stdin:
    d = json.loads(line)
    print(d["envelope"]["event"]["message"], "| tree_size", d["tree_size"], "| root", d["root"]["root_hash"])'

printf '\nwalkthrough complete\n'
