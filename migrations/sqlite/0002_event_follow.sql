-- Secrets whose grace period has ended are announced once, by an invalidation event written
-- in the same transaction that sets expiry_announced; the row stays so that the old secret
-- keeps answering EXPIRED rather than NOT_FOUND.
ALTER TABLE token_secrets ADD COLUMN expiry_announced INTEGER NOT NULL DEFAULT 0;
CREATE INDEX token_secrets_pending_expiry ON token_secrets (expires_at) WHERE expiry_announced = 0;

-- Pruning by age.
CREATE INDEX invalidation_events_by_time ON invalidation_events (occurred_at);
