-- The organization and brand projection, in the shape the kernel's handlers keep
-- (hopcast_shared/tenants.py). Applied after the service's own migrations: the four services'
-- first migrations created these tables before the kernel owned them, each with the columns
-- it read, so this brings an existing table to the kernel's shape and creates a missing one.
-- A service written from now on leaves them to the kernel.

CREATE TABLE IF NOT EXISTS organizations (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL DEFAULT '',
    deleted_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS brands (
    id               uuid        PRIMARY KEY,
    organization_id  uuid        NOT NULL,
    name             text        NOT NULL,
    deleted_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- The brand's IANA time zone (the scheduler computes due times in it) and its whole profile as
-- BrandProfileCreated/Updated carry it (content drafts in its voice).
ALTER TABLE brands ADD COLUMN IF NOT EXISTS timezone text NOT NULL DEFAULT 'UTC';
ALTER TABLE brands ADD COLUMN IF NOT EXISTS profile jsonb NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS brands_organization ON brands (organization_id);
