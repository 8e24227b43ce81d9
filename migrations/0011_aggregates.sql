-- Pre-aggregated counts for the UI's timeline and top values (store::aggregate). Per segment of
-- 4,096 events (seq >> 12, store::SEG_SHIFT): the events per received second and outcome, and the
-- most frequent tenants, actors, actions, statuses and targets with their counts, in one encoded
-- blob. agg_all holds them over every workspace, agg_workspace per workspace (for keys limited to
-- workspaces). Derived data: a segment's rows are written once it is complete (built from the
-- stored events off the writer thread, stored by the writer), rebuilt when a purge removes content
-- from it; an aggregation counts the events of incomplete or unbuilt segments from the rows.
CREATE TABLE IF NOT EXISTS agg_all (
    seg  INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS agg_workspace (
    seg       INTEGER NOT NULL,
    workspace INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (seg, workspace)
) WITHOUT ROWID;

-- built_to: the newest segment whose rows are stored (every older segment's are too); -1 for none.
-- An existing log is aggregated in the background after this migration. (IF NOT EXISTS: a database
-- whose schema version was set back, as the upgrade tests do, keeps its summaries.)
CREATE TABLE IF NOT EXISTS agg_state (
    id       INTEGER PRIMARY KEY CHECK (id = 0),
    built_to INTEGER NOT NULL
);
INSERT OR IGNORE INTO agg_state(id, built_to) VALUES (0, -1);
