-- The scheduler's own data: projections of organizations and brands, schedules and their runs.

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
    timezone         text        NOT NULL,
    deleted_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX brands_organization ON brands (organization_id);

CREATE TABLE schedules (
    id                  uuid PRIMARY KEY,
    organization_id     uuid        NOT NULL,
    brand_profile_id    uuid        NOT NULL REFERENCES brands (id),
    timezone            text        NOT NULL,
    times               text[]      NOT NULL,
    days_of_week        smallint[]  NOT NULL,
    platforms           text[]      NOT NULL,
    material_strategy   text        NOT NULL,
    generation_mode     text        NOT NULL,
    missed_run_policy   text        NOT NULL,
    is_active           boolean     NOT NULL,
    status              text        NOT NULL DEFAULT 'ACTIVE',
    next_run_at         timestamptz,
    consecutive_errors  integer     NOT NULL DEFAULT 0,
    missed_runs         bigint      NOT NULL DEFAULT 0,
    last_outcome        text,
    last_run_at         timestamptz,
    deleted_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- What the claim scans: only schedules that can run, in due order.
CREATE INDEX schedules_due ON schedules (next_run_at)
    WHERE status = 'ACTIVE' AND is_active AND deleted_at IS NULL AND next_run_at IS NOT NULL;
CREATE INDEX schedules_brand ON schedules (brand_profile_id);
CREATE INDEX schedules_organization ON schedules (organization_id);

CREATE TABLE schedule_runs (
    run_id           uuid PRIMARY KEY,
    schedule_id      uuid        NOT NULL REFERENCES schedules (id),
    organization_id  uuid        NOT NULL,
    due_at           timestamptz NOT NULL,
    kind             text        NOT NULL,  -- SCHEDULED, CATCH_UP, TRIGGER
    trigger_event_id uuid UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    outcome          text,
    completed_at     timestamptz,
    -- One run per schedule and due time, whichever replica claims it.
    UNIQUE (schedule_id, due_at)
);
CREATE INDEX schedule_runs_open ON schedule_runs (created_at) WHERE outcome IS NULL;
