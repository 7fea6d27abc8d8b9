-- A PendingPostRejected read before the PendingPostCreated it rejects (they travel on
-- different topics, in no order between them): remembered here, and the debit, when it
-- comes, is refunded at once in its own transaction. Purged with the organization, or
-- after the retention when the pending post never came.
CREATE TABLE early_rejections (
    pending_post_id  uuid PRIMARY KEY,
    organization_id  uuid        NOT NULL,
    rejected_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX early_rejections_rejected_at ON early_rejections (rejected_at);
