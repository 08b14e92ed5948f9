-- The token authority's schema on PostgreSQL. Times are bigint microseconds since the Unix
-- epoch (as on SQLite, so both stores share their row types); lists and maps are JSON text.
-- Secrets are stored only as SHA-256 hashes.

CREATE TABLE accounts (
    id                 TEXT    PRIMARY KEY,
    display_name       TEXT    NOT NULL,
    api_access_enabled BOOLEAN NOT NULL,
    operator           BOOLEAN NOT NULL,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    version            BIGINT  NOT NULL
);
-- There is exactly one operator (bootstrap) account.
CREATE UNIQUE INDEX accounts_one_operator ON accounts (operator) WHERE operator;

CREATE TABLE principals (
    id           TEXT    PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES accounts (id),
    kind         TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    permissions  TEXT    NOT NULL,
    disabled     BOOLEAN NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    version      BIGINT  NOT NULL
);
CREATE INDEX principals_by_account ON principals (account_id, created_at, id);

CREATE TABLE tokens (
    id                         TEXT   PRIMARY KEY,
    account_id                 TEXT   NOT NULL REFERENCES accounts (id),
    owner_id                   TEXT   NOT NULL REFERENCES principals (id),
    name                       TEXT   NOT NULL,
    description                TEXT   NOT NULL,
    scopes                     TEXT   NOT NULL,
    labels                     TEXT   NOT NULL,
    api_version                TEXT   NOT NULL,
    state                      TEXT   NOT NULL CHECK (state IN ('active', 'disabled', 'revoked')),
    created_at                 BIGINT NOT NULL,
    created_by                 TEXT   NOT NULL,
    updated_at                 BIGINT NOT NULL,
    expires_at                 BIGINT,
    last_used_at               BIGINT,
    revoked_at                 BIGINT,
    revoked_by                 TEXT,
    revoke_reason              TEXT,
    display_hint               TEXT   NOT NULL,
    previous_secret_expires_at BIGINT,
    version                    BIGINT NOT NULL
);
CREATE INDEX tokens_by_account ON tokens (account_id, created_at, id);
CREATE INDEX tokens_by_owner ON tokens (owner_id);

-- The secrets that currently open a token: the current one (expires_at NULL) and, after a
-- reset with a grace period, the previous one until its expires_at (announced once ended).
CREATE TABLE token_secrets (
    hash             BYTEA   PRIMARY KEY,
    token_id         TEXT    NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    expires_at       BIGINT,
    expiry_announced BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX token_secrets_by_token ON token_secrets (token_id);
CREATE INDEX token_secrets_pending_expiry ON token_secrets (expires_at) WHERE NOT expiry_announced;

-- The outbox: one row per change that can alter a verification answer, written in the
-- same transaction as the change. Writers hold an advisory lock from taking a revision until
-- they commit, so revisions become visible in order and a reader never skips one.
CREATE TABLE invalidation_events (
    revision     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         TEXT   NOT NULL,
    account_id   TEXT   NOT NULL,
    token_id     TEXT,
    principal_id TEXT,
    occurred_at  BIGINT NOT NULL
);
CREATE INDEX invalidation_events_by_time ON invalidation_events (occurred_at);

-- Kept when the objects it names are deleted.
CREATE TABLE audit_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     TEXT   NOT NULL,
    actor_id       TEXT,
    actor_token_id TEXT,
    action         TEXT   NOT NULL,
    target_type    TEXT   NOT NULL,
    target_id      TEXT   NOT NULL,
    peer_address   TEXT,
    details        TEXT   NOT NULL,
    occurred_at    BIGINT NOT NULL
);
CREATE INDEX audit_events_by_account ON audit_events (account_id, id);

CREATE TABLE settings (
    key   TEXT  PRIMARY KEY,
    value BYTEA NOT NULL
);
