-- The one schema of ClockEye Webhooks. Applied at start (see `store::open`); the version is kept
-- in `PRAGMA user_version` so later releases can migrate. Times are INTEGER unix milliseconds
-- and their columns end in `_at_ms`. Public ids (`ep_…`, `evt_…`, `dlv_…`) are TEXT; rows are
-- joined on the integer `seq`, which also orders lists and backs their cursors.

-- Settings the service keeps for itself.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,  -- e.g. 'admin_token_sha256'
    value TEXT NOT NULL      -- the setting's value; never a secret in clear
) STRICT;

-- Where a workspace's events go.
CREATE TABLE IF NOT EXISTS endpoints (
    seq             INTEGER PRIMARY KEY,                           -- row order, list cursor
    id              TEXT NOT NULL UNIQUE,                          -- public id, 'ep_' + 24 hex
    workspace_id    TEXT NOT NULL,                                 -- owning workspace
    url             TEXT NOT NULL,                                 -- where attempts POST to
    secret          TEXT NOT NULL,                                 -- 'whsec_' + base64 of 32 random bytes
    event_types     TEXT NOT NULL,                                 -- JSON array of subscribed types, or ["*"]
    description     TEXT NOT NULL DEFAULT '',                      -- free text for people
    headers         TEXT NOT NULL DEFAULT '{}',                    -- JSON object of extra request headers
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)), -- 0: gets nothing; deliveries wait
    disabled_reason TEXT,                                          -- why it was disabled, NULL when enabled
    failing_since_ms INTEGER,                                      -- first failed attempt since the last success, NULL when healthy
    last_success_at_ms INTEGER,                                    -- end of the last successful attempt (to the second)
    previous_secret TEXT,                                          -- the secret before the last rotation, during its overlap
    previous_secret_expires_at_ms INTEGER,                         -- end of the rotation overlap; NULL with previous_secret
    sign_with_previous INTEGER NOT NULL DEFAULT 0 CHECK (sign_with_previous IN (0, 1)), -- X-ClockEye-Signature uses previous_secret
    rate_limit      INTEGER CHECK (rate_limit BETWEEN 1 AND 10000),  -- most attempt starts in any second; NULL: no limit
    ordering        TEXT NOT NULL DEFAULT 'none' CHECK (ordering IN ('none', 'subject')), -- 'subject': one subject's deliveries in order
    created_at_ms   INTEGER NOT NULL,                              -- creation time
    updated_at_ms   INTEGER NOT NULL,                              -- last change by the API
    deleted_at_ms   INTEGER                                        -- DELETEd then: gone from the API, gets nothing; its
                                                                   -- history is purged in batches, then the row. NULL: live
) STRICT;
CREATE INDEX IF NOT EXISTS endpoints_by_workspace ON endpoints (workspace_id);

