-- Manual mode: when a draft expires undecided (PendingPostCreated.approval_deadline; null in
-- autopilot and for drafts from before deadlines). The expiry watcher claims WAITING drafts
-- past it (FOR UPDATE SKIP LOCKED) through the partial index.
ALTER TABLE pending_posts
    ADD COLUMN approval_deadline timestamptz;

CREATE INDEX pending_posts_approval_deadline ON pending_posts (approval_deadline)
    WHERE status = 'WAITING' AND approval_deadline IS NOT NULL;
