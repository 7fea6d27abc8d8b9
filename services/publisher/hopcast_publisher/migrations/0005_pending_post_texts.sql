-- The exact text to post on each platform ({platform: text}), as content drafted it within
-- that platform's rule (PendingPostCreated.texts). Empty for pending posts drafted before
-- texts existed: their text is composed from content, hashtags and media_urls as before.
ALTER TABLE pending_posts
    ADD COLUMN texts jsonb NOT NULL DEFAULT '{}'::jsonb;
