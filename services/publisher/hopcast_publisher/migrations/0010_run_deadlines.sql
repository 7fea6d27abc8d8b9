-- Runs past their deadline (RunDeadlinePassed, scheduler.events). `run_deadlines` remembers
-- one read before the run's pending post (scheduler.events and content.events are not ordered
-- between them); `pending_posts.deadline_passed_at` marks the pending post: WAITING, it ends
-- TIMED_OUT once it has its debit; PUBLISHING, no platform call starts after it (one already
-- sent is finished and reported).
-- `run_deadline`: the run's deadline as the draft said (PendingPostCreated.deadline); without a
-- reviewer, a post complete after it ends TIMED_OUT without waiting for RunDeadlinePassed.
ALTER TABLE pending_posts ADD COLUMN deadline_passed_at timestamptz, ADD COLUMN run_deadline timestamptz;
CREATE INDEX pending_posts_run ON pending_posts (run_id);
CREATE TABLE run_deadlines (
    organization_id  uuid        NOT NULL,
    run_id           uuid        NOT NULL,
    passed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, run_id)
);
CREATE INDEX run_deadlines_passed_at ON run_deadlines (passed_at);
