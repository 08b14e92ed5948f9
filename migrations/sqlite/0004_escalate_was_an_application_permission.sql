-- Before migration 0003, `permissions.escalate` was a valid *application* permission name.
-- Whoever was granted it under that meaning must not wake up holding the system permission:
-- only bootstrap owners (operator-account principals holding every other system permission)
-- keep it; other principals lose it. Every token scoped to it (a bootstrap owner's too: its
-- scope was granted under the old meaning) gets the inert `legacy.permissions.escalate`
-- instead (dropping it could leave an empty scope list, which means "everything the owner
-- has"). Each change is audited (no actor: the upgrade made it)
-- and announced to watchers like any other change.

CREATE TEMP TABLE escalate_upgrade_keepers AS
SELECT id FROM principals
WHERE account_id IN (SELECT id FROM accounts WHERE operator = 1)
  AND (
        SELECT count(*) FROM json_each(principals.permissions)
        WHERE value IN ('tokens.read', 'tokens.create', 'tokens.update', 'tokens.delete',
                        'tokens.verify', 'principals.manage', 'accounts.manage', 'audit.read')
      ) = 8;

CREATE TEMP TABLE escalate_upgrade_principals AS
SELECT id, account_id FROM principals
WHERE id NOT IN (SELECT id FROM escalate_upgrade_keepers)
  AND EXISTS (SELECT 1 FROM json_each(principals.permissions) WHERE value = 'permissions.escalate');

CREATE TEMP TABLE escalate_upgrade_tokens AS
SELECT id, account_id FROM tokens
WHERE EXISTS (SELECT 1 FROM json_each(tokens.scopes) WHERE value = 'permissions.escalate');

INSERT INTO audit_events (account_id, action, target_type, target_id, details, occurred_at)
SELECT account_id, 'principal.update', 'principal', id,
       json_object('fields', 'permissions', 'removed_permissions', 'permissions.escalate',
                   'reason', 'permissions.escalate became a system permission'),
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
FROM escalate_upgrade_principals;

INSERT INTO audit_events (account_id, action, target_type, target_id, details, occurred_at)
SELECT account_id, 'token.update', 'token', id,
       json_object('fields', 'scopes', 'replaced_scopes',
                   'permissions.escalate=legacy.permissions.escalate',
                   'reason', 'permissions.escalate became a system permission'),
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
FROM escalate_upgrade_tokens;

INSERT INTO invalidation_events (kind, account_id, principal_id, occurred_at)
SELECT 'principal_updated', account_id, id,
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
FROM escalate_upgrade_principals;

INSERT INTO invalidation_events (kind, account_id, token_id, occurred_at)
SELECT 'token_updated', account_id, id,
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
FROM escalate_upgrade_tokens;

UPDATE principals
SET permissions = (
        SELECT json_group_array(value)
        FROM (
            SELECT value FROM json_each(principals.permissions)
            WHERE value <> 'permissions.escalate'
            ORDER BY value
        )
    ),
    version = version + 1
WHERE id IN (SELECT id FROM escalate_upgrade_principals);

UPDATE tokens
SET scopes = (
        SELECT json_group_array(scope)
        FROM (
            SELECT DISTINCT CASE value WHEN 'permissions.escalate'
                                       THEN 'legacy.permissions.escalate' ELSE value END AS scope
            FROM json_each(tokens.scopes)
            ORDER BY scope
        )
    ),
    version = version + 1
WHERE id IN (SELECT id FROM escalate_upgrade_tokens);

DROP TABLE escalate_upgrade_keepers;
DROP TABLE escalate_upgrade_principals;
DROP TABLE escalate_upgrade_tokens;
