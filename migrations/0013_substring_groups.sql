-- The substring index's coarse layer (store::ngram): per group of group_segments consecutive
-- segments (64: 262,144 events), one row per part (id = group << 8 | part, the part of
-- ngram_parts) in the segment rows' encoding whose members are the group's segments: for a
-- trigram, the segments of the group whose rows hold it. A search evaluates its condition over
-- the groups first and reads the rows of the segments that may match only. Derived data, built
-- by the indexer thread from the stored segment rows (the group in progress again every eighth
-- of a group; an existing log gets its groups in the background after this migration). A purge
-- leaves the groups as they are: a segment listed for a trigram it no longer holds only costs
-- the reading of its row. Idempotent (a schema version set back re-runs it).
CREATE TABLE IF NOT EXISTS ngram_groups (
    id   INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);

-- grouped_to: the newest segment the stored group rows cover (every older one is covered too;
-- -1: none).
CREATE TABLE IF NOT EXISTS ngram_group_state (
    id             INTEGER PRIMARY KEY CHECK (id = 0),
    group_segments INTEGER NOT NULL,
    grouped_to     INTEGER NOT NULL
);
INSERT OR IGNORE INTO ngram_group_state(id, group_segments, grouped_to) VALUES (0, 64, -1);
