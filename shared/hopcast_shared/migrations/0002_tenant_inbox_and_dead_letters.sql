-- The inbox scoped by organization, and every dead letter kept whole in the service's database.

-- Event ids are chosen by producers: another organization's event that reuses one of yours is
-- a different message, never a duplicate of it. Rows of messages whose organization could not
-- be read (undecodable records, keyed by their position in the log) carry the nil UUID.
ALTER TABLE inbox ADD COLUMN organization_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
ALTER TABLE inbox ADD PRIMARY KEY (consumer, organization_id, message_id);

-- The original record as it came (value, key and headers verbatim, as bytes: a NUL, invalid
-- UTF-8 or a 1 MB value cannot stop the dead letter from being written), whatever the size of
-- the message on `<service>.dlq` (which carries a preview past the topic's limit).
-- `hopcast dlq list` and `dlq replay` read this table. Only values whose secrets had to be
-- redacted (a plaintext token sent by mistake) differ from the original: `redacted` says so.
CREATE TABLE dead_letters (
    id               uuid        PRIMARY KEY,
    consumer         text        NOT NULL,
    organization_id  uuid,
    event_id         text,
    event_type       text,
    error_kind       text        NOT NULL,
    error            text        NOT NULL,
    attempts         integer     NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    source_timestamp_ms bigint,
    key              bytea,
    value            bytea,
    header_keys      bytea[]     NOT NULL DEFAULT '{}',
    header_values    bytea[]     NOT NULL DEFAULT '{}',
    value_size       integer     NOT NULL,
    value_sha256     bytea       NOT NULL,
    redacted         boolean     NOT NULL DEFAULT false,
    dead_lettered_at timestamptz NOT NULL DEFAULT now(),
    replayed_at      timestamptz,
    replays          integer     NOT NULL DEFAULT 0
);
CREATE INDEX dead_letters_at ON dead_letters (dead_lettered_at);
