-- Account token policies: the limits every token of an account must keep when it is created,
-- changed, duplicated or reset. NULL and '[]' limit nothing, as for every account before this
-- migration: the longest lifetime (whole seconds from creation; set: tokens must expire),
-- the longest grace period of a reset (seconds; 0: none), and the scopes tokens may list
-- (a JSON array of text; non-empty: tokens must list scopes, from these only).
ALTER TABLE accounts ADD COLUMN token_max_lifetime_seconds INTEGER;
ALTER TABLE accounts ADD COLUMN token_max_reset_grace_seconds INTEGER;
ALTER TABLE accounts ADD COLUMN token_allowed_scopes TEXT NOT NULL DEFAULT '[]';
