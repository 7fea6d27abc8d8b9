-- The kernel's tables, in every service's database: pgvector, the transactional outbox and the inbox.

CREATE EXTENSION IF NOT EXISTS vector;

-- Rows are written in the business transaction and deleted once Kafka has them.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid        NOT NULL,
    event_type    text        NOT NULL,
    topic         text        NOT NULL,
    key           bytea,
    payload       bytea       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    -- A row Kafka refuses for good (too large, not authorized) is parked, not retried forever.
    parked_at     timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE parked_at IS NULL;

-- Wake the relay once per committing transaction that wrote to the outbox.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hopcast_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- One row per event a consumer group has handled (or dead-lettered), written with the effect.
CREATE TABLE inbox (
    consumer    text        NOT NULL,
    message_id  text        NOT NULL,
    event_type  text,
    outcome     text        NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX inbox_handled_at ON inbox (handled_at);
