-- Security invariants read from the catalogue, so a new table or function that breaks one fails
-- CI: every project table has row-level security and a policy, the API role reaches no table
-- without it, and every SECURITY DEFINER function pins its search_path. One transaction, rolled
-- back.
\set VERBOSITY sqlstate
BEGIN;
SET LOCAL client_min_messages = warning;
\set ECHO none
\ir load_api.psql
\set ECHO all
RESET client_min_messages;

-- Tables of schema insights with a project_id column: RLS on, forced for the owner or not, and
-- at least one policy. Expect no rows.
SELECT c.relname, c.relrowsecurity AS rls, count(p.oid) AS policies
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'project_id' AND NOT a.attisdropped
  LEFT JOIN pg_policy p ON p.polrelid = c.oid
 WHERE n.nspname = 'insights' AND c.relkind IN ('r', 'p')
 GROUP BY c.relname, c.relrowsecurity
HAVING NOT c.relrowsecurity OR count(p.oid) = 0
 ORDER BY 1;

-- Tables the API role can read or write without row-level security. Expect only
-- materialized_properties (the cluster-wide list of materialised keys: no project data).
SELECT c.relname, privilege_type
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace,
       LATERAL (SELECT unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS privilege_type) pr
 WHERE n.nspname = 'insights' AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relrowsecurity
   AND has_table_privilege('pgi_api', c.oid, pr.privilege_type)
 ORDER BY 1, 2;

-- SECURITY DEFINER functions of the extension without a pinned search_path. Expect no rows.
SELECT p.oid::regprocedure
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('insights', 'api') AND p.prosecdef
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
 ORDER BY 1;

-- The personal API keys table keeps only hashes: no column could hold a raw key.
SELECT attname FROM pg_attribute
 WHERE attrelid = 'insights.personal_api_keys'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;
ROLLBACK;
