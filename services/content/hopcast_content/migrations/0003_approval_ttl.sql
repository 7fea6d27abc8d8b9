-- Manual mode: how long a draft of the schedule waits for a decision (ScheduleCreated/Updated
-- approval_ttl_minutes); PendingPostCreated.approval_deadline is the draft's time plus it.
ALTER TABLE schedules
    ADD COLUMN approval_ttl_minutes integer NOT NULL DEFAULT 2880;
