#!/usr/bin/env python3
"""How many candidates the substring index leaves per query kind, against the true matches, and
how many per-posting place bits or 4-gram lists would leave: reads the stored texts of a few
segments of a data directory (read-only) and simulates the index in memory (BENCHMARKS.md,
"Where a substring search spends its time").

    python3 benches/substring_candidates.py DATA_DIR [SEGMENTS [QUERIES]]
    python3 benches/substring_candidates.py DATA_DIR 1200,1201,1202,1203 nyrupo,peneda,finyru

SEGMENTS are 4,096-event segments (`seq >> 12`) of a `loadgen` log. Per kind (absent terms of the
generator's syllables, bare words, two words, 8-character actor substrings; 40 queries each,
drawn from the segments' own texts as `loadgen` draws them; then the QUERIES given, each on its
own) it prints the candidates summed over the queries for

* `tri`: trigram posting lists (trailkeep's index: an event is a candidate when it holds every
  trigram of the term somewhere in its searchable texts);
* `next8`: plus, per posting of a sparse list, 8 bits of the characters that follow the trigram;
* `pos8`: plus 8 bits of the positions (mod 8) where the trigram starts;
* `n4p4`: plus 4 bits of each;
* `four`: plus posting lists of the 4-grams one of whose trigrams is dense (a bitmap) in the
  segment: a term's 4-gram with a dense half must be in the event;
* `match`: the events that hold the term (what the exact check keeps),

and the five queries with the most candidates. A list is a bitmap (no bits) where its varint gaps
take more than 512 bytes, as in `search::ngram`. Bare terms search the searchable texts of
`store::ngram::indexed_texts`.
"""
import collections
import json
import random
import sqlite3
import sys

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "zu", "ri", "qu", "wa", "ly", "ny"]
ENCODINGS = ["tri", "next8", "pos8", "n4p4", "four", "match"]


def texts_of(row):
    out = list(row[:6])
    try:
        event = json.loads(row[6])["event"]
    except (ValueError, KeyError, TypeError):
        event = {}
    for field in ["message", "new", "old", "timestamp"]:
        v = event.get(field)
        if v is None:
            continue
        if isinstance(v, bool):
            out.append("1" if v else "0")
        elif isinstance(v, (str, int, float)):
            out.append(str(v))
        else:
            out.append(json.dumps(v, separators=(",", ":"), sort_keys=True))
    return [t for t in out if t]


def h8(ch):
    return ((ord(ch) * 0x9E3779B1) & 0xFFFFFFFF) >> 29


def gap_bytes(events):
    """The bytes of a posting list's varint gaps: `search::ngram` stores the list as a tag and the
    gaps, or as a tag and a 512-byte bitmap (a dense list) when the gaps take more."""
    prev, size = 0, 0
    for j, e in enumerate(sorted(events)):
        gap = e if j == 0 else e - prev
        prev = e
        size += 1 if gap < 128 else 2
    return size


def load_segment(conn, seg):
    rows = conn.execute(
        "SELECT (SELECT value FROM strings WHERE id = e.actor), (SELECT value FROM strings WHERE id = e.action),"
        " (SELECT value FROM strings WHERE id = e.workspace), target, source, status, envelope"
        " FROM events e WHERE seq >> 12 = ? AND purged_at IS NULL ORDER BY seq",
        (seg,),
    ).fetchall()
    inv = collections.defaultdict(dict)  # trigram -> {event: [pos8, next8, n4p4]}
    texts = []
    for i, row in enumerate(rows):
        ts = texts_of(row)
        texts.append(ts)
        for t in ts:
            for p in range(len(t) - 2):
                m = inv[t[p:p + 3]].setdefault(i, [0, 0, 0])
                m[0] |= 1 << (p % 8)
                m[2] |= 1 << (p % 4)
                if p + 3 < len(t):
                    nb = h8(t[p + 3])
                    m[1] |= 1 << nb
                    m[2] |= 1 << (4 + nb % 4)
    dense = {k for k, d in inv.items() if len(d) > 256 and gap_bytes(d) > 512}
    four = collections.defaultdict(set)
    for i, ts in enumerate(texts):
        for t in ts:
            for p in range(len(t) - 3):
                if t[p:p + 3] in dense or t[p + 1:p + 4] in dense:
                    four[t[p:p + 4]].add(i)
    return inv, dense, texts, four


