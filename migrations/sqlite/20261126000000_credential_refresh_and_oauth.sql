-- Expiring credentials and the OAuth connect flow (SQLite; the PostgreSQL file is identical).
--
-- accounts: when the stored credentials expire, when they were last obtained, and when the
-- refresh scheduler should renew them (computed by the gateway from the platform's refresh
-- policy; NULL for credentials that do not expire).
-- oauth_states: one row per started OAuth connect flow, consumed by its callback (single use)
-- or expired; the PKCE verifier is a secret, encrypted by the store's cipher.

ALTER TABLE accounts ADD COLUMN credentials_expires_at BIGINT;
ALTER TABLE accounts ADD COLUMN credentials_refreshed_at BIGINT;
ALTER TABLE accounts ADD COLUMN refresh_due_at BIGINT;
CREATE INDEX accounts_refresh_due ON accounts (refresh_due_at)
    WHERE refresh_due_at IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE oauth_states (
    state         TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    platform      TEXT NOT NULL,
    redirect_url  TEXT NOT NULL,
    code_verifier TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);
