-- `permissions.escalate` became a system permission. The bootstrap owner holds every system
-- permission, so an existing owner (a principal of the operator account holding all the
-- others) gets it too; otherwise nobody could ever be granted it.
UPDATE principals
SET permissions = (
        SELECT json_group_array(value)
        FROM (
            SELECT value FROM json_each(principals.permissions)
            UNION
            SELECT 'permissions.escalate'
            ORDER BY value
        )
    ),
    version = version + 1
WHERE account_id IN (SELECT id FROM accounts WHERE operator = 1)
  AND (
        SELECT count(*) FROM json_each(principals.permissions)
        WHERE value IN ('tokens.read', 'tokens.create', 'tokens.update', 'tokens.delete',
                        'tokens.verify', 'principals.manage', 'accounts.manage', 'audit.read')
      ) = 8;
