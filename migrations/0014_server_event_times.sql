-- The server's own events (origin 2: the self-audit of H2O searches, key and config changes,
-- purges, verifications) carry the wall clock as their event time, which can lie far from the
-- times clients send (a backfill of last year's events, a generator's synthetic clock). In a
-- segment's event-time range they widened every segment they landed in up to "now", and a
-- newest-first H2O search (store::search::segmented_search) could then rule no segment out.
-- From this version `segments` holds the range of a segment's client events only, and the
-- server's events are found through partial indexes of their own, one per clustered column.
CREATE INDEX IF NOT EXISTS events_server_actor ON events(actor, event_time) WHERE origin = 2;
CREATE INDEX IF NOT EXISTS events_server_workspace ON events(workspace, event_time) WHERE origin = 2;
CREATE INDEX IF NOT EXISTS events_server_action ON events(action, event_time) WHERE origin = 2;

-- The ranges of the segments that hold server events, again without them (a segment of server
-- events only has no range).
CREATE TEMP TABLE server_segments AS SELECT DISTINCT seq >> 12 AS seg FROM events WHERE origin = 2;
DELETE FROM segments WHERE seg IN (SELECT seg FROM server_segments);
INSERT INTO segments(seg, min_event_time, max_event_time)
    SELECT s.seg, MIN(e.event_time), MAX(e.event_time)
    FROM server_segments s JOIN events e ON e.seq >= s.seg << 12 AND e.seq < (s.seg + 1) << 12
    WHERE e.origin != 2
    GROUP BY s.seg;
DROP TABLE server_segments;