-- Accepted events; immutable once inserted.
CREATE TABLE IF NOT EXISTS events (
    seq           INTEGER PRIMARY KEY,    -- row order, list cursor
    id            TEXT NOT NULL,          -- public id, 'evt_' + 24 hex or the client's own
    workspace_id  TEXT NOT NULL,          -- owning workspace
    type          TEXT NOT NULL,          -- catalog type, e.g. 'time_entry.created'
    created_at_ms INTEGER NOT NULL,       -- acceptance time (the body's created_at, to the second)
    body          BLOB NOT NULL,          -- the exact bytes POSTed on every attempt
    test          INTEGER NOT NULL DEFAULT 0 CHECK (test IN (0, 1)), -- 1: sent by POST /v1/endpoints/{id}/test
    subject       TEXT,                   -- what it is about: given at ingest, else '<type before dot>:<data.id>'
    -- Ids are unique per workspace (version 4 had them unique overall); id first, so the
    -- admin's lookup by id alone uses the same index.
    UNIQUE (id, workspace_id)
) STRICT;
CREATE INDEX IF NOT EXISTS events_by_workspace ON events (workspace_id, seq);
-- Retention prunes the oldest events first, through this.
CREATE INDEX IF NOT EXISTS events_by_time ON events (created_at_ms);

-- The outbox: one row per event per subscribed endpoint.
CREATE TABLE IF NOT EXISTS deliveries (
    seq                INTEGER PRIMARY KEY,                                  -- row order, list cursor
    id                 TEXT NOT NULL UNIQUE,                                 -- public id, 'dlv_' + 24 hex
    event_seq          INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    endpoint_seq       INTEGER NOT NULL REFERENCES endpoints (seq) ON DELETE CASCADE,
    -- one of model.rs `DELIVERY_STATUSES` (a test compares). The CHECKs here and on
    -- `attempts.error_class` are ORs, not `IN (…)`: SQLite builds a temporary b-tree for an IN
    -- list of more than two values on every row written, which a profile of the writer found.
    status             TEXT NOT NULL
        CHECK (status = 'pending' OR status = 'delivering' OR status = 'succeeded' OR status = 'failed'),
    attempts_made      INTEGER NOT NULL DEFAULT 0 CHECK (attempts_made >= 0), -- finished attempts
    next_attempt_at_ms INTEGER,      -- when 'pending': earliest start of the next attempt; else NULL
    created_at_ms      INTEGER NOT NULL,                                      -- when queued
    updated_at_ms      INTEGER NOT NULL,                                      -- last status change
    free_attempts      INTEGER NOT NULL DEFAULT 0, -- attempts that used no scheduled retry (secret switch after 401/403)
    free_attempt_number INTEGER,                   -- number of the last such attempt, NULL when none
    lease_expires_at_ms INTEGER,                   -- when 'delivering': the claim ends then unless renewed; else NULL
    claims             INTEGER NOT NULL DEFAULT 0, -- times claimed; a result is written only for the claim it names
    subject            TEXT,    -- the event's subject, kept only while the endpoint has ordering 'subject'
    CHECK ((status = 'pending') = (next_attempt_at_ms IS NOT NULL))
) STRICT;
-- Scheduling reads through this index only: pending rows per endpoint, by when they are due.
-- (An earlier build had `deliveries_due` on time alone.)
DROP INDEX IF EXISTS deliveries_due;
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (endpoint_seq, next_attempt_at_ms)
    WHERE status = 'pending';
-- Claims whose lease ran out (their owner died or lost them) are found through this.
CREATE INDEX IF NOT EXISTS deliveries_leased ON deliveries (lease_expires_at_ms)
    WHERE status = 'delivering';
CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries (event_seq);
-- Ordering by subject: is an earlier delivery of this subject to this endpoint unfinished?
CREATE INDEX IF NOT EXISTS deliveries_unfinished_by_subject ON deliveries (endpoint_seq, subject, seq)
    WHERE subject IS NOT NULL AND status IN ('pending', 'delivering');
CREATE INDEX IF NOT EXISTS deliveries_by_endpoint ON deliveries (endpoint_seq, seq);

-- One POST of a delivery.
CREATE TABLE IF NOT EXISTS attempts (
    seq              INTEGER PRIMARY KEY,
    delivery_seq     INTEGER NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
    number           INTEGER NOT NULL CHECK (number >= 1),   -- 1-based, as in X-ClockEye-Attempt
    started_at_ms    INTEGER NOT NULL,                       -- when the attempt began
    duration_ms      INTEGER NOT NULL CHECK (duration_ms >= 0),
    status_code      INTEGER,                                -- HTTP status, NULL when none came back
    -- one of model.rs `ErrorClass::ALL` (a test compares), NULL on success
    error_class      TEXT CHECK (error_class = 'timeout' OR error_class = 'connect'
                                 OR error_class = 'dns' OR error_class = 'tls'
                                 OR error_class = 'redirect' OR error_class = 'http_status'
                                 OR error_class = 'blocked_address'),
    error_message    TEXT,                                   -- one line for people, NULL on success
    response_excerpt TEXT                                    -- first 4 KiB of the response body
) STRICT;
CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts (delivery_seq, number);

-- Workspace tokens: bearer tokens that see and change one workspace only. Only a hash is kept.
CREATE TABLE IF NOT EXISTS tokens (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,   -- public id, 'tok_' + 24 hex
    workspace_id    TEXT NOT NULL,          -- the one workspace it opens
    token_sha256    TEXT NOT NULL UNIQUE,   -- lowercase hex SHA-256 of the token
    description     TEXT NOT NULL DEFAULT '',
    created_at_ms   INTEGER NOT NULL,
    last_used_at_ms INTEGER,                -- to the minute; NULL when never used
    expires_at_ms   INTEGER                 -- portal sessions end; NULL: until revoked
) STRICT;
CREATE INDEX IF NOT EXISTS tokens_by_workspace ON tokens (workspace_id, seq);

-- Portal link codes: single-use, short-lived; exchanged for a portal session token. Only a
-- hash is kept, and a code is deleted when used.
CREATE TABLE IF NOT EXISTS portal_codes (
    code_sha256   TEXT PRIMARY KEY,         -- lowercase hex SHA-256 of the code
    workspace_id  TEXT NOT NULL,            -- the workspace its session opens
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL          -- unusable from then on
) STRICT;

PRAGMA user_version = 8;
