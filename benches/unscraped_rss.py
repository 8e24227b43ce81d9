#!/usr/bin/env python3
"""Memory a server keeps per request when nobody scrapes /metrics.

    python3 benches/unscraped_rss.py BIN [SECONDS]

Starts BIN (`serve` on a fresh data directory), warms it up with 5 s of `GET /healthz` from three
keep-alive clients, then measures RssAnon before and after SECONDS (default 40) of the same load,
6 s after each so that periodic work has run, and prints the bytes kept per request. The metrics
recorder keeps every histogram sample until a scrape or its upkeep folds it into the buckets.
"""
import http.client
import multiprocessing as mp
import re
import subprocess
import sys
import tempfile
import threading
import time


def client(port: int, seconds: float, q) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port)
    n, end = 0, time.time() + seconds
    while time.time() < end:
        c.request("GET", "/healthz")
        c.getresponse().read()
        n += 1
    q.put(n)


def rss_anon_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"RssAnon:\s+(\d+)", f.read()).group(1)) / 1024


def load(port: int, seconds: float) -> int:
    q = mp.Queue()
    ws = [mp.Process(target=client, args=(port, seconds, q)) for _ in range(3)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    return sum(q.get() for _ in ws)


def main() -> None:
    binary, seconds = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 40.0
    data = tempfile.mkdtemp(prefix="trailkeep-rss-") + "/data"
    p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port = None
    for line in p.stdout:
        m = re.search(r"listening on https?://[^:/]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    try:
        load(port, 5)
        time.sleep(6)
        before = rss_anon_mb(p.pid)
        n = load(port, seconds)
        time.sleep(6)
        after = rss_anon_mb(p.pid)
        print(f"{binary}: {n} requests; RssAnon {before:.1f} -> {after:.1f} MB ({after - before:+.1f}); "
              f"{(after - before) * 1048576 / n:.1f} bytes per request")
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
