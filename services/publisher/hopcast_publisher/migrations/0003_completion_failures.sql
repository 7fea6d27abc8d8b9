-- A pending post whose completion fails (an event that breaks the contract, a row the
-- database refuses) is retried alone with backoff, then ended PUBLISH_FAILED: how many
-- times it failed and the last error, for GET /pending-posts/{id} and the logs.
ALTER TABLE pending_posts
    ADD COLUMN completion_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN completion_error    text;
