#!/usr/bin/env python3
"""Which b-trees a running server's recent commits wrote: parses the WAL of a live data directory.

    python3 benches/walpages.py DATA_DIR [COMMITS]

Copies trailkeep.db and its WAL (take it while a load runs, between checkpoints), reads the frame
headers of the last COMMITS commits (default 50), and maps each distinct page to its table or
index through SQLite's dbstat (the sqlite3 command-line shell replays the WAL copy). Prints the
distinct pages per commit by b-tree: what each commit's WAL frames (and fsync) are made of.
"""
import collections
import os
import shutil
import struct
import subprocess
import sys
import tempfile


def main():
    data, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50
    tmp = tempfile.mkdtemp()
    try:
        db = os.path.join(tmp, "x.db")
        shutil.copy(os.path.join(data, "trailkeep.db"), db)
        shutil.copy(os.path.join(data, "trailkeep.db-wal"), db + "-wal")
        wal = open(db + "-wal", "rb").read()
        page_size = struct.unpack(">I", wal[8:12])[0]
        salt = wal[16:24]
        commits, current, off = [], [], 32
        while off + 24 + page_size <= len(wal):
            page, db_size = struct.unpack(">II", wal[off:off + 8])
            if wal[off + 8:off + 16] != salt:
                break
            current.append(page)
            if db_size:
                commits.append(current)
                current = []
            off += 24 + page_size
        commits = commits[-n:]
        if not commits:
            sys.exit("no complete commit in the WAL (checkpointed just now?); try again under load")
        out = subprocess.run(["sqlite3", db, "SELECT pageno, name FROM dbstat"],
                             capture_output=True, text=True, check=True).stdout
        owner = {int(p): name for p, name in (line.split("|", 1) for line in out.splitlines())}
        per_tree = collections.Counter()
        for c in commits:
            for page in set(c):
                per_tree[owner.get(page, "(free list / other)")] += 1
        total = sum(len(set(c)) for c in commits)
        print(f"page size {page_size}, last {len(commits)} commits: "
              f"{total / len(commits):.1f} distinct pages per commit")
        for name, count in per_tree.most_common():
            print(f"  {name:28} {count / len(commits):6.1f}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
