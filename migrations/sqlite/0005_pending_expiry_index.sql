-- The partial index of secrets whose grace-period end is not yet announced, with its condition
-- spelled as PostgreSQL's (`NOT expiry_announced`): SQLite uses a partial index only for a
-- query whose WHERE clause contains the index's condition as written, and the store's SQL is
-- now one text for both databases.
DROP INDEX token_secrets_pending_expiry;
CREATE INDEX token_secrets_pending_expiry ON token_secrets (expires_at) WHERE NOT expiry_announced;
