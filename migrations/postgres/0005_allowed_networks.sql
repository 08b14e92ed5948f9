-- Client-address allowlists: the networks (CIDRs, as a JSON array of text) a token may be
-- used from; empty: anywhere, as every token before this migration.
ALTER TABLE tokens ADD COLUMN allowed_networks TEXT NOT NULL DEFAULT '[]';
