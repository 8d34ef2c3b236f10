-- Roles of the HTTP layer (cluster-wide, so created here and not by the extension).
--   pgi_authenticator  PostgREST logs in as this role (LOGIN, NOINHERIT) and switches to pgi_api;
--   pgi_api            every HTTP request runs as this role: no table is writable directly, and
--                      row-level security keeps it inside the request's project.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgi_api') THEN
        CREATE ROLE pgi_api NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgi_authenticator') THEN
        CREATE ROLE pgi_authenticator LOGIN NOINHERIT;
    END IF;
END $$;
GRANT pgi_api TO pgi_authenticator;

-- A statement of an HTTP request that runs longer than this is cancelled and answered with
-- PostHog's 504 (its ClickHouse max execution time is 180 s). PostgREST applies the impersonated
-- role's settings to each request. A DBA changes it with ALTER ROLE pgi_api SET statement_timeout.
-- Set only where it is not set yet, so the DBA's value survives restarts.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
                    WHERE r.rolname = 'pgi_api' AND s.setdatabase = 0
                      AND EXISTS (SELECT 1 FROM unnest(s.setconfig) c WHERE c LIKE 'statement_timeout=%')) THEN
        ALTER ROLE pgi_api SET statement_timeout = '180s';
    END IF;
END $$;
