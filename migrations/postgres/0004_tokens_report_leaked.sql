-- `tokens.report_leaked` (ReportLeakedTokens) became a system permission. As with
-- `permissions.escalate` (migrations 0002 and 0003):
-- * bootstrap owners (operator-account principals holding every other system permission)
--   get it, since a system permission can only be granted by someone who holds it;
-- * before this migration the name was a valid *application* permission: whoever else was
--   granted it under that meaning loses it, and every token scoped to it gets the inert
--   `legacy.tokens.report_leaked` instead (dropping it could leave an empty scope list,
--   which means "everything the owner has"). Each such change is audited (no actor: the
--   upgrade made it) and announced to watchers like any other change. Permissions and
--   scopes are JSON text.

-- Revisions must become visible in order (see the store): take the writers' lock.
SELECT pg_advisory_xact_lock(7629665);

CREATE TEMP TABLE report_leaked_upgrade_keepers ON COMMIT DROP AS
SELECT id FROM principals
WHERE account_id IN (SELECT id FROM accounts WHERE operator)
  AND (
        SELECT count(*) FROM json_array_elements_text(principals.permissions::json) AS p (value)
        WHERE value IN ('tokens.read', 'tokens.create', 'tokens.update', 'tokens.delete',
                        'tokens.verify', 'principals.manage', 'accounts.manage', 'audit.read',
                        'permissions.escalate')
      ) = 9;

CREATE TEMP TABLE report_leaked_upgrade_principals ON COMMIT DROP AS
SELECT id, account_id FROM principals
WHERE id NOT IN (SELECT id FROM report_leaked_upgrade_keepers)
  AND permissions::jsonb ? 'tokens.report_leaked';

CREATE TEMP TABLE report_leaked_upgrade_tokens ON COMMIT DROP AS
SELECT id, account_id FROM tokens
WHERE scopes::jsonb ? 'tokens.report_leaked';

INSERT INTO audit_events (account_id, action, target_type, target_id, details, occurred_at)
SELECT account_id, 'principal.update', 'principal', id,
       json_build_object('fields', 'permissions', 'removed_permissions', 'tokens.report_leaked',
                         'reason', 'tokens.report_leaked became a system permission')::text,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
FROM report_leaked_upgrade_principals;

INSERT INTO audit_events (account_id, action, target_type, target_id, details, occurred_at)
SELECT account_id, 'token.update', 'token', id,
       json_build_object('fields', 'scopes', 'replaced_scopes',
                         'tokens.report_leaked=legacy.tokens.report_leaked',
                         'reason', 'tokens.report_leaked became a system permission')::text,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
FROM report_leaked_upgrade_tokens;

INSERT INTO invalidation_events (kind, account_id, principal_id, occurred_at)
SELECT 'principal_updated', account_id, id,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
FROM report_leaked_upgrade_principals;

INSERT INTO invalidation_events (kind, account_id, token_id, occurred_at)
SELECT 'token_updated', account_id, id,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
FROM report_leaked_upgrade_tokens;

UPDATE principals
SET permissions = COALESCE((
        SELECT json_agg(value ORDER BY value)::text
        FROM json_array_elements_text(principals.permissions::json) AS p (value)
        WHERE value <> 'tokens.report_leaked'
    ), '[]'),
    version = version + 1
WHERE id IN (SELECT id FROM report_leaked_upgrade_principals);

UPDATE tokens
SET scopes = (
        SELECT json_agg(scope ORDER BY scope)::text
        FROM (
            SELECT DISTINCT CASE value WHEN 'tokens.report_leaked'
                                       THEN 'legacy.tokens.report_leaked' ELSE value END
            FROM json_array_elements_text(tokens.scopes::json) AS s (value)
        ) AS replaced (scope)
    ),
    version = version + 1
WHERE id IN (SELECT id FROM report_leaked_upgrade_tokens);

UPDATE principals
SET permissions = (
        SELECT json_agg(value ORDER BY value)::text
        FROM (
            SELECT value FROM json_array_elements_text(principals.permissions::json) AS value
            UNION
            SELECT 'tokens.report_leaked'
        ) AS merged (value)
    ),
    version = version + 1
WHERE id IN (SELECT id FROM report_leaked_upgrade_keepers);

NOTIFY token_authority_events;
