-- The substring index's segment rows of complete groups, clustered by part (store::ngram): once
-- every segment of a group (ngram_group_state.group_segments of them) is stored, the writer moves
-- the group's rows out of ngram_parts, a few parts at a time, to ngram_clustered, keyed by group,
-- part and segment (id = ((seg / group_segments) * 256 + part) * group_segments
-- + seg % group_segments).
-- A search reading one part of consecutive segments then reads consecutive rows (a few pages)
-- rather than one 16 KiB page per segment. Derived data. Idempotent (a schema version set back
-- re-runs it).
CREATE TABLE IF NOT EXISTS ngram_clustered (
    id   INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);

-- moved: the (group, part) units moved so far, in order (unit = group * 256 + part): those below
-- it are in ngram_clustered, the others in ngram_parts. An existing log is moved in the
-- background after this migration.
CREATE TABLE IF NOT EXISTS ngram_cluster_state (
    id    INTEGER PRIMARY KEY CHECK (id = 0),
    moved INTEGER NOT NULL
);
INSERT OR IGNORE INTO ngram_cluster_state(id, moved) VALUES (0, 0);
