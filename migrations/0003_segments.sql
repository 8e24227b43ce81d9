-- Segment-clustered secondary indexes. The log is cut into segments of 65,536 events
-- (seg = seq >> 16, see store::SEG_SHIFT). The interned-column indexes lead with the segment, so
-- a commit only inserts into the newest segment's small slice of each index (a few pages) instead
-- of one random leaf per event across the whole index; searches on these columns visit the
-- segments whose event-time range overlaps the window, newest first (store::search).
DROP INDEX events_workspace_time;
DROP INDEX events_actor_time;
DROP INDEX events_action_time;
CREATE INDEX events_seg_workspace ON events(seq >> 16, workspace, event_time);
CREATE INDEX events_seg_actor ON events(seq >> 16, actor, event_time);
CREATE INDEX events_seg_action ON events(seq >> 16, action, event_time);

-- Root hash → tree size lookups probe each buffer segment (idx >> 16) in turn.
DROP INDEX buffers_root_hash;
CREATE INDEX buffers_seg_root ON buffers(idx >> 16, root_hash);

-- Event-time range of each segment, kept by the writer in the same transaction as the events.
CREATE TABLE segments (
    seg            INTEGER PRIMARY KEY,
    min_event_time INTEGER NOT NULL,
    max_event_time INTEGER NOT NULL
);
INSERT INTO segments(seg, min_event_time, max_event_time)
    SELECT seq >> 16, MIN(event_time), MAX(event_time) FROM events GROUP BY seq >> 16;
