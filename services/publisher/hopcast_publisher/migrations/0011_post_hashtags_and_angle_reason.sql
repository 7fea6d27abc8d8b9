-- A post keeps what its pending post drafted beside its text (issue 22): the hashtags, the
-- media (0009) and why the draft took its angle. The pending post keeps the angle's reason
-- from PendingPostCreated so that the post can copy it. Older rows: no hashtags, no reason.
ALTER TABLE pending_posts
    ADD COLUMN angle_reason text;
ALTER TABLE posts
    ADD COLUMN hashtags text[] NOT NULL DEFAULT '{}',
    ADD COLUMN angle_reason text;
