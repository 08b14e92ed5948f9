-- The secrets a reset replaced, by hash only, for as long as their token exists: a leak
-- report of a replaced secret still revokes its token (whoever held the leaked secret could
-- have reset the token to a secret of their own first).
CREATE TABLE retired_secrets (
    hash       BLOB    PRIMARY KEY,
    token_id   TEXT    NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    retired_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX retired_secrets_by_token ON retired_secrets (token_id);
