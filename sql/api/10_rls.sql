-- Row-level security: an API request sees only its own project's rows.
--
-- The request's project is set (transaction-local) by api._authenticate() after the personal API
-- key, its scopes and the project were checked. Without it, insights.request_project_id() is NULL
-- and pgi_api sees nothing: even an RPC that forgets to authenticate cannot read another project.
-- Other roles (psql users, BI tools) keep the usual table privileges: the permissive policy lets
-- them see every row they are granted, and the restrictive one applies to pgi_api only.

CREATE OR REPLACE FUNCTION insights.request_project_id() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('pgi.project_id', true), '')::bigint
$$;

CREATE OR REPLACE FUNCTION insights.request_user_id() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('pgi.user_id', true), '')::bigint
$$;

-- Every table of schema insights with a project_id column gets the two policies, so a new project
-- table cannot be missed; the check at the end of this file fails the start if any table of the
-- schema is left without row-level security and without a reason written there.
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT c.relname FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'project_id' AND NOT a.attisdropped
              WHERE n.nspname = 'insights' AND c.relkind IN ('r', 'p')
              ORDER BY 1
    LOOP
        EXECUTE format('ALTER TABLE insights.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS granted_rows ON insights.%I', t);
        EXECUTE format('CREATE POLICY granted_rows ON insights.%I USING (true)', t);
        EXECUTE format('DROP POLICY IF EXISTS request_project ON insights.%I', t);
        EXECUTE format('CREATE POLICY request_project ON insights.%I AS RESTRICTIVE TO pgi_api '
                       'USING (project_id = insights.request_project_id()) '
                       'WITH CHECK (project_id = insights.request_project_id())', t);
    END LOOP;
END $$;

ALTER TABLE insights.projects ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS granted_rows ON insights.projects;
CREATE POLICY granted_rows ON insights.projects USING (true);
DROP POLICY IF EXISTS request_project ON insights.projects;
CREATE POLICY request_project ON insights.projects AS RESTRICTIVE TO pgi_api
    USING (id = insights.request_project_id());

ALTER TABLE insights.cohort_people ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS granted_rows ON insights.cohort_people;
CREATE POLICY granted_rows ON insights.cohort_people USING (true);
DROP POLICY IF EXISTS request_project ON insights.cohort_people;
CREATE POLICY request_project ON insights.cohort_people AS RESTRICTIVE TO pgi_api
    USING (EXISTS (SELECT 1 FROM insights.cohorts c
                    WHERE c.id = cohort_id AND c.project_id = insights.request_project_id()));

ALTER TABLE insights.dashboard_tiles ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS granted_rows ON insights.dashboard_tiles;
CREATE POLICY granted_rows ON insights.dashboard_tiles USING (true);
DROP POLICY IF EXISTS request_project ON insights.dashboard_tiles;
CREATE POLICY request_project ON insights.dashboard_tiles AS RESTRICTIVE TO pgi_api
    USING (EXISTS (SELECT 1 FROM insights.dashboards d
                    WHERE d.id = dashboard_id AND d.project_id = insights.request_project_id()));

-- Users are visible to a request only when they are members of its project (for created_by).
ALTER TABLE insights.users ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS granted_rows ON insights.users;
CREATE POLICY granted_rows ON insights.users USING (true);
DROP POLICY IF EXISTS request_project ON insights.users;
CREATE POLICY request_project ON insights.users AS RESTRICTIVE TO pgi_api
    USING (EXISTS (SELECT 1 FROM insights.project_members m
                    WHERE m.user_id = id AND m.project_id = insights.request_project_id()));

-- pgi_api reads the analytics tables and writes only what the insights API writes.
GRANT USAGE ON SCHEMA insights TO pgi_api;
GRANT SELECT ON insights.events, insights.persons, insights.person_distinct_ids, insights.groups,
                insights.group_type_mappings, insights.cohorts, insights.cohort_people,
                insights.actions, insights.dashboards, insights.dashboard_tiles,
                insights.saved_insights, insights.insight_views, insights.sharing_configurations,
                insights.activity_log, insights.elements, insights.query_cache, insights.projects,
                insights.users, insights.project_members, insights.query_tasks, insights.person_days,
                insights.materialized_properties,
                -- The columnar segments the engines read (sql/segments.sql).
                insights.event_segments, insights.event_segment_columns, insights.segment_dict
   TO pgi_api;
GRANT INSERT, UPDATE ON insights.saved_insights, insights.insight_views, insights.activity_log,
                        insights.sharing_configurations, insights.query_cache,
                        insights.dashboard_tiles
   TO pgi_api;
-- Actions and cohorts (sql/api/80_actions.sql, 82_cohorts.sql): the API creates and edits them
-- and replaces the members of static cohorts.
GRANT INSERT, UPDATE ON insights.actions, insights.cohorts TO pgi_api;
GRANT INSERT, DELETE ON insights.cohort_people TO pgi_api;
-- Elements (sql/api/85_elements.sql): the chain store is read-only over HTTP; element rows are
-- created, edited and deleted through /elements/.
GRANT SELECT ON insights.element_chains TO pgi_api;
GRANT INSERT, UPDATE, DELETE ON insights.elements TO pgi_api;
-- Async queries: a request queues its own project's tasks; the worker (superuser) runs them and
-- insights.cancel_query_task (SECURITY DEFINER) cancels them.
GRANT INSERT ON insights.query_tasks TO pgi_api;
-- API keys are never readable by the request role: only api._authenticate (SECURITY DEFINER) looks
-- them up, by hash.
REVOKE ALL ON insights.personal_api_keys FROM pgi_api;
-- Administration and raw ingestion are for the database owner (ingestion over HTTP goes through
-- api.capture, which checks the project token).
REVOKE EXECUTE ON FUNCTION insights.create_project(text, text, integer),
                           insights.create_user(text, text, text),
                           insights.add_project_member(bigint, bigint, integer),
                           insights.create_personal_api_key(bigint, text, text[], bigint[]),
                           insights.revoke_personal_api_key(bigint),
                           insights.create_project_with_key(text, text, text[], text),
                           insights.capture_batch(bigint, jsonb, timestamptz),
                           insights.capture(text, jsonb, timestamptz),
                           insights.merge_persons(bigint, bigint, bigint),
                           insights.rebuild_person_days(bigint),
                           insights.materialize_property(text),
                           insights.dematerialize_property(text),
                           insights.seal_segment(bigint, date),
                           insights.seal_segments(bigint, integer),
                           insights._segment_build(bigint, date)
   FROM PUBLIC;

-- The guard: every table of schema insights has row-level security, or is named here with why not.
DO $$
DECLARE
    v_missing text;
BEGIN
    SELECT string_agg(c.relname, ', ' ORDER BY c.relname) INTO v_missing
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'insights' AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity
       AND c.relname NOT IN (
           'personal_api_keys',       -- no privilege at all for pgi_api (revoked above)
           'materialized_properties'  -- the cluster-wide list of materialised property keys, no project data
       );
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'tables without row-level security: %', v_missing
            USING HINT = 'give them a project_id column or a policy in sql/api/10_rls.sql';
    END IF;
END $$;
