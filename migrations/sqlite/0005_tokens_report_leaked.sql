-- `tokens.report_leaked` (ReportLeakedTokens) became a system permission. As with
-- `permissions.escalate` (migrations 0003 and 0004):
-- * bootstrap owners (operator-account principals holding every other system permission)
--   get it, since a system permission can only be granted by someone who holds it;
-- * before this migration the name was a valid *application* permission: whoever else was
--   granted it under that meaning loses it, and every token scoped to it gets the inert
--   `legacy.tokens.report_leaked` instead (dropping it could leave an empty scope list,
--   which means "everything the owner has"). Each such change is audited (no actor: the
--   upgrade made it) and announced to watchers like any other change.

CREATE TEMP TABLE report_leaked_upgrade_keepers AS
SELECT id FROM principals
WHERE account_id IN (SELECT id FROM accounts WHERE operator = 1)
  AND (
        SELECT count(*) FROM json_each(principals.permissions)
        WHERE value IN ('tokens.read', 'tokens.create', 'tokens.update', 'tokens.delete',
                        'tokens.verify', 'principals.manage', 'accounts.manage', 'audit.read',
                        'permissions.escalate')
      ) = 9;

CREATE TEMP TABLE report_leaked_upgrade_principals AS
SELECT id, account_id FROM principals
WHERE id NOT IN (SELECT id FROM report_leaked_upgrade_keepers)
  AND EXISTS (SELECT 1 FROM json_each(principals.permissions) WHERE value = 'tokens.report_leaked');

CREATE TEMP TABLE report_leaked_upgrade_tokens AS
SELECT id, account_id FROM tokens
WHERE EXISTS (SELECT 1 FROM json_each(tokens.scopes) WHERE value = 'tokens.report_leaked');

INSERT INTO audit_events (account_id, action, target_type, target_id, details, occurred_at)
SELECT account_id, 'principal.update', 'principal', id,
       json_object('fields', 'permissions', 'removed_permissions', 'tokens.report_leaked',
                   'reason', 'tokens.report_leaked became a system permission'),
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
FROM report_leaked_upgrade_principals;

INSERT INTO audit_events (account_id, action, target_type, target_id, details, occurred_at)
SELECT account_id, 'token.update', 'token', id,
       json_object('fields', 'scopes', 'replaced_scopes',
                   'tokens.report_leaked=legacy.tokens.report_leaked',
                   'reason', 'tokens.report_leaked became a system permission'),
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
FROM report_leaked_upgrade_tokens;

INSERT INTO invalidation_events (kind, account_id, principal_id, occurred_at)
SELECT 'principal_updated', account_id, id,
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
FROM report_leaked_upgrade_principals;

INSERT INTO invalidation_events (kind, account_id, token_id, occurred_at)
SELECT 'token_updated', account_id, id,
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
FROM report_leaked_upgrade_tokens;

UPDATE principals
SET permissions = (
        SELECT json_group_array(value)
        FROM (
            SELECT value FROM json_each(principals.permissions)
            WHERE value <> 'tokens.report_leaked'
            ORDER BY value
        )
    ),
    version = version + 1
WHERE id IN (SELECT id FROM report_leaked_upgrade_principals);

UPDATE tokens
SET scopes = (
        SELECT json_group_array(scope)
        FROM (
            SELECT DISTINCT CASE value WHEN 'tokens.report_leaked'
                                       THEN 'legacy.tokens.report_leaked' ELSE value END AS scope
            FROM json_each(tokens.scopes)
            ORDER BY scope
        )
    ),
    version = version + 1
WHERE id IN (SELECT id FROM report_leaked_upgrade_tokens);

UPDATE principals
SET permissions = (
        SELECT json_group_array(value)
        FROM (
            SELECT value FROM json_each(principals.permissions)
            UNION
            SELECT 'tokens.report_leaked'
            ORDER BY value
        )
    ),
    version = version + 1
WHERE id IN (SELECT id FROM report_leaked_upgrade_keepers);

DROP TABLE report_leaked_upgrade_keepers;
DROP TABLE report_leaked_upgrade_principals;
DROP TABLE report_leaked_upgrade_tokens;
