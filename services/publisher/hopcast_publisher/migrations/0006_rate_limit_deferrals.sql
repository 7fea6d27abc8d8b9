-- Deferral on rate limits (issue 17 point 3).
--
-- account_rate_limits: what every publisher replica knows of an account's limits on its
-- platform. next_call_at: the end of the turns replicas reserved (one call per
-- PUBLISHER_ACCOUNT_MIN_INTERVAL_S); blocked_until and block_reason: the reset a platform
-- announced (a 429, a window or a daily cap used up). Read and reserved once per claimed
-- batch, written when a platform announces a block; only ever moved later (greatest()).
CREATE TABLE account_rate_limits (
    social_account_id  uuid        PRIMARY KEY,
    next_call_at       timestamptz NOT NULL DEFAULT now(),
    blocked_until      timestamptz,
    block_reason       text CHECK (block_reason IN ('RATE_LIMITED', 'DAILY_CAP')),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- A publish attempt put off until its platform's reset (retry_at, deferral_reason; it stays
-- PENDING), and one settled while another platform of its post was put off: its result
-- (external_id, external_url, published_at) and its event were written then (settled_at),
-- so the retry neither calls that platform again nor repeats the event.
ALTER TABLE publish_attempts
    ADD COLUMN retry_at        timestamptz,
    ADD COLUMN deferral_reason text CHECK (deferral_reason IN ('RATE_LIMITED', 'DAILY_CAP')),
    ADD COLUMN deferrals       integer NOT NULL DEFAULT 0,
    ADD COLUMN external_id     text,
    ADD COLUMN external_url    text,
    ADD COLUMN published_at    timestamptz,
    ADD COLUMN settled_at      timestamptz;
