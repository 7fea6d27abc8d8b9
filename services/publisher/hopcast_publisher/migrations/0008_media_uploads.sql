-- Media uploads (issue 18): each file is uploaded once per account and reused on retries and
-- after a lost response or a crash. upload_key: a digest of the file's bytes (sha256), and for
-- platforms that keep the alt text on the upload (Mastodon, X) of the alt text too, and for
-- Mastodon, whose uploads attach to one status only, of the post's idempotency key (see
-- adapters/media_uploads.py). remote: the platform's reference (Bluesky's blob, Mastodon's and
-- X's media id, LinkedIn's image URN). expires_at: after it the platform may have dropped an
-- unattached upload, and the next post uploads again (the row is replaced). The first replica
-- to store a key wins; another that uploaded meanwhile uses the stored reference.
CREATE TABLE media_uploads (
    organization_id   uuid        NOT NULL,
    social_account_id uuid        NOT NULL,
    upload_key        text        NOT NULL,
    platform          text        NOT NULL,
    content_sha256    text        NOT NULL,
    remote            jsonb       NOT NULL,
    uploaded_at       timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    PRIMARY KEY (organization_id, social_account_id, upload_key)
);

CREATE INDEX media_uploads_expires_at ON media_uploads (expires_at);
