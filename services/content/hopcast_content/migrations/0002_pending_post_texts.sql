-- The exact text drafted for each platform ({platform: text}, within that platform's own rule),
-- as PendingPostCreated.texts carries it, so content's own copy of a draft holds what is posted.
-- Empty for drafts from before texts were kept.
ALTER TABLE pending_posts
    ADD COLUMN texts jsonb NOT NULL DEFAULT '{}'::jsonb;
