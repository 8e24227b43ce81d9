-- The PostgreSQL baseline: a hand-made audit table equivalent to trailkeep's schema
-- (migrations/0001_init.sql), with the same secondary indexes and pg_trgm GIN indexes in place of
-- FTS5 (free text) and of the regexp scans (resource). Strings are stored inline (no interning),
-- as a hand-made table would; times are integer microseconds like trailkeep's.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
DROP TABLE IF EXISTS events;
CREATE TABLE events (
    seq          bigserial PRIMARY KEY,
    uid          uuid     NOT NULL,
    origin       smallint NOT NULL,
    received_at  bigint   NOT NULL,
    event_time   bigint   NOT NULL,
    workspace    text     NOT NULL,
    actor        text     NOT NULL,
    action       text     NOT NULL,
    event_source text     NOT NULL,
    target       text,
    source       text,
    status       text,
    status_code  integer,
    read_only    boolean  NOT NULL,
    type         smallint NOT NULL,
    hash         bytea    NOT NULL,
    body         text     NOT NULL,   -- the free text trailkeep puts in FTS5
    envelope     text     NOT NULL    -- canonical JSON of the envelope
);
CREATE UNIQUE INDEX events_uid ON events (uid);
CREATE INDEX events_time ON events (event_time);
CREATE INDEX events_workspace_time ON events (workspace, event_time);
CREATE INDEX events_actor_time ON events (actor, event_time);
CREATE INDEX events_action_time ON events (action, event_time);
CREATE INDEX events_body_trgm ON events USING gin (body gin_trgm_ops);
CREATE INDEX events_target_trgm ON events USING gin (target gin_trgm_ops);
