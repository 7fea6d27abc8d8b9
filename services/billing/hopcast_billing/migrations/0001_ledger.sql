-- Billing: organizations, subscriptions, balances, the append-only ledger, and debits.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    deleted_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
    organization_id  uuid PRIMARY KEY,
    subscription_id  uuid        NOT NULL,
    plan             text        NOT NULL,
    credits_total    integer     NOT NULL,
    period_start     timestamptz NOT NULL,
    period_end       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The two buckets, kept equal to the sums of the ledger in the same transactions.
-- last_from_period records how much of the last debit came from the period bucket, so one
-- conditional UPDATE can both debit and say how it split.
CREATE TABLE balances (
    organization_id   uuid PRIMARY KEY,
    period_credits    bigint NOT NULL DEFAULT 0 CHECK (period_credits >= 0),
    topup_credits     bigint NOT NULL DEFAULT 0 CHECK (topup_credits >= 0),
    last_from_period  bigint NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger (
    id               bigserial PRIMARY KEY,
    organization_id  uuid        NOT NULL,
    action           text        NOT NULL,
    period_amount    bigint      NOT NULL,  -- signed change of the period bucket
    topup_amount     bigint      NOT NULL,  -- signed change of the top-up bucket
    amount           bigint GENERATED ALWAYS AS (period_amount + topup_amount) STORED,
    idempotency_key  text        NOT NULL UNIQUE,
    pending_post_id  uuid,
    run_id           uuid,
    platform         text,
    balance_after    bigint      NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_organization ON ledger (organization_id, id);

-- Append-only: the ledger is history.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only';
END $$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

-- One decision per pending post, whatever the redeliveries.
CREATE TABLE debits (
    pending_post_id   uuid PRIMARY KEY,
    organization_id   uuid        NOT NULL,
    run_id            uuid        NOT NULL,
    schedule_id       uuid        NOT NULL,
    brand_profile_id  uuid        NOT NULL,
    due_at            timestamptz,
    platforms         text[]      NOT NULL,
    status            text        NOT NULL,  -- DEBITED or REJECTED
    generate_amount   integer     NOT NULL,
    publish_amount    integer     NOT NULL,
    from_period       bigint      NOT NULL DEFAULT 0,
    from_topup        bigint      NOT NULL DEFAULT 0,
    failed_platforms  text[]      NOT NULL DEFAULT '{}',
    refunded_period   bigint      NOT NULL DEFAULT 0,
    refunded_topup    bigint      NOT NULL DEFAULT 0,
    rejected_at       timestamptz,  -- PendingPostRejected refunded what was left
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX debits_organization ON debits (organization_id);
