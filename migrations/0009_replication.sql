-- Replication to object storage (replication::uploader). One row per target URL (never holding
-- credentials): everything below next_leaf / next_seq is in the target, confirmed; the object
-- [next_leaf, pending_last] was planned and may be in flight: after a crash it is uploaded
-- again under the same key with the same bytes before anything else. Written by the replication
-- thread in one-row transactions of its own (not a log table); read by the retention purge,
-- which by default never removes the content of an event at or above next_seq. IF NOT EXISTS:
-- harmless to run again on a database whose schema version was set back.
CREATE TABLE IF NOT EXISTS replication (
    target       TEXT PRIMARY KEY,
    next_leaf    INTEGER NOT NULL,
    next_seq     INTEGER NOT NULL,
    pending_last INTEGER,
    objects      INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
