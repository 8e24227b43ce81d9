#!/usr/bin/env python3
"""trailkeep soak (long tier, not in CI): a paced mix of ingest and search for an hour, with a
backup and retention purges during it; samples the server every few seconds and judges memory,
latency, file descriptors, threads and the WAL. Run it through ``benches/soak.sh`` (builds the
release binaries first); see ``tests/reliability/README.md`` ("Soak").

The load is ``loadgen soak`` (examples/loadgen.rs), open loop, latency from the intended send
time. The default mix is half of the capacity measured in BENCHMARKS.md (~60,000 bulk events/s,
~12,000 single-event requests/s): a quarter of the bulk capacity (15,000 events/s in batches of
500, half Pangea ``v2/log``, half H2O ``batchCreate``) plus a quarter of the single-event capacity
(3,000 requests/s, half Pangea ``v1/log``, half H2O create) plus 20 searches/s (H2O exact principal
40%, exact workspace 20%, Pangea word 25%, H2O resource regex 10%, action regex 5%).

During the run: the server has a retention period for the stream's hottest workspace (purged every
minute, from the warm-up on), ``POST /api/v1/retention/purge`` is called at 60% of the run, and a
backup is taken at 40%: the server's online backup (``POST /api/v1/backups``, its writer copies
between commits) or, with SOAK_BACKUP=cli, ``trailkeep backup`` (``VACUUM INTO`` in a process of
its own). Afterwards: ``trailkeep verify`` on the data directory, and the backup restored and verified.

Criteria (after the warm-up, default the first 5 minutes):
  rss      RSS at the end (median of the last minute) at most 10% above RSS after the warm-up
  p99      per request kind, the largest window p99 at most 1.5x the smallest (windows of 5 minutes)
  fds      open file descriptors flat: the last third's maximum at most the first third's + max(4, 10%)
  threads  the same for threads
  wal      the WAL file bounded: at most SOAK_WAL_LIMIT_MB outside the backup and the minute after
           it, and at the end (`trailkeep backup`'s snapshot holds checkpoints back for its
           duration; the peak during it is reported)
  errors   no failed request; verify passes; the backup verifies; the purge removed events

Prints a table per window and a PASS/FAIL line per criterion; writes samples.csv (one row per
sample; anonymous RSS split into glibc's, which SQLite allocates from, and mimalloc's),
windows.csv (one row per window and kind), summary.json, loadgen's results and the server's
warnings and errors (server-warnings.log), its other lines but the per-request ones
(server-events.log; the full request log stays in the scratch directory) to the output
directory. Exit status 0 when every criterion passes.

Environment (all optional): SOAK_SECONDS (3600), SOAK_WINDOW (300; a fifth of the run when it is
under 30 minutes), SOAK_WARMUP (300; one window when the run is under 30 minutes), SOAK_SAMPLE (5),
SOAK_SCALE (1.0, multiplies the three rates), SOAK_BULK_RATE (15000), SOAK_SINGLE_RATE (3000),
SOAK_SEARCH_RATE (20), SOAK_BATCH (500), SOAK_RETENTION ("3min", so that the purges start within
the 5-minute warm-up; a fifth of the run, at least 60 s, when it is under 30 minutes), SOAK_WAL_LIMIT_MB (320),
SOAK_RETENTION_DEFAULT (none: a retention period for every other workspace, e.g. "10min", which keeps
the database within the page cache), SOAK_BACKUP (online or cli),
SOAK_DIR (scratch directory, default a new one under $TMPDIR), SOAK_OUT (default
target/soak/<UTC time>), SOAK_KEEP=1 (keep the scratch directory), TRAILKEEP_BIN, LOADGEN.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
BYTES_PER_EVENT = 1300  # ~1.2 KB of disk per event (BENCHMARKS.md), with a margin


def env_f(name: str, default: float) -> float:
    v = os.environ.get(name, "")
    return float(v) if v.strip() else default


SECONDS = env_f("SOAK_SECONDS", 3600)
WINDOW = env_f("SOAK_WINDOW", 300 if SECONDS >= 1800 else max(10.0, SECONDS / 5))
WARMUP = env_f("SOAK_WARMUP", 300 if SECONDS >= 1800 else WINDOW)
SAMPLE = env_f("SOAK_SAMPLE", 5)
SCALE = env_f("SOAK_SCALE", 1.0)
BULK_RATE = env_f("SOAK_BULK_RATE", 15000) * SCALE
SINGLE_RATE = env_f("SOAK_SINGLE_RATE", 3000) * SCALE
SEARCH_RATE = env_f("SOAK_SEARCH_RATE", 20) * SCALE
BATCH = int(env_f("SOAK_BATCH", 500))
RETENTION = os.environ.get("SOAK_RETENTION") or ("3min" if SECONDS >= 1800 else f"{int(max(60, SECONDS / 5))}s")
WAL_LIMIT_MB = env_f("SOAK_WAL_LIMIT_MB", 320)
RETENTION_DEFAULT = os.environ.get("SOAK_RETENTION_DEFAULT", "")
BACKUP = os.environ.get("SOAK_BACKUP", "online")
if BACKUP not in ("online", "cli"):
    sys.exit("SOAK_BACKUP: online or cli")
BIN = Path(os.environ.get("TRAILKEEP_BIN", ROOT / "target/release/trailkeep"))
LOADGEN = Path(os.environ.get("LOADGEN", ROOT / "target/release/examples/loadgen"))
MIN_P99_SAMPLES = 100  # fewer requests in a window: its p99 is not judged

samples: List[dict] = []
marks: List[str] = []  # events during the run (backup, purge), for the samples' "mark" column
outcomes: Dict[str, object] = {}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------------------- server
def start_server(data: Path, config: Path, out: Path, work: Path) -> tuple:
    """The server's log (a line per request: GBs in an hour) goes to the scratch directory; its
    warnings and errors are copied to the output directory at the end."""
    stdout = open(out / "server.stdout", "w")
    stderr = open(work / "server.stderr", "w")
    proc = subprocess.Popen([str(BIN), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data), "--config",
                             str(config)], stdout=subprocess.PIPE, stderr=stderr, text=True)
    url = key = None
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    while time.monotonic() < deadline and url is None:
        line = proc.stdout.readline()
        if not line:
            break
        stdout.write(line)
        if m := re.search(r"admin key:\s*(\S+)", line):
            key = m.group(1)
        if m := re.search(r"listening on (http://\S+)", line):
            url = m.group(1).rstrip("/")
    if not url or not key:
        proc.kill()
        sys.exit(f"the server did not start: see {work / 'server.stderr'}")
    threading.Thread(target=lambda: shutil.copyfileobj(proc.stdout, stdout), daemon=True).start()
    return proc, url, key


def http(url: str, key: str, method: str = "GET", body: Optional[bytes] = None, timeout: float = 300) -> tuple:
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def metrics(url: str, key: str) -> Dict[str, float]:
    out: Dict[str, float] = {}
    try:
        _, text = http(url + "/metrics", key, timeout=10)
    except OSError:
        return out
    for line in text.splitlines():
        for name in ("trailkeep_events_ingested_total", "trailkeep_events_purged_total", "trailkeep_tree_size"):
            if line.startswith(name + " ") or line.startswith(name + "{"):
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


# ----------------------------------------------------------------------------------------- sampling
def proc_status(pid: int) -> Dict[str, int]:
    st: Dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
                st[k] = int(v.split()[0])
    return st


def anon_split(pid: int) -> Dict[str, float]:
    """Anonymous RSS by allocator (MB), from /proc/PID/smaps: glibc's (the `[heap]` and the
    mappings near the top of the address space: its arenas and the threads' stacks), which SQLite
    allocates from, and the rest, mimalloc's segments (every Rust allocation)."""
    out = {"glibc_mb": 0.0, "mimalloc_mb": 0.0}
    try:
        with open(f"/proc/{pid}/smaps") as f:
            where = None
            for line in f:
                head = line.split(maxsplit=6)
                if len(head) >= 5 and "-" in head[0] and ":" in head[3] and not head[0].endswith(":"):
                    name = head[5].strip() if len(head) > 5 else ""
                    start = int(head[0].split("-")[0], 16)
                    if name == "[heap]" or (name == "" and start >= 0x7F0000000000):
                        where = "glibc_mb"
                    elif name == "":
                        where = "mimalloc_mb"
                    else:
                        where = None
                elif head[0] == "Rss:" and where:
                    out[where] += int(head[1]) / 1024
    except OSError:
        pass
    return {k: round(v, 1) for k, v in out.items()}


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def size_mb(p: Path) -> float:
    try:
        return p.stat().st_size / 1e6
    except OSError:
        return 0.0


