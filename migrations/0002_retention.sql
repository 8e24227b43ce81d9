-- Retention: when an event's content is purged, its envelope becomes '' and its content columns
-- are cleared, while seq, hash, buffer, workspace and times stay (the log and its proofs are
-- unchanged). purged_at (µs) marks such rows; each purge is also logged as an event.
ALTER TABLE events ADD COLUMN purged_at INTEGER;
