-- Before migration 0002, `permissions.escalate` was a valid *application* permission name.
-- Whoever was granted it under that meaning must not wake up holding the system permission:
-- only bootstrap owners (operator-account principals holding every other system permission)
-- keep it; other principals lose it. Every token scoped to it (a bootstrap owner's too: its
-- scope was granted under the old meaning) gets the inert `legacy.permissions.escalate`
-- instead (dropping it could leave an empty scope list, which means "everything the owner
-- has"). Each change is audited (no actor: the upgrade made it)
-- and announced to watchers like any other change. Permissions and scopes are JSON text.

-- Revisions must become visible in order (see the store): take the writers' lock.
SELECT pg_advisory_xact_lock(7629665);

CREATE TEMP TABLE escalate_upgrade_keepers ON COMMIT DROP AS
SELECT id FROM principals
WHERE account_id IN (SELECT id FROM accounts WHERE operator)
  AND (
        SELECT count(*) FROM json_array_elements_text(principals.permissions::json) AS p (value)
        WHERE value IN ('tokens.read', 'tokens.create', 'tokens.update', 'tokens.delete',
                        'tokens.verify', 'principals.manage', 'accounts.manage', 'audit.read')
      ) = 8;

CREATE TEMP TABLE escalate_upgrade_principals ON COMMIT DROP AS
SELECT id, account_id FROM principals
WHERE id NOT IN (SELECT id FROM escalate_upgrade_keepers)
  AND permissions::jsonb ? 'permissions.escalate';

CREATE TEMP TABLE escalate_upgrade_tokens ON COMMIT DROP AS
SELECT id, account_id FROM tokens
WHERE scopes::jsonb ? 'permissions.escalate';

INSERT INTO audit_events (account_id, action, target_type, target_id, details, occurred_at)
SELECT account_id, 'principal.update', 'principal', id,
       json_build_object('fields', 'permissions', 'removed_permissions', 'permissions.escalate',
                         'reason', 'permissions.escalate became a system permission')::text,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
FROM escalate_upgrade_principals;

INSERT INTO audit_events (account_id, action, target_type, target_id, details, occurred_at)
SELECT account_id, 'token.update', 'token', id,
       json_build_object('fields', 'scopes', 'replaced_scopes',
                         'permissions.escalate=legacy.permissions.escalate',
                         'reason', 'permissions.escalate became a system permission')::text,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
FROM escalate_upgrade_tokens;

INSERT INTO invalidation_events (kind, account_id, principal_id, occurred_at)
SELECT 'principal_updated', account_id, id,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
FROM escalate_upgrade_principals;

INSERT INTO invalidation_events (kind, account_id, token_id, occurred_at)
SELECT 'token_updated', account_id, id,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
FROM escalate_upgrade_tokens;

UPDATE principals
SET permissions = COALESCE((
        SELECT json_agg(value ORDER BY value)::text
        FROM json_array_elements_text(principals.permissions::json) AS p (value)
        WHERE value <> 'permissions.escalate'
    ), '[]'),
    version = version + 1
WHERE id IN (SELECT id FROM escalate_upgrade_principals);

UPDATE tokens
SET scopes = (
        SELECT json_agg(scope ORDER BY scope)::text
        FROM (
            SELECT DISTINCT CASE value WHEN 'permissions.escalate'
                                       THEN 'legacy.permissions.escalate' ELSE value END
            FROM json_array_elements_text(tokens.scopes::json) AS s (value)
        ) AS replaced (scope)
    ),
    version = version + 1
WHERE id IN (SELECT id FROM escalate_upgrade_tokens);

NOTIFY token_authority_events;
