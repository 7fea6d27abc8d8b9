-- Least-privilege PostgreSQL roles for one Hopcast service's database.
--
-- Run as an administrator (a superuser, or the cloud provider's admin role), connected to the
-- service's database, with the service named first:
--
--     SET hopcast.service = 'billing';   -- scheduler, content, billing or publisher
--     \i deploy/sql/roles.sql
--
-- It is idempotent: run it before the service's first start (roles, schema ownership, default
-- privileges) and again after every upgrade that brings migrations (the per-table narrowing
-- below needs the tables to exist). Passwords are not set here: `ALTER ROLE ... PASSWORD` (or
-- your provider's IAM) does that. See deploy/sql/README.md.
--
-- hopcast_<service>_owner  owns the schema and every table: the migrations run as it
--                          (<SERVICE>_MIGRATIONS_DATABASE_URL).
-- hopcast_<service>_app    what the running service uses (<SERVICE>_DATABASE_URL): rows only,
--                          no DDL, not an owner (so it cannot drop or alter a table, disable a
--                          trigger such as the ledger's append-only one, or grant anything).

DO $roles$
DECLARE
    service text := current_setting('hopcast.service');
    owner_role text;
    app_role text;
BEGIN
    IF service NOT IN ('scheduler', 'content', 'billing', 'publisher') THEN
        RAISE EXCEPTION 'hopcast.service must be scheduler, content, billing or publisher, not %', service;
    END IF;
    owner_role := format('hopcast_%s_owner', service);
    app_role := format('hopcast_%s_app', service);

    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = owner_role) THEN
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', owner_role);
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = app_role) THEN
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', app_role);
    END IF;

    -- Nobody else may connect or create anything here.
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), owner_role);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), app_role);
    REVOKE ALL ON SCHEMA public FROM PUBLIC;
    EXECUTE format('ALTER SCHEMA public OWNER TO %I', owner_role);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', app_role);

    -- pgvector is created by the administrator (CREATE EXTENSION needs more than the owner has);
    -- the kernel's migration only finds it there.
    CREATE EXTENSION IF NOT EXISTS vector;

    -- Tables made before this script ran (a database migrated by an administrator) change hands.
    EXECUTE (
        SELECT coalesce(string_agg(format('ALTER TABLE %I OWNER TO %I;', tablename, owner_role), ' '), 'SELECT 1')
        FROM pg_tables WHERE schemaname = 'public' AND tableowner <> owner_role
    );
    EXECUTE (
        SELECT coalesce(string_agg(format('ALTER SEQUENCE %I OWNER TO %I;', c.relname, owner_role), ' '), 'SELECT 1')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'S' AND pg_get_userbyid(c.relowner) <> owner_role
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
    );

    -- What the running service may do: read and write rows, use the id sequences; on tables the
    -- owner makes later too (default privileges), so a new migration needs no new grant.
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I',
        owner_role, app_role);
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO %I',
        owner_role, app_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', app_role);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', app_role);

    -- Narrower where the service needs less (once the tables exist).
    -- The migration history is the owner's: the service only checks it.
    IF to_regclass('public.schema_migrations') IS NOT NULL THEN
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM %I', app_role);
    END IF;
    -- The ledger is append-only: rows are added, never changed (its trigger refuses an UPDATE too,
    -- and a DELETE of a live organization's rows; the purge deletes those of deleted ones).
    IF service = 'billing' AND to_regclass('public.ledger') IS NOT NULL THEN
        EXECUTE format('REVOKE UPDATE ON ledger FROM %I', app_role);
    END IF;
END
$roles$;