def sample(pid: int, t0: float, data: Path, url: str, key: str) -> dict:
    st = proc_status(pid)
    m = metrics(url, key)
    row = {
        "t_s": round(time.monotonic() - t0, 1),
        "rss_mb": round(st.get("VmRSS", 0) / 1024, 1),
        "hwm_mb": round(st.get("VmHWM", 0) / 1024, 1),
        "anon_mb": round(st.get("RssAnon", 0) / 1024, 1),
        "file_mb": round(st.get("RssFile", 0) / 1024 + st.get("RssShmem", 0) / 1024, 1),
        **anon_split(pid),
        "threads": st.get("Threads", 0),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "wal_mb": round(size_mb(data / "trailkeep.db-wal"), 1),
        "db_mb": round(size_mb(data / "trailkeep.db"), 1),
        "cpu_s": round(cpu_seconds(pid), 1),
        "events_ingested": int(m.get("trailkeep_events_ingested_total", 0)),
        "events_purged": int(m.get("trailkeep_events_purged_total", 0)),
        "tree_size": int(m.get("trailkeep_tree_size", 0)),
        "mark": ";".join(marks),
    }
    marks.clear()
    return row


def run_backup(data: Path, work: Path, url: str, key: str) -> None:
    marks.append("backup-start")
    t = time.monotonic()
    dest = work / "backup.db"
    if BACKUP == "cli":
        r = subprocess.run([str(BIN), "backup", "--to", str(dest), "--data-dir", str(data)], capture_output=True,
                           text=True)
        rc, output = r.returncode, (r.stdout + r.stderr).strip()[-300:]
    else:
        # The server's online backup (its writer copies between commits) into --backup-dir.
        status, output = http(url + "/api/v1/backups", key, "POST", b"{}", timeout=3600)
        rc = 0 if status == 201 else status
        if rc == 0:
            made = Path(json.loads(output)["file"])
            for suffix in ("", ".checkpoint"):
                os.replace(str(made) + suffix, str(dest) + suffix)
    outcomes["backup"] = {"rc": rc, "kind": BACKUP, "seconds": round(time.monotonic() - t, 1),
                          "mb": round(size_mb(dest), 1), "output": output.strip()[-300:]}
    marks.append("backup-end")


