-- Idempotency keys are each organization's own (docs/contract.md, "Tenancy"): a grant_id,
-- subscription_id or pending_post_id that another organization used too is a different key,
-- never a duplicate of it. Before this, another organization's CreditsGranted reusing a
-- grant_id was taken for a redelivery of the first and vanished.
ALTER TABLE ledger DROP CONSTRAINT ledger_idempotency_key_key;
ALTER TABLE ledger ADD CONSTRAINT ledger_organization_idempotency_key UNIQUE (organization_id, idempotency_key);

-- One decision per pending post of an organization.
ALTER TABLE debits DROP CONSTRAINT debits_pkey;
ALTER TABLE debits ADD PRIMARY KEY (organization_id, pending_post_id);
-- A prefix of the new key.
DROP INDEX debits_organization;
-- Whether a pending post or a run an event names is another organization's (refused, not ignored).
CREATE INDEX debits_pending_post ON debits (pending_post_id);
