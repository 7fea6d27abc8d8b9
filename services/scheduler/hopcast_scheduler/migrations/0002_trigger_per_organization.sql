-- A trigger is once per event id of its organization (docs/contract.md, "Tenancy"): another
-- organization's ScheduleTriggerRequested that reuses the id is its own trigger, not a
-- duplicate of the first.
ALTER TABLE schedule_runs DROP CONSTRAINT schedule_runs_trigger_event_id_key;
ALTER TABLE schedule_runs ADD CONSTRAINT schedule_runs_organization_trigger_event_id
    UNIQUE (organization_id, trigger_event_id);