def candidates(seg, term, enc):
    inv, dense, _, four = seg
    grams = [(term[i:i + 3], i, term[i + 3] if i + 3 < len(term) else None) for i in range(len(term) - 2)]
    if not grams:
        return None
    lists = []
    for k, i, nx in grams:
        d = inv.get(k)
        if not d:
            return set()
        lists.append((k, i, nx, d))
    events = set(lists[0][3]).intersection(*[set(x[3]) for x in lists[1:]])
    if enc == "tri":
        return events
    if enc == "four":
        for p in range(len(term) - 3):
            if term[p:p + 3] in dense or term[p + 1:p + 4] in dense:
                events &= four.get(term[p:p + 4], set())
        return events
    out = set()
    for e in events:
        ok = True
        if enc in ("next8", "n4p4"):
            for k, _, nx, d in lists:
                if nx is None or k in dense:
                    continue
                bit = 1 << h8(nx) if enc == "next8" else 1 << (4 + h8(nx) % 4)
                if not d[e][1 if enc == "next8" else 2] & bit:
                    ok = False
                    break
        if ok and enc in ("pos8", "n4p4"):
            mod = 8 if enc == "pos8" else 4
            starts = (1 << mod) - 1
            for k, i, _, d in lists:
                if k in dense:
                    continue
                m = d[e][0] if enc == "pos8" else d[e][2] & 0xF
                r = i % mod
                starts &= ((m >> r) | (m << (mod - r))) & ((1 << mod) - 1)
                if not starts:
                    ok = False
                    break
        if ok:
            out.add(e)
    return out


def run(segs, name, queries):
    total = collections.Counter()
    per = collections.defaultdict(list)
    for q in queries:
        terms = q.split()
        for enc in ENCODINGS:
            n = 0
            for seg in segs:
                if enc == "match":
                    n += sum(1 for ts in seg[2] if all(any(t in x for x in ts) for t in terms))
                    continue
                acc = None
                for t in terms:
                    c = candidates(seg, t, enc)
                    if c is not None:
                        acc = c if acc is None else acc & c
                n += len(acc) if acc is not None else len(seg[2])
            total[enc] += n
            per[enc].append((n, q))
    print(f"{name}: " + ", ".join(f"{e} {total[e]}" for e in ENCODINGS))
    for enc in ENCODINGS:
        print(f"  {enc} most: " + ", ".join(f"{q!r} {n}" for n, q in sorted(per[enc])[-5:]))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    segments = [int(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [1200, 1201, 1202, 1203]
    conn = sqlite3.connect(f"file:{sys.argv[1]}/trailkeep.db?mode=ro", uri=True)
    segs = [load_segment(conn, s) for s in segments]
    print(f"{sum(len(s[2]) for s in segs)} events in segments {segments}")
    for name, count in [("dense trigrams", lambda s: len(s[1])), ("4-gram lists", lambda s: len(s[3]))]:
        print(f"{name} per segment: {[count(s) for s in segs]}")
    # Each list also takes ~3 bytes of the row's directory (key gap and length).
    size = sum(1 + min(gap_bytes(evs), 512) + 3 for _, _, _, four in segs for evs in four.values())
    print(f"4-gram lists (`four`): {size / sum(len(s[2]) for s in segs):.1f} bytes/event encoded")
    words = collections.Counter()
    actors = set()
    for _, _, texts, _ in segs:
        for ts in texts:
            actors.add(ts[0])
    for (env,) in conn.execute("SELECT envelope FROM events WHERE seq >> 12 = ?", (segments[0],)):
        try:
            message = json.loads(env)["event"].get("message", "")
        except (ValueError, KeyError, TypeError, AttributeError):
            message = ""
        words.update(w for w in str(message).split() if w.isalpha())
    ranked = [w for w, _ in words.most_common()]
    rng = random.Random(7)
    absent = []
    while len(absent) < 40:
        cand = "".join(rng.choice(SYLLABLES) for _ in range(3))
        if not any(cand in w for w in ranked) and cand not in absent:
            absent.append(cand)
    run(segs, "absent term", absent)
    run(segs, "bare word", [rng.choice(ranked[:1000]) for _ in range(40)])
    run(segs, "two words", [f"{rng.choice(ranked[:20])} {rng.choice(ranked[20:200])}" for _ in range(40)])
    pieces = []
    for a in rng.sample(sorted(actors), 40):
        a = a.split("/", 1)[-1]
        s = rng.randrange(max(1, len(a) - 7))
        pieces.append(a[s:s + 8])
    run(segs, "actor substring", pieces)
    for q in sys.argv[3].split(",") if len(sys.argv) > 3 else []:
        run(segs, repr(q), [q])


if __name__ == "__main__":
    main()
