-- Rejections are refunded on the publisher's ScheduleRunCompleted REJECTED, which always
-- comes after the debit (docs/contract.md), so early rejections need not be remembered.
DROP TABLE early_rejections;
-- That refund finds the debit by its run.
CREATE INDEX debits_run ON debits (run_id);
