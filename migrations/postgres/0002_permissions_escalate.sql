-- `permissions.escalate` became a system permission. The bootstrap owner holds every system
-- permission, so an existing owner (a principal of the operator account holding all the
-- others) gets it too; otherwise nobody could ever be granted it. Permissions are JSON text.
UPDATE principals
SET permissions = (
        SELECT json_agg(value ORDER BY value)::text
        FROM (
            SELECT value FROM json_array_elements_text(principals.permissions::json) AS value
            UNION
            SELECT 'permissions.escalate'
        ) AS merged (value)
    ),
    version = version + 1
WHERE account_id IN (SELECT id FROM accounts WHERE operator)
  AND (
        SELECT count(*) FROM json_array_elements_text(principals.permissions::json) AS p (value)
        WHERE value IN ('tokens.read', 'tokens.create', 'tokens.update', 'tokens.delete',
                        'tokens.verify', 'principals.manage', 'accounts.manage', 'audit.read')
      ) = 8;
