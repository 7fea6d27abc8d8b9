-- Content's own data: projections of organizations, brands and schedules; materials; the
-- runs it handled and the posts it drafted; published posts and their engagement; and the
-- embeddings of materials, drafts and posts (pgvector).
--
-- This file is a template: {{EMBEDDING_DIM}} is replaced by CONTENT_EMBEDDING_DIM when the
-- service starts (see hopcast_content.bootstrap.render_migrations). The rendered text is
-- what is checksummed, so starting with another dimension against a migrated database is
-- refused: changing the dimension needs a new migration that re-embeds.

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
    -- The voice as BrandProfileCreated/Updated carries it: pillars, tone, audience, rules, hashtags.
    profile          jsonb       NOT NULL,
    deleted_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX brands_organization ON brands (organization_id);

-- What ScheduleDue does not carry: how to pick (material_strategy) and whether a person approves.
CREATE TABLE schedules (
    id                 uuid PRIMARY KEY,
    organization_id    uuid        NOT NULL,
    brand_profile_id   uuid        NOT NULL,
    material_strategy  text        NOT NULL,
    generation_mode    text        NOT NULL,
    deleted_at         timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE materials (
    id                uuid PRIMARY KEY,
    organization_id   uuid        NOT NULL,
    brand_profile_id  uuid        NOT NULL,
    type              text        NOT NULL,
    title             text,
    body              text        NOT NULL,
    media_urls        text[]      NOT NULL DEFAULT '{}',
    content_pillar    text,
    max_uses          integer,                      -- null: unlimited
    status            text        NOT NULL DEFAULT 'UPLOADED'
        CHECK (status IN ('UPLOADED', 'PROCESSING', 'READY', 'FAILED', 'USED', 'ARCHIVED')),
    failure_reason    text,
    content_hash      text,
    usage_count       integer     NOT NULL DEFAULT 0,
    last_used_at      timestamptz,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- What selection scans: a brand's ready, live materials.
CREATE INDEX materials_selectable ON materials (brand_profile_id, usage_count, last_used_at)
    WHERE status = 'READY' AND deleted_at IS NULL;
CREATE INDEX materials_waiting ON materials (created_at) WHERE status IN ('UPLOADED', 'PROCESSING');
CREATE INDEX materials_deleted ON materials (deleted_at) WHERE deleted_at IS NOT NULL;

-- One row per run content has handled: at most one result per run, whatever the redeliveries.
CREATE TABLE runs (
    run_id            uuid PRIMARY KEY,
    organization_id   uuid        NOT NULL,
    schedule_id       uuid        NOT NULL,
    brand_profile_id  uuid        NOT NULL,
    due_at            timestamptz NOT NULL,
    result            text        NOT NULL,         -- DRAFTED or the skip reason
    handled_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pending_posts (
    id                 uuid PRIMARY KEY,
    run_id             uuid        NOT NULL UNIQUE,  -- one draft per run
    organization_id    uuid        NOT NULL,
    brand_profile_id   uuid        NOT NULL,
    schedule_id        uuid        NOT NULL,
    material_id        uuid        NOT NULL,
    content_pillar     text,
    content            text        NOT NULL,
    hashtags           text[]      NOT NULL,
    media_urls         text[]      NOT NULL,
    platforms          text[]      NOT NULL,
    angle              text        NOT NULL,
    angle_reason       text        NOT NULL,
    max_similarity     double precision NOT NULL,
    requires_approval  boolean     NOT NULL,
    due_at             timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- In flight until its run ends (ScheduleRunCompleted): its material is not selectable meanwhile.
    ended_at           timestamptz,
    outcome            text,
    use_counted        boolean     NOT NULL DEFAULT false
);
CREATE INDEX pending_posts_in_flight ON pending_posts (material_id) WHERE ended_at IS NULL;
CREATE INDEX pending_posts_brand_time ON pending_posts (brand_profile_id, created_at);
CREATE INDEX pending_posts_organization_time ON pending_posts (organization_id, created_at);

-- Published posts (one per platform) and their latest engagement: what angles and materials earned.
CREATE TABLE posts (
    post_id           uuid PRIMARY KEY,
    organization_id   uuid        NOT NULL,
    brand_profile_id  uuid        NOT NULL,
    pending_post_id   uuid,
    material_id       uuid,
    platform          text        NOT NULL,
    angle             text        NOT NULL,
    engagement_rate   double precision,
    impressions       bigint,
    published_at      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posts_brand ON posts (brand_profile_id);
CREATE INDEX posts_material ON posts (material_id);

CREATE TABLE content_embeddings (
    id                bigserial PRIMARY KEY,
    organization_id   uuid        NOT NULL,
    brand_profile_id  uuid        NOT NULL,
    kind              text        NOT NULL CHECK (kind IN ('MATERIAL', 'PENDING_POST', 'POST')),
    source_id         uuid        NOT NULL,         -- the material, pending post or post
    material_id       uuid        NOT NULL,         -- the material it was drafted from (itself for MATERIAL)
    content_hash      text        NOT NULL,         -- of the normalised text: the exact-copy fast path
    material_hash     text        NOT NULL,         -- of the material's normalised text
    embedding         vector({{EMBEDDING_DIM}}) NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, source_id)
);
-- Approximate nearest neighbours by cosine distance, for organizations too large to scan.
CREATE INDEX content_embeddings_hnsw ON content_embeddings USING hnsw (embedding vector_cosine_ops);
-- The duplicate check's filter (one organization, the last 30 days): an exact scan over it
-- is both exact and fast while an organization's window holds a few thousand rows.
CREATE INDEX content_embeddings_organization_time ON content_embeddings (organization_id, created_at);
CREATE INDEX content_embeddings_organization_hash ON content_embeddings (organization_id, content_hash);
CREATE INDEX content_embeddings_organization_material_hash ON content_embeddings (organization_id, material_hash);
