-- The organization projection has the same shape in every service (hopcast_shared.projections).
ALTER TABLE organizations ADD COLUMN name text NOT NULL DEFAULT '';
