-- Run deadlines and timelines (issue 19). A run's deadline is its start (the later of its due
-- time and its creation) plus SCHEDULER_RUN_DEADLINE_S, unless `deadline_at` says otherwise
-- (moved on by a reviewer's wait or a platform's deferral); `approval_wait_since` is set
-- while the run waits for a reviewer, when no deadline runs. `deadline_passed_at`: when
-- RunDeadlinePassed was written (once). The watch scans open runs by the existing partial
-- index schedule_runs_open (created_at WHERE outcome IS NULL).
ALTER TABLE schedule_runs
    ADD COLUMN deadline_at          timestamptz,
    ADD COLUMN deadline_passed_at   timestamptz,
    ADD COLUMN approval_wait_since  timestamptz,
    ADD COLUMN pending_post_id      uuid;
CREATE INDEX schedule_runs_pending_post ON schedule_runs (pending_post_id) WHERE pending_post_id IS NOT NULL;

-- Each stage a run reached, as the events report it (GET /runs/{id}). run_id is null for a
-- reviewer's decision read before the draft it decides (upstream.events and content.events
-- are not ordered between them): the draft, when it comes, claims it.
CREATE TABLE run_stages (
    id               bigserial PRIMARY KEY,
    run_id           uuid,
    organization_id  uuid        NOT NULL,
    pending_post_id  uuid,
    stage            text        NOT NULL,  -- the event type that reported it
    at               timestamptz NOT NULL,  -- the event's time
    platform         text,
    detail           text,
    credits          integer                -- debited (negative) or refunded (positive)
);
CREATE INDEX run_stages_run ON run_stages (run_id, at);
CREATE INDEX run_stages_unclaimed ON run_stages (pending_post_id) WHERE run_id IS NULL;
