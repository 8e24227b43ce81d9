-- trailkeep schema, version 1.
-- Interned strings: principals/actors, actions, workspaces and event sources are stored once
-- and referenced by integer id, so the secondary indexes stay small.
CREATE TABLE strings (
    id    INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE
);

-- One row per event; seq is the event's position in the log (0-based, contiguous).
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    uid          BLOB    NOT NULL,          -- 16-byte event id (H2O eventId; generated for Pangea events)
    origin       INTEGER NOT NULL,          -- 0 = H2O API, 1 = Pangea API, 2 = server (self-audit)
    received_at  INTEGER NOT NULL,          -- microseconds since the epoch, strictly increasing with seq
    event_time   INTEGER NOT NULL,          -- microseconds since the epoch
    workspace    INTEGER NOT NULL REFERENCES strings(id),
    actor        INTEGER NOT NULL REFERENCES strings(id),
    action       INTEGER NOT NULL REFERENCES strings(id),
    event_source INTEGER NOT NULL REFERENCES strings(id),
    target       TEXT,
    source       TEXT,
    status       TEXT,
    status_code  INTEGER,
    read_only    INTEGER NOT NULL,
    type         INTEGER NOT NULL,
    buffer       INTEGER NOT NULL,          -- cold-tree leaf index of the buffer holding this event
    hash         BLOB    NOT NULL,          -- SHA-256 of envelope
    envelope     TEXT    NOT NULL           -- canonical JSON of the Pangea-form envelope, hashed verbatim
);
CREATE UNIQUE INDEX events_uid ON events(uid);
CREATE INDEX events_time ON events(event_time);
CREATE INDEX events_workspace_time ON events(workspace, event_time);
CREATE INDEX events_actor_time ON events(actor, event_time);
CREATE INDEX events_action_time ON events(action, event_time);

-- Free text over message, actor, action, target, metadata values and new/old.
CREATE VIRTUAL TABLE events_fts USING fts5(body, content='', detail='none');

-- Sealed buffers: buffer idx is leaf idx of the cold tree; each row is also the signed root of size idx+1.
CREATE TABLE buffers (
    idx          INTEGER PRIMARY KEY,
    first_seq    INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    workspace    INTEGER NOT NULL,
    buffer_root  BLOB    NOT NULL,
    root_hash    BLOB    NOT NULL,
    published_at INTEGER NOT NULL,
    signature    BLOB    NOT NULL
);
CREATE INDEX buffers_root_hash ON buffers(root_hash);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,            -- argon2id PHC string
    scopes       TEXT NOT NULL,            -- comma-separated
    workspaces   TEXT NOT NULL,            -- JSON array; [] = all
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
