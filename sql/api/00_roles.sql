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
