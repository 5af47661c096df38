-- The initial schema, SQLite dialect.
--
-- Kept in step with migrations/postgres/20261125000000_initial.sql: the same tables, columns,
-- constraints and indexes in the same order. Only the types differ: booleans are INTEGER 0/1
-- here and BOOLEAN there; raw payloads are BLOB here and BYTEA there.
-- Conventions: ids are prefixed TEXT; every instant is BIGINT unix milliseconds; JSON is TEXT;
-- secrets are TEXT written by the store's cipher (`v1:` + base64(nonce || ciphertext)).

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    key_prefix   TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id);

CREATE TABLE accounts (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    platform            TEXT NOT NULL,
    platform_account_id TEXT NOT NULL,
    name                TEXT NOT NULL,
    username            TEXT,
    status              TEXT NOT NULL,
    credentials         TEXT,
    inbound_secret      TEXT,
    poll_cursor         TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    deleted_at          BIGINT
);
-- A platform account is connected in at most one workspace at a time; a deleted row stays with
-- its workspace (and its history) so reconnecting there revives it.
CREATE UNIQUE INDEX accounts_platform_account ON accounts (platform, platform_account_id)
    WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX accounts_workspace_platform_account
    ON accounts (workspace_id, platform, platform_account_id);
CREATE INDEX accounts_workspace_created ON accounts (workspace_id, created_at, id);

CREATE TABLE conversations (
    id                       TEXT PRIMARY KEY,
    workspace_id             TEXT NOT NULL REFERENCES workspaces (id),
    account_id               TEXT NOT NULL REFERENCES accounts (id),
    platform                 TEXT NOT NULL,
    platform_conversation_id TEXT NOT NULL,
    participant              TEXT NOT NULL,
    last_message             TEXT,
    last_message_at          BIGINT,
    last_inbound_at          BIGINT,
    activity_at              BIGINT NOT NULL,
    status                   TEXT NOT NULL,
    unread_count             BIGINT NOT NULL DEFAULT 0,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL,
    UNIQUE (account_id, platform_conversation_id)
);
CREATE INDEX conversations_workspace_activity ON conversations (workspace_id, activity_at, id);
CREATE INDEX conversations_account_activity ON conversations (account_id, activity_at, id);

CREATE TABLE messages (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id),
    conversation_id     TEXT NOT NULL REFERENCES conversations (id),
    account_id          TEXT NOT NULL REFERENCES accounts (id),
    platform            TEXT NOT NULL,
    direction           TEXT NOT NULL,
    text                TEXT NOT NULL,
    attachments         TEXT NOT NULL,
    sender              TEXT NOT NULL,
    sent_at             BIGINT NOT NULL,
    platform_message_id TEXT NOT NULL,
    reply_to            TEXT,
    delivery_status     TEXT,
    is_edited           INTEGER NOT NULL DEFAULT 0,
    is_deleted          INTEGER NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (account_id, platform_message_id)
);
CREATE INDEX messages_conversation_sent ON messages (conversation_id, sent_at, id);

CREATE TABLE events (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    account_id   TEXT,
    event_type   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX events_workspace_created ON events (workspace_id, created_at, id);

CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY,
    workspace_id               TEXT NOT NULL REFERENCES workspaces (id),
    url                        TEXT NOT NULL,
    events                     TEXT NOT NULL,
    description                TEXT NOT NULL,
    enabled                    INTEGER NOT NULL,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at BIGINT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL,
    deleted_at                 BIGINT
);
CREATE INDEX webhook_endpoints_workspace_created
    ON webhook_endpoints (workspace_id, created_at, id);

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_id        TEXT NOT NULL REFERENCES events (id),
    event_type      TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt_count   BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    one_shot        INTEGER NOT NULL DEFAULT 0,
    locked_by       TEXT,
    locked_until    BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_endpoint_created ON deliveries (endpoint_id, created_at, id);

CREATE TABLE delivery_attempts (
    delivery_id    TEXT NOT NULL REFERENCES deliveries (id),
    attempt_number BIGINT NOT NULL,
    attempted_at   BIGINT NOT NULL,
    status_code    BIGINT,
    error          TEXT,
    duration_ms    BIGINT NOT NULL,
    response_body  TEXT,
    PRIMARY KEY (delivery_id, attempt_number)
);

CREATE TABLE raw_events (
    id           TEXT PRIMARY KEY,
    platform     TEXT NOT NULL,
    account_id   TEXT,
    payload      BLOB NOT NULL,
    received_at  BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    locked_by    TEXT,
    locked_until BIGINT,
    processed_at BIGINT,
    error        TEXT
);
CREATE INDEX raw_events_unprocessed ON raw_events (received_at, id) WHERE processed_at IS NULL;

CREATE TABLE idempotency_keys (
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    state           TEXT NOT NULL,
    response_status BIGINT,
    response_body   TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
