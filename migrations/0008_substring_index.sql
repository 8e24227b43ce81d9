-- The substring index (store::ngram): per segment of 4,096 events (seq >> 12), the trigrams of
-- every event's searchable texts with the events that hold each one, spread over 256 rows by a
-- hash of the trigram (id = seg << 8 | part; search::ngram::encode_part gives a row's layout).
-- Pangea substring terms of three or more characters read it to find candidate events, which
-- the search then checks exactly. Derived data: a segment's rows are written once the segment is
-- complete, and rebuilt from the events when a purge removes content from it. Idempotent (a
-- schema version set back re-runs it).
CREATE TABLE IF NOT EXISTS ngram_parts (
    id   INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);

-- indexed_to: the newest seq whose segment's rows are stored (every older segment's are too);
-- searches check the events above it without the index. An existing log is indexed in the
-- background after this migration.
CREATE TABLE IF NOT EXISTS ngram_state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    indexed_to INTEGER NOT NULL
);
INSERT OR IGNORE INTO ngram_state(id, indexed_to) VALUES (0, -1);
