-- Each ledger row says which subscription's period credits it moves (null when it moves top-ups
-- only) and what it was for, in a human line ("Credit deduction for GENERATE"); issue 22.
ALTER TABLE ledger ADD COLUMN subscription_id uuid;
ALTER TABLE ledger ADD COLUMN description text;

-- Both derived from what a row already holds: the idempotency key names the subscription of a
-- period's credits (period:<subscription>:<start>) and what a refund was for (refund:<post>:
-- <platform>, reject:, timeout:, expire:); a debit's platforms are in debits. A row moving period
-- credits belongs to the subscription of the organization's last period row before it. A plan
-- is known only for a subscription billing still holds; a grant's reason was never kept, so the
-- line names the grant id. The service writes both itself (domain/descriptions.py); these
-- functions fill the rows written before, and those a billing of the previous release writes
-- while a rollout runs (the trigger below), so the old code keeps working on this schema.
CREATE FUNCTION ledger_derived_subscription(org uuid, row_id bigint, action text, key text, period bigint)
RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN period = 0 THEN NULL
        WHEN action = 'SUBSCRIPTION' AND key LIKE 'period:%' THEN split_part(key, ':', 2)::uuid
        ELSE (
            SELECT split_part(p.idempotency_key, ':', 2)::uuid FROM ledger p
            WHERE p.organization_id = org AND p.action = 'SUBSCRIPTION'
              AND p.idempotency_key LIKE 'period:%' AND p.id < row_id
            ORDER BY p.id DESC LIMIT 1
        )
    END
$$;

CREATE FUNCTION ledger_derived_description(
    org uuid, action text, key text, pending uuid, platform text, subscription uuid
) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN action IN ('GENERATE', 'PUBLISH') THEN
            'Credit deduction for ' || action || coalesce((
                SELECT ' on ' || array_to_string(d.platforms, ', ') FROM debits d
                WHERE action = 'PUBLISH' AND d.organization_id = org AND d.pending_post_id = pending
                  AND cardinality(d.platforms) > 0
            ), '')
        WHEN action = 'REFUND' THEN CASE split_part(key, ':', 1)
            WHEN 'refund' THEN 'Refund: PUBLISH_FAILED' || coalesce(' on ' || platform, '')
            WHEN 'reject' THEN 'Refund: PENDING_POST_REJECTED'
            WHEN 'timeout' THEN 'Refund: RUN_TIMED_OUT'
            WHEN 'expire' THEN 'Refund: PENDING_POST_EXPIRED'
            ELSE 'Refund'
        END
        WHEN action = 'SUBSCRIPTION' THEN
            'Subscription ' || coalesce((
                SELECT s.plan || ' ' FROM subscriptions s
                WHERE s.organization_id = org AND s.subscription_id = subscription
            ), '') || 'period credits'
            || CASE WHEN split_part(key, ':', 1) = 'expire' THEN ' expired unused' ELSE '' END
        WHEN action = 'TOPUP' THEN 'Top-up grant ' || split_part(key, ':', 2)
        ELSE action
    END
$$;

-- A row written without a description (by the previous release) gets both derived on insert.
CREATE FUNCTION ledger_describe_old_writers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.description IS NULL THEN
        NEW.subscription_id := ledger_derived_subscription(
            NEW.organization_id, NEW.id, NEW.action, NEW.idempotency_key, NEW.period_amount);
        NEW.description := ledger_derived_description(
            NEW.organization_id, NEW.action, NEW.idempotency_key, NEW.pending_post_id, NEW.platform,
            NEW.subscription_id);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_describe_old_writers BEFORE INSERT ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_describe_old_writers();

-- The backfill. The ledger is append-only (trigger ledger_append_only refuses every UPDATE).
-- This is the one documented exception (docs/contract.md): the trigger is disabled inside this
-- migration's transaction only. ALTER TABLE takes the table's ACCESS EXCLUSIVE lock and keeps it
-- until the commit, so no other session reads or writes the ledger while the trigger is off, and
-- a failure rolls the whole file back, the trigger's state included. Only the new columns change.
ALTER TABLE ledger DISABLE TRIGGER ledger_append_only;

-- One pass, one rewrite of each row: a row's subscription is its own for a period row, else
-- that of the organization's last period row before it (the window numbers the periods), as
-- ledger_derived_subscription says for one row; only rows moving period credits keep it.
WITH marked AS (
    SELECT id, organization_id, period_amount,
           CASE WHEN action = 'SUBSCRIPTION' AND idempotency_key LIKE 'period:%'
                THEN split_part(idempotency_key, ':', 2) END AS own,
           count(*) FILTER (WHERE action = 'SUBSCRIPTION' AND idempotency_key LIKE 'period:%')
               OVER (PARTITION BY organization_id ORDER BY id) AS period_number
    FROM ledger
), filled AS (
    SELECT id,
           CASE WHEN period_amount <> 0
                THEN (max(own) OVER (PARTITION BY organization_id, period_number))::uuid END AS subscription_id
    FROM marked
)
UPDATE ledger l SET
    subscription_id = f.subscription_id,
    description = ledger_derived_description(
        l.organization_id, l.action, l.idempotency_key, l.pending_post_id, l.platform, f.subscription_id)
FROM filled f WHERE f.id = l.id;

ALTER TABLE ledger ENABLE TRIGGER ledger_append_only;

ALTER TABLE ledger ALTER COLUMN description SET NOT NULL;
