-- Runs past their deadline (RunDeadlinePassed, scheduler.events), as billing learns of them:
-- a pending post of such a run that is not debited yet never is (CreditsDebitRejected
-- TIMED_OUT, and billing ends the run TIMED_OUT). RunDeadlinePassed and PendingPostCreated
-- travel on different topics, in no order between them; a run's row is kept until the
-- retention has passed.
CREATE TABLE run_deadlines (
    organization_id  uuid        NOT NULL,
    run_id           uuid        NOT NULL,
    passed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, run_id)
);
CREATE INDEX run_deadlines_passed_at ON run_deadlines (passed_at);
