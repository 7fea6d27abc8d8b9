-- The ledger stays append-only while its organization lives. Once the organization has been
-- deleted (soft delete, then the retention), the purge deletes its ledger with the rest of its
-- data: only rows of an organization marked deleted may be deleted, and none may be updated.
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (
        SELECT 1 FROM organizations WHERE id = OLD.organization_id AND deleted_at IS NOT NULL
    ) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the ledger is append-only';
END $$;
