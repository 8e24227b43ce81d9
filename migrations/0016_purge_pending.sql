-- Purged rows not yet declared by a purge event (store::retention): a purge run clears rows in
-- many short transactions and adds each one's rows here, per workspace; at the end of the run (or
-- at the next start, after a crash) one purge event per workspace declares them all and the rows
-- here are deleted, in one transaction. `trailkeep verify` counts a row purged but still pending
-- as declared (and says how many are).
CREATE TABLE IF NOT EXISTS purge_pending (
    workspace TEXT PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    -- µs: the latest cutoff of the batches (every row was received before it), and the period.
    cutoff    INTEGER NOT NULL,
    period    INTEGER NOT NULL
) WITHOUT ROWID;
