-- Free-text rows are written in batches rather than in every commit (store::writer): FTS5 flushes
-- a new segment at every COMMIT and merges segments as they pile up, which cost a commit of ~16
-- single events more than its row inserts. indexed_to is the newest seq whose events_fts row is
-- stored; every older event's row is too. Searches that use full text see events up to it (a
-- search first asks the writer to index what is pending), and the writer indexes events above it
-- again when it starts (after a crash, their rows were only in memory).
CREATE TABLE fts_state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    indexed_to INTEGER NOT NULL
);
INSERT INTO fts_state(id, indexed_to) SELECT 0, COALESCE(MAX(seq), -1) FROM events;
