-- SQL access per project for BI tools and psql users (issue 15 item 5; docs/sql-access.md).
--
--   SELECT insights.create_project_role(7, 'metabase_shop');   -- read project 7 only
--   SELECT insights.revoke_project_role(7, 'metabase_shop');
--
-- A project role is an ordinary login role made a member of `pgi_project_<id>`, itself a member of
-- the group `pgi_bi`. `pgi_bi` may read the analytics tables the engines read and call the
-- insight functions; a restrictive row-level security policy `project_role` on every table of
-- schema insights keeps it inside the one project its membership names
-- (insights.role_project_id(), read from the role catalogue, so nothing a session can SET changes
-- it). The insight functions run with the caller's rights, so they see what the role sees. Fail
-- closed: a role in no project group, or in two, or acting as pgi_bi / pgi_project_<id> itself,
-- sees no rows. Applied by scripts/stack after 10_rls.sql (which enables RLS on every table).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgi_bi') THEN
        CREATE ROLE pgi_bi NOLOGIN;
    END IF;
END $$;

-- The project of the current role: the N of the one `pgi_project_N` group it is directly a
-- member of, else NULL (no rows visible).
CREATE OR REPLACE FUNCTION insights.role_project_id() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog AS $$
    SELECT CASE WHEN count(*) = 1 THEN min(substring(g.rolname FROM '^pgi_project_(\d{1,18})$')::bigint) END
      FROM pg_auth_members m
      JOIN pg_roles g ON g.oid = m.roleid
     WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)
       AND g.rolname ~ '^pgi_project_\d{1,18}$'
$$;

-- Every table of schema insights with row-level security gets the restrictive policy for pgi_bi:
-- by project_id where it has one, by id for projects, through the parent for cohort_people and
-- dashboard_tiles, and no rows for any other table (users, …), so a later GRANT cannot open one.
DO $$
DECLARE
    r record;
    v_using text;
BEGIN
    FOR r IN SELECT c.relname,
                    EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'project_id'
                                                          AND NOT a.attisdropped) AS has_project
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'insights' AND c.relkind IN ('r', 'p') AND c.relrowsecurity
              ORDER BY 1
    LOOP
        v_using := CASE
            WHEN r.has_project THEN 'project_id = (SELECT insights.role_project_id())'
            WHEN r.relname = 'projects' THEN 'id = (SELECT insights.role_project_id())'
            WHEN r.relname = 'cohort_people' THEN
                'EXISTS (SELECT 1 FROM insights.cohorts c WHERE c.id = cohort_id AND c.project_id = (SELECT insights.role_project_id()))'
            WHEN r.relname = 'dashboard_tiles' THEN
                'EXISTS (SELECT 1 FROM insights.dashboards d WHERE d.id = dashboard_id AND d.project_id = (SELECT insights.role_project_id()))'
            ELSE 'false' END;
        EXECUTE format('DROP POLICY IF EXISTS project_role ON insights.%I', r.relname);
        EXECUTE format('CREATE POLICY project_role ON insights.%I AS RESTRICTIVE TO pgi_bi USING (%s) WITH CHECK (false)',
                       r.relname, v_using);
    END LOOP;
END $$;

-- What a project role reads: the tables the engines read (insight functions need all of them),
-- and nothing else (no saved insights, caches, keys, users, activity).
GRANT USAGE ON SCHEMA insights TO pgi_bi;
GRANT SELECT ON insights.events, insights.persons, insights.person_distinct_ids, insights.groups,
                insights.group_type_mappings, insights.cohorts, insights.cohort_people, insights.actions,
                insights.person_days, insights.projects, insights.elements,
                insights.materialized_properties,  -- the cluster-wide list of materialised keys, no project data
                insights.event_segments, insights.event_segment_columns, insights.segment_dict
   TO pgi_bi;

-- SECURITY DEFINER functions run as their owner, outside row-level security: none may be callable
-- by everyone (a trigger function cannot be called directly, so triggers are left). The HTTP role
-- keeps the ones it calls.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS sig
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'insights' AND p.prosecdef AND p.prorettype <> 'trigger'::regtype
                AND has_function_privilege('public', p.oid, 'EXECUTE')
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f.sig);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pgi_api', f.sig);
    END LOOP;
END $$;

-- Gives login role p_role read access to project p_project only (see the top of this file).
-- Refused (22023, field role): a role that bypasses row-level security (superuser, BYPASSRLS, owner
-- of the insights tables), the HTTP roles, and a role already bound to another project.
CREATE OR REPLACE FUNCTION insights.create_project_role(p_project bigint, p_role text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    v_role pg_roles;
    v_group text := 'pgi_project_' || p_project;
    v_other bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM insights.projects WHERE id = p_project) THEN
        RAISE EXCEPTION 'project % does not exist', p_project
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'field: project';
    END IF;
    SELECT * INTO v_role FROM pg_roles WHERE rolname = p_role;
    IF v_role.oid IS NULL THEN
        RAISE EXCEPTION 'role % does not exist', p_role USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'field: role', HINT = 'CREATE ROLE ... LOGIN PASSWORD ... first.';
    END IF;
    IF v_role.rolsuper OR v_role.rolbypassrls
       OR v_role.oid = (SELECT relowner FROM pg_class WHERE oid = 'insights.events'::regclass)
       OR p_role IN ('pgi_api', 'pgi_authenticator', 'pgi_bi') OR p_role ~ '^pgi_project_' THEN
        RAISE EXCEPTION 'role % bypasses row-level security or is a pg_insights role', p_role
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'field: role';
    END IF;
    SELECT substring(g.rolname FROM '^pgi_project_(\d+)$')::bigint INTO v_other
      FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
     WHERE m.member = v_role.oid AND g.rolname ~ '^pgi_project_\d+$' AND g.rolname <> v_group
     LIMIT 1;
    IF v_other IS NOT NULL THEN
        RAISE EXCEPTION 'role % already reads project %', p_role, v_other
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'field: role',
                  HINT = 'One role reads one project: revoke it first, or create another role.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_group) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', v_group);
        EXECUTE format('GRANT pgi_bi TO %I', v_group);
    END IF;
    IF NOT pg_has_role(p_role, v_group, 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', v_group, p_role);
    END IF;
    RETURN v_group;
END $$;
COMMENT ON FUNCTION insights.create_project_role(bigint, text) IS
  'Give a login role read access to one project''s events, persons and insight functions, enforced by row-level security (docs/sql-access.md).';

-- Takes the project away from the role (the role itself stays). Returns whether it had it.
CREATE OR REPLACE FUNCTION insights.revoke_project_role(p_project bigint, p_role text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    v_group text := 'pgi_project_' || p_project;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_auth_members m
                     JOIN pg_roles g ON g.oid = m.roleid AND g.rolname = v_group
                     JOIN pg_roles r ON r.oid = m.member AND r.rolname = p_role) THEN
        RETURN false;
    END IF;
    EXECUTE format('REVOKE %I FROM %I', v_group, p_role);
    RETURN true;
END $$;

REVOKE EXECUTE ON FUNCTION insights.create_project_role(bigint, text),
                           insights.revoke_project_role(bigint, text) FROM PUBLIC;
