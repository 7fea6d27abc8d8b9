-- The publisher's own data: projections of organizations and brands, social accounts and
-- their links to brands, pending posts with their per-platform attempts, posts.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text        NOT NULL DEFAULT '',
    deleted_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE brands (
    id               uuid PRIMARY KEY,
    organization_id  uuid        NOT NULL,
    name             text        NOT NULL,
    deleted_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX brands_organization ON brands (organization_id);

-- Tokens are ciphertexts of the shared token-encryption module bound to the account
-- (associated data "social_account:<id>"); the CHECK refuses anything shaped otherwise.
CREATE TABLE social_accounts (
    id                   uuid PRIMARY KEY,
    organization_id      uuid        NOT NULL,
    platform             text        NOT NULL,
    handle               text        NOT NULL,
    external_account_id  text,
    api_base_url         text,
    access_token         text        NOT NULL CHECK (access_token ~ '^v[0-9]+:[A-Za-z0-9_-]+:[A-Za-z0-9_=-]+$'),
    refresh_token        text        CHECK (refresh_token ~ '^v[0-9]+:[A-Za-z0-9_-]+:[A-Za-z0-9_=-]+$'),
    token_expires_at     timestamptz,
    is_active            boolean     NOT NULL,
    deleted_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX social_accounts_organization ON social_accounts (organization_id);
CREATE INDEX social_accounts_deleted ON social_accounts (deleted_at) WHERE deleted_at IS NOT NULL;

-- N:M; platform is the account's, copied so one default per brand and platform is a constraint.
CREATE TABLE brand_accounts (
    brand_profile_id   uuid        NOT NULL,
    social_account_id  uuid        NOT NULL REFERENCES social_accounts (id) ON DELETE CASCADE,
    organization_id    uuid        NOT NULL,
    platform           text        NOT NULL,
    is_default         boolean     NOT NULL,
    linked_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_profile_id, social_account_id)
);
CREATE UNIQUE INDEX brand_accounts_one_default ON brand_accounts (brand_profile_id, platform) WHERE is_default;
CREATE INDEX brand_accounts_account ON brand_accounts (social_account_id);

-- A pending post collects its inputs in any order (the drafted post, its debit, its
-- approval or rejection), then is published by the publishing loop.
-- status: WAITING -> PUBLISHING -> PUBLISHED | PARTIALLY_PUBLISHED | PUBLISH_FAILED |
--         BRAND_INACTIVE | ORGANIZATION_INACTIVE;  WAITING -> REJECTED | DEBIT_REJECTED.
CREATE TABLE pending_posts (
    id                  uuid PRIMARY KEY,
    organization_id     uuid        NOT NULL,
    -- From PendingPostCreated; null until it arrives (has_post).
    has_post            boolean     NOT NULL DEFAULT false,
    run_id              uuid,
    schedule_id         uuid,
    brand_profile_id    uuid,
    material_id         uuid,
    due_at              timestamptz,
    content             text,
    hashtags            text[],
    media_urls          text[],
    platforms           text[],
    angle               text,
    requires_approval   boolean,
    -- DEBITED or REJECTED (billing), APPROVED or REJECTED (upstream); null = not yet known.
    debit               text,
    approval            text,
    status              text        NOT NULL DEFAULT 'WAITING',
    -- The publishing loop's claim: who holds it until when, and how often it was claimed.
    lease_token         uuid,
    lease_until         timestamptz,
    claims              integer     NOT NULL DEFAULT 0,
    -- The event that completed the inputs, and its trace, for the events publishing emits.
    cause_event_id      uuid,
    trace_headers       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    publishing_at       timestamptz,
    completed_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_posts_publishing ON pending_posts (publishing_at) WHERE status = 'PUBLISHING';
CREATE INDEX pending_posts_organization ON pending_posts (organization_id);

-- One row per platform of a publishing pending post, written when it starts publishing:
-- the account chosen (or why none), and the idempotency key every call to the platform uses.
CREATE TABLE publish_attempts (
    pending_post_id    uuid        NOT NULL REFERENCES pending_posts (id) ON DELETE CASCADE,
    platform           text        NOT NULL,
    idempotency_key    text        NOT NULL UNIQUE,
    social_account_id  uuid,
    status             text        NOT NULL,  -- PENDING, PUBLISHED, FAILED
    failure_reason     text,
    failure_detail     text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pending_post_id, platform)
);

CREATE TABLE posts (
    id                      uuid PRIMARY KEY,
    organization_id         uuid             NOT NULL,
    pending_post_id         uuid             NOT NULL,
    run_id                  uuid             NOT NULL,
    schedule_id             uuid             NOT NULL,
    brand_profile_id        uuid             NOT NULL,
    material_id             uuid             NOT NULL,
    social_account_id       uuid             NOT NULL,
    platform                text             NOT NULL,
    angle                   text             NOT NULL,
    content                 text             NOT NULL,
    external_id             text             NOT NULL,
    external_url            text             NOT NULL,
    published_at            timestamptz      NOT NULL,
    likes                   bigint           NOT NULL DEFAULT 0,
    comments                bigint           NOT NULL DEFAULT 0,
    shares                  bigint           NOT NULL DEFAULT 0,
    impressions             bigint           NOT NULL DEFAULT 0,
    engagement_rate         double precision NOT NULL DEFAULT 0,
    engagement_observed_at  timestamptz,
    deleted_at              timestamptz,
    created_at              timestamptz      NOT NULL DEFAULT now(),
    updated_at              timestamptz      NOT NULL DEFAULT now(),
    -- One post per pending post and platform, whatever happens.
    UNIQUE (pending_post_id, platform)
);
CREATE INDEX posts_brand_published ON posts (brand_profile_id, published_at);
CREATE INDEX posts_organization_published ON posts (organization_id, published_at);
CREATE INDEX posts_deleted ON posts (deleted_at) WHERE deleted_at IS NOT NULL;
