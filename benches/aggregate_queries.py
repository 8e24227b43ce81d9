"""Latency of `GET /api/v1/aggregate` per kind of query, against a running server whose log was
pre-filled by `loadgen bulk --dialect h2o --start 0 --events 1000000` (the generator is
deterministic: the actor, word, rare target piece and workspace below exist in that log).

    python3 benches/aggregate_queries.py URL ADMIN_KEY LABEL REQUESTS_PER_KIND

Prints one JSON line per kind: p50/p95 at the client (ms), the total counted, `complete` and
`counted_from`. Run it against two builds on the same data to compare them (BENCHMARKS.md).
"""
import json, sys, time, urllib.request, urllib.parse, statistics
url, key, label, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def req(method, path, k, body=None):
    r = urllib.request.Request(url + path, method=method, data=body and json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + k, "Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=600) as f:
        return json.loads(f.read())
lim = req("POST", "/api/v1/keys", key, {"name": "m", "scopes": ["search"], "workspaces": ["workspaces/45c77dd85862"]})["secret"]
queries = [("none", ""), ("actor", 'actor:"serviceaccounts/koor-38b215"'), ("word", "koor"),
           ("rare", "gozushifi-322361"), ("action_eq", 'action:"actions/project/CREATE"')]
kinds = []
for qn, q in queries:
    kinds.append((f"24h {qn}", "24h", q, key))
kinds.append(("24h ws-key none", "24h", "", lim))
kinds.append(("24h ws-key word", "24h", "koor", lim))
kinds.append(("24h ws-key actor", "24h", 'actor:"serviceaccounts/koor-38b215"', lim))
for qn, q in queries[:2] + queries[3:4]:
    kinds.append((f"all {qn}", "1970-01-01T00:00:00Z", q, key))
for name, start, q, k in kinds:
    p = "/api/v1/aggregate?" + urllib.parse.urlencode({"start": start, "query": q})
    req("GET", p, k)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter(); v = req("GET", p, k); lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    p95 = lat[min(len(lat) - 1, int(round(0.95 * len(lat))) - 1)]
    print(json.dumps({"label": label, "kind": name, "p50": round(statistics.median(lat), 1), "p95": round(p95, 1),
                      "total": v["total"], "complete": v["complete"], "counted_from": v.get("counted_from")}), flush=True)
