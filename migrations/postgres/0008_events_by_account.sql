-- A watcher of one account resuming from an old revision reads that account's events
-- (and its own account's) through this index, not every tenant's.
CREATE INDEX invalidation_events_by_account ON invalidation_events (account_id, revision);
