-- Audit configs (Pangea's audit service configurations): several per server, each with its own
-- event schema (an AuditSchema) and signing mode. Every event belongs to one config; all configs
-- share the one log. Config 0 is the default config (Pangea's standard schema); H2O events and
-- the server's own events always belong to it, and every event stored before this migration does.
CREATE TABLE audit_configs (
    num             INTEGER PRIMARY KEY,           -- stored on events (events.config); 0 = default
    id              TEXT    NOT NULL UNIQUE,       -- pci_ + 32 [a-z0-9]
    name            TEXT    NOT NULL,
    schema          TEXT    NOT NULL,              -- the AuditSchema, canonical JSON
    signing         TEXT    NOT NULL DEFAULT 'none', -- 'none' | 'server'
    signing_key     TEXT,                          -- key-store name of the event-signing key
    signing_version INTEGER,                       -- its newest version
    created_at      INTEGER NOT NULL,              -- µs
    updated_at      INTEGER NOT NULL,              -- µs
    revision        INTEGER NOT NULL DEFAULT 1,    -- +1 on every schema change; the writer stores an
                                                   -- event only under the revision it was validated by
    events          INTEGER NOT NULL DEFAULT 0     -- events stored, counted by the writer in the same
                                                   -- transaction (a config holding events is never deleted)
);

-- Custom fields kept for search: `no` is what event_fields.field holds. Standard fields (actor,
-- action, target, source, status, tenant_id, timestamp, message, new, old with their standard
-- types) use the events columns and the envelope instead; text and string-unindexed fields are
-- read from the envelope.
CREATE TABLE config_fields (
    no     INTEGER PRIMARY KEY,
    config INTEGER NOT NULL,
    id     TEXT    NOT NULL,
    type   TEXT    NOT NULL,
    UNIQUE (config, id)
);

-- One row per event and custom field: integers, booleans (0/1) and datetimes (µs) as INTEGER,
-- strings as TEXT. The value index leads with the segment (seq >> 12, store::SEG_SHIFT), so a
-- commit inserts into the newest segment's small slice; searches visit the segments of their
-- window, newest first. Purged events lose their rows.
CREATE TABLE event_fields (
    seq   INTEGER NOT NULL,
    field INTEGER NOT NULL,
    value,
    PRIMARY KEY (seq, field)
) WITHOUT ROWID;
CREATE INDEX event_fields_seg_value ON event_fields(seq >> 12, field, value);

-- Bumped by every change to a config or its signing key (CLI or server), so that a running server
-- reloads its config cache.
CREATE TABLE config_state (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    version INTEGER NOT NULL
);
INSERT INTO config_state(id, version) VALUES (0, 1);

ALTER TABLE events ADD COLUMN config INTEGER NOT NULL DEFAULT 0;
-- Config ids a key is bound to (JSON array); [] = the default config.
ALTER TABLE api_keys ADD COLUMN configs TEXT NOT NULL DEFAULT '[]';

INSERT INTO audit_configs(num, id, name, schema, created_at, updated_at, events)
VALUES (
    0,
    'pci_' || lower(hex(randomblob(16))),
    'default',
    '{"client_signable":true,"fields":[{"id":"timestamp","name":"Timestamp","type":"datetime","ui_default_visible":true},{"id":"actor","name":"Actor","size":128,"type":"string","ui_default_visible":true},{"id":"action","name":"Action","size":32,"type":"string","ui_default_visible":true},{"id":"status","name":"Status","size":32,"type":"string","ui_default_visible":true},{"id":"source","name":"Source","size":128,"type":"string","ui_default_visible":false},{"id":"target","name":"Target","size":128,"type":"string","ui_default_visible":true},{"id":"tenant_id","name":"Tenant ID","size":128,"type":"string","ui_default_visible":false},{"id":"message","name":"Message","required":true,"type":"text","ui_default_visible":true},{"id":"new","name":"New","type":"text","ui_default_visible":false},{"id":"old","name":"Old","type":"text","ui_default_visible":false}],"save_malformed":"reject","tamper_proofing":true}',
    CAST(unixepoch('subsec') * 1000000 AS INTEGER),
    CAST(unixepoch('subsec') * 1000000 AS INTEGER),
    (SELECT COUNT(*) FROM events)
);