def run_purge(url: str, key: str) -> None:
    marks.append("purge")
    t = time.monotonic()
    status, body = http(url + "/api/v1/retention/purge", key, "POST", b"{}")
    outcomes["purge_call"] = {"status": status, "seconds": round(time.monotonic() - t, 1), "body": body[:300]}


# ----------------------------------------------------------------------------------------- analysis
def median(xs: List[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def thirds(rows: List[dict], key: str) -> tuple:
    n = len(rows)
    if n < 3:
        return (max((r[key] for r in rows), default=0), max((r[key] for r in rows), default=0))
    return max(r[key] for r in rows[: n // 3]), max(r[key] for r in rows[-(n // 3):])


def judge(windows: List[dict]) -> List[tuple]:
    """[(criterion, passed, detail)]"""
    res = []
    after = [s for s in samples if s["t_s"] >= WARMUP]
    if len(after) < 3:
        return [("samples", False, f"only {len(after)} samples after the {WARMUP:.0f} s warm-up")]
    span = min(60.0, WINDOW)
    base = median([s["rss_mb"] for s in after if s["t_s"] < WARMUP + span])
    end_t = after[-1]["t_s"]
    end = median([s["rss_mb"] for s in after if s["t_s"] > end_t - span])
    peak = max(s["rss_mb"] for s in after)
    growth = end / base - 1 if base else float("inf")

    def split(rows: List[dict]) -> str:
        return "/".join(f"{median([s.get(k, 0.0) for s in rows]):.1f}" for k in ("glibc_mb", "mimalloc_mb"))

    res.append(("rss", growth <= 0.10, f"{base:.1f} MB after warm-up -> {end:.1f} MB at the end ({growth:+.1%}); "
                                       f"peak {peak:.1f} MB, VmHWM {after[-1]['hwm_mb']:.1f} MB; anonymous "
                                       f"glibc/mimalloc {split([s for s in after if s['t_s'] < WARMUP + span])} -> "
                                       f"{split([s for s in after if s['t_s'] > end_t - span])} MB"))
    # p99 per kind, windows that start after the warm-up
    by_op: Dict[str, List[tuple]] = {}
    for w in windows:
        if w["window_start_s"] >= WARMUP - 1e-6 and w["requests"] >= MIN_P99_SAMPLES:
            by_op.setdefault(w["op"], []).append((w["window"], w["p99_ms"]))
    worst = []
    ok = bool(by_op)
    for op, xs in sorted(by_op.items()):
        p = [x[1] for x in xs]
        ratio = max(p) / min(p) if min(p) > 0 else float("inf")
        worst.append(f"{op} {min(p):.1f}-{max(p):.1f} ms ({ratio:.2f}x)")
        if len(p) >= 2 and ratio > 1.5:
            ok = False
    res.append(("p99", ok, "; ".join(worst) if worst else "no window after the warm-up with enough requests"))
    for key, name in (("fds", "fds"), ("threads", "threads")):
        first, last = thirds(after, key)
        lo, hi = min(s[key] for s in after), max(s[key] for s in after)
        res.append((name, last <= first + max(4, 0.10 * first),
                    f"first third max {first}, last third max {last} (range {lo}-{hi})"))
    # A backup's `VACUUM INTO` reads one snapshot for the whole copy, and no checkpoint passes a
    # reader: the WAL grows by the write rate times the backup's duration, and `journal_size_limit`
    # truncates it at the first reset after it. Bounded means: under the limit outside the backup
    # and the minute after it, and back under it at the end; the backup's peak is reported.
    start = next((i for i, s in enumerate(samples) if "backup-start" in s["mark"]), None)
    end = next((i for i, s in enumerate(samples) if "backup-end" in s["mark"]), None)
    grace = int(60 / SAMPLE)
    if start is not None:
        start = max(0, start - 1)  # the sample before may already see the copy's first seconds
        stop = (end if end is not None else len(samples)) + grace
        during = samples[start:stop]
        outside = samples[:start] + samples[stop:]
    else:
        during, outside = [], samples
    out_max = max((s["wal_mb"] for s in outside), default=0.0)
    at_end = samples[-1]["wal_mb"] if samples else 0.0
    backup_peak = max((s["wal_mb"] for s in during), default=0.0)
    res.append(("wal", out_max <= WAL_LIMIT_MB and at_end <= WAL_LIMIT_MB,
                f"max {out_max:.1f} MB outside the backup (limit {WAL_LIMIT_MB:.0f}), {at_end:.1f} MB at the end; "
                f"{backup_peak:.1f} MB during the backup ({outcomes.get('backup', {}).get('seconds', '?')} s) and the "
                f"minute after it"))
    errors = sum(w["errors"] for w in windows if w["op"] != "search")
    first_err = next((w["first_error"] for w in windows if w["errors"] and w["first_error"]), None)
    b = outcomes.get("backup", {})
    checks = [
        ("no failed request", errors == 0, f"{errors} failed" + (f" (e.g. {first_err[:150]})" if first_err else "")),
        ("verify", outcomes.get("verify_rc") == 0, str(outcomes.get("verify", ""))[:150]),
        ("backup", b.get("rc") == 0 and outcomes.get("backup_verify_rc") == 0,
         f"rc {b.get('rc')}, {b.get('seconds')} s, {b.get('mb')} MB; restored copy: {str(outcomes.get('backup_verify', ''))[:120]}"),
        # 409 `purge_running`: a scheduled run was in progress; the call was answered, not queued.
        ("purge", samples[-1]["events_purged"] > 0 and outcomes.get("purge_call", {}).get("status") in (200, 409),
         f"{samples[-1]['events_purged']} events purged; POST purge: {outcomes.get('purge_call', {}).get('status')}"),
    ]
    ok = all(c[1] for c in checks)
    res.append(("errors", ok, "; ".join(f"{n}: {'ok' if p else 'FAILED'} ({d})" for n, p, d in checks)))
    return res


def report(windows: List[dict], out: Path) -> bool:
    ops = sorted({w["op"] for w in windows})
    nwin = max((w["window"] for w in windows), default=-1) + 1
    head = f"{'window':>12} {'RSS MB':>7} {'thr':>4} {'fds':>4} {'WAL MB':>7} {'ev/s':>7}  " + " ".join(
        f"{op[:14]:>14}" for op in ops)
    print("\np99 latency (ms) per window and kind; server samples (medians per window); ev/s = stored events/s")
    print(head)
    for k in range(nwin):
        lo, hi = k * WINDOW, (k + 1) * WINDOW
        rows = [s for s in samples if lo <= s["t_s"] < hi] or [s for s in samples if s["t_s"] >= lo][:1]
        if not rows:
            continue
        prev = [s for s in samples if s["t_s"] < lo]
        ev0 = prev[-1]["events_ingested"] if prev else 0
        t0s = prev[-1]["t_s"] if prev else 0.0
        rate = (rows[-1]["events_ingested"] - ev0) / max(1e-9, rows[-1]["t_s"] - t0s)
        cells = []
        for op in ops:
            w = next((x for x in windows if x["window"] == k and x["op"] == op), None)
            cells.append(f"{w['p99_ms']:>14.1f}" if w else f"{'-':>14}")
        print(f"{lo:>6.0f}-{hi:<5.0f} {median([r['rss_mb'] for r in rows]):>7.1f} "
              f"{int(median([r['threads'] for r in rows])):>4} {int(median([r['fds'] for r in rows])):>4} "
              f"{median([r['wal_mb'] for r in rows]):>7.1f} {rate:>7.0f}  " + " ".join(cells))
    verdicts = judge(windows)
    print(f"\ncriteria (after a {WARMUP:.0f} s warm-up):")
    for name, passed, detail in verdicts:
        print(f"  {'PASS' if passed else 'FAIL'}  {name:<8} {detail}")
    summary = {"seconds": SECONDS, "window_s": WINDOW, "warmup_s": WARMUP, "sample_s": SAMPLE,
               "rates": {"bulk_events_per_s": BULK_RATE, "single_requests_per_s": SINGLE_RATE,
                         "searches_per_s": SEARCH_RATE, "batch": BATCH},
               "criteria": [{"name": n, "pass": p, "detail": d} for n, p, d in verdicts],
               "outcomes": outcomes, "samples": len(samples)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nsamples: {out / 'samples.csv'}; windows: {out / 'windows.csv'}; summary: {out / 'summary.json'}")
    return all(p for _, p, _ in verdicts)


# ----------------------------------------------------------------------------------------- main
def main() -> int:
    for p in (BIN, LOADGEN):
        if not p.exists():
            sys.exit(f"{p} not found: run benches/soak.sh (builds the release binaries)")
    out = Path(os.environ.get("SOAK_OUT", ROOT / "target" / "soak" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("SOAK_DIR") or tempfile.mkdtemp(prefix="trailkeep-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    need = (BULK_RATE + SINGLE_RATE) * SECONDS * BYTES_PER_EVENT * 1.8  # data + backup at 40% + its restored copy
    free = shutil.disk_usage(work).free
    if need > free:
        sys.exit(f"not enough disk under {work}: the soak needs about {need / 1e9:.0f} GB (the database, its backup "
                 f"and the restored copy), {free / 1e9:.0f} GB are free; lower SOAK_SCALE or SOAK_SECONDS, or set SOAK_DIR")
    hot = subprocess.run([str(LOADGEN), "workspaces", "--top", "1"], capture_output=True, text=True,
                         check=True).stdout.split()[0]
    data = work / "data"
    config = work / "soak.toml"
    default = f'default = "{RETENTION_DEFAULT}"\n' if RETENTION_DEFAULT else ""
    config.write_text(f'backup_dir = "{work / "backups"}"\n\n[retention]\n{default}interval = "1min"\n\n'
                      f'[retention.workspaces]\n"{hot}" = "{RETENTION}"\n')
    log(f"soak: {SECONDS:.0f} s, windows of {WINDOW:.0f} s, warm-up {WARMUP:.0f} s, sample every {SAMPLE:.0f} s; "
        f"bulk {BULK_RATE:.0f} events/s, single {SINGLE_RATE:.0f}/s, search {SEARCH_RATE:.1f}/s; retention "
        f"{RETENTION} for {hot}" + (f", {RETENTION_DEFAULT} for the others" if RETENTION_DEFAULT else "") +
        f"; backup {BACKUP}; scratch {work}; output {out}")
    server, url, key = start_server(data, config, out, work)
    lg_out = open(out / "loadgen.results", "w")
    lg_err = open(out / "loadgen.log", "w")
    lg = None
    ok = False
    try:
        lg = subprocess.Popen(
            [str(LOADGEN), "soak", "--url", url, "--pid", str(server.pid), "--seconds", str(SECONDS), "--window",
             str(WINDOW), "--bulk-rate", str(BULK_RATE), "--batch", str(BATCH), "--single-rate", str(SINGLE_RATE),
             "--search-rate", str(SEARCH_RATE)],
            stdout=lg_out, stderr=lg_err, env={**os.environ, "TRAILKEEP_BENCH_KEY": key})
        t0 = time.monotonic()
        todo = {"backup": 0.4 * SECONDS, "purge": 0.6 * SECONDS}
        side: List[threading.Thread] = []
        next_sample = t0
        while lg.poll() is None:
            now = time.monotonic()
            for what in [w for w, at in todo.items() if now - t0 >= at]:
                del todo[what]
                target = (lambda: run_backup(data, work, url, key)) if what == "backup" else (lambda: run_purge(url, key))
                th = threading.Thread(target=target, daemon=True)
                th.start()
                side.append(th)
            if server.poll() is not None:
                log(f"the server exited (rc={server.returncode}) during the soak: see {out / 'server-warnings.log'}")
                break
            if now >= next_sample:
                samples.append(sample(server.pid, t0, data, url, key))
                s = samples[-1]
                if len(samples) % max(1, int(60 / SAMPLE)) == 0:
                    log(f"t={s['t_s']:.0f}s rss={s['rss_mb']} MB threads={s['threads']} fds={s['fds']} "
                        f"wal={s['wal_mb']} MB events={s['events_ingested']} purged={s['events_purged']}")
                next_sample += SAMPLE
            time.sleep(min(0.5, max(0.0, next_sample - time.monotonic())))
        if lg.poll() is None:
            lg.kill()
        lg.wait()
        for th in side:
            th.join()
        samples.append(sample(server.pid, t0, data, url, key))
    finally:
        if lg is not None and lg.poll() is None:
            lg.kill()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
        lg_out.close()
        lg_err.close()
    outcomes["server_exit"] = server.returncode
    with open(work / "server.stderr", errors="replace") as f, open(out / "server-warnings.log", "w") as w, \
            open(out / "server-events.log", "w") as e:
        kept = events = 0
        for line in f:
            if kept < 500 and re.search(r"\b(WARN|ERROR)\b|panicked", line):
                w.write(re.sub(r"\x1b\[[0-9;]*m", "", line))
                kept += 1
            # Everything but the per-request lines (filter rebuilds, purge runs, migrations…),
            # to attribute what the samples show.
            elif events < 20_000 and '"message":"request"' not in line:
                e.write(re.sub(r"\x1b\[[0-9;]*m", "", line))
                events += 1
    outcomes["server_warnings"] = kept
    log("soak load done; verifying the data directory and the backup")
    v = subprocess.run([str(BIN), "verify", "--data-dir", str(data)], capture_output=True, text=True)
    outcomes["verify_rc"], outcomes["verify"] = v.returncode, (v.stdout + v.stderr).strip()[:300]
    if (work / "backup.db").exists():
        restored = work / "restored"
        r = subprocess.run([str(BIN), "restore", "--from", str(work / "backup.db"), "--data-dir", str(restored)],
                           capture_output=True, text=True)
        v = subprocess.run([str(BIN), "verify", "--data-dir", str(restored)], capture_output=True, text=True) \
            if r.returncode == 0 else r
        outcomes["backup_verify_rc"], outcomes["backup_verify"] = v.returncode, (v.stdout + v.stderr).strip()[:300]
        shutil.rmtree(restored, ignore_errors=True)
    windows = []
    for line in (out / "loadgen.results").read_text().splitlines():
        if line.startswith("RESULT "):
            j = json.loads(line[7:])
            if j.get("kind") == "soak":
                windows.append({"window": j["window"], "window_start_s": j["window_start_s"], "op": j["op"],
                                "requests": j["requests"], "events": j["events"], "errors": j["errors"],
                                "first_error": j.get("first_error"), "p50_ms": j["latency"]["p50_ms"],
                                "p99_ms": j["latency"]["p99_ms"], "max_ms": j["latency"]["max_ms"]})
    with open(out / "samples.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(samples[0].keys()) if samples else ["t_s"])
        wr.writeheader()
        wr.writerows(samples)
    with open(out / "windows.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=["window", "window_start_s", "op", "requests", "events", "errors",
                                           "first_error", "p50_ms", "p99_ms", "max_ms"])
        wr.writeheader()
        wr.writerows(windows)
    ok = report(windows, out) if samples else False
    if os.environ.get("SOAK_KEEP") != "1" and not os.environ.get("SOAK_DIR"):
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"kept {work}")
    print(f"\nsoak: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
