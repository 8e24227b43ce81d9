-- Segments of 4,096 events (store::SEG_SHIFT = 12, was 16) and the event-id index clustered by
-- segment. A single-event commit of ~16 events wrote ~78 pages of 16 KiB, 62 of them random leaves
-- of four indexes: the event id (H2O clients send random v4 ids) and the slices of the workspace,
-- actor and action indexes (a 65,536-event segment's slice spans ~80 pages). A 4,096-event slice
-- spans a handful of pages. Duplicate ids are found through an in-memory filter of every stored id
-- (store::uidfilter), confirmed by probing the id index segment by segment, newest first.
DROP INDEX events_uid;
DROP INDEX events_seg_workspace;
DROP INDEX events_seg_actor;
DROP INDEX events_seg_action;
CREATE INDEX events_seg_uid ON events(seq >> 12, uid);
CREATE INDEX events_seg_workspace ON events(seq >> 12, workspace, event_time);
CREATE INDEX events_seg_actor ON events(seq >> 12, actor, event_time);
CREATE INDEX events_seg_action ON events(seq >> 12, action, event_time);
DELETE FROM segments;
INSERT INTO segments(seg, min_event_time, max_event_time)
    SELECT seq >> 12, MIN(event_time), MAX(event_time) FROM events GROUP BY seq >> 12;
