-- SQL access per project (sql/api/15_project_roles.sql, docs/sql-access.md): a login role given
-- project p by insights.create_project_role reads p's rows and nothing of project q, through any
-- table, view or function. The proof walks the catalogue, not a hand list:
--   1. every relation of every schema: which the role may read, and its rows of p / of others;
--   2. every function the role may call that runs with its owner's rights (SECURITY DEFINER):
--      none but trigger functions;
--   3. every insight function (project id, query): as the role, project q answers exactly as a
--      project that does not exist, and project p exactly as for the superuser.
-- Plus the refusals of create_project_role and the revoke. One transaction, rolled back (roles
-- too: CREATE ROLE is transactional).
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
SET timezone = 'UTC';
SET datestyle = 'ISO';
BEGIN;
-- The HTTP layer's files (roles, RLS, api schema, routes), as scripts/stack applies them: all of
-- sql/api, so a function or table added there is covered too.
SET LOCAL client_min_messages = warning;
\set ECHO none
\set api_sql `cat ../../sql/api/*.sql`
:api_sql
\set routes_sql `python3 ../../scripts/openapi.py --routes-sql ../../nginx/routes.conf`
:routes_sql
\set ECHO all
RESET client_min_messages;

-- Two projects with events, persons, a group, a cohort with a static member, an action.
SELECT project_id AS p FROM insights.create_project('p') \gset
SELECT project_id AS q FROM insights.create_project('q') \gset
SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"p1","timestamp":"2024-03-01T10:00:00Z","properties":{"$set":{"email":"p1@p.com"}}},
  {"event":"signup","distinct_id":"p1","timestamp":"2024-03-02T10:00:00Z"},
  {"event":"$pageview","distinct_id":"p2","timestamp":"2024-03-02T11:00:00Z"}]');
SELECT insights.capture_batch(:q, '[
  {"event":"$pageview","distinct_id":"q1","timestamp":"2024-03-01T10:00:00Z","properties":{"$set":{"email":"secret@q.com"}}},
  {"event":"signup","distinct_id":"q1","timestamp":"2024-03-02T10:00:00Z"},
  {"event":"$pageview","distinct_id":"q2","timestamp":"2024-03-03T10:00:00Z"},
  {"event":"$groupidentify","distinct_id":"q2","timestamp":"2024-03-03T10:00:00Z",
   "properties":{"$group_type":"company","$group_key":"acme"}}]');
INSERT INTO insights.cohorts (project_id, name, is_static) VALUES (:p, 'p static', true), (:q, 'q static', true);
INSERT INTO insights.cohort_people SELECT c.id, d.person_id FROM insights.cohorts c
  JOIN insights.person_distinct_ids d ON d.project_id = c.project_id AND d.distinct_id IN ('p1', 'q1', 'q2');
INSERT INTO insights.actions (project_id, name, steps) VALUES (:q, 'q action', '[{"event":"signup"}]');

-- The role, and what create_project_role refuses.
CREATE ROLE regress_bi LOGIN;
CREATE ROLE regress_su SUPERUSER;
SELECT insights.create_project_role(:p, 'regress_bi') = 'pgi_project_' || :p AS granted;
SELECT insights.create_project_role(:q, 'regress_bi');          -- already bound to p
SELECT insights.create_project_role(:p, 'regress_su');          -- bypasses RLS
SELECT insights.create_project_role(:p, 'regress_no_such_role');
SELECT insights.create_project_role(-1, 'regress_bi');
SELECT insights.create_project_role(:p, 'regress_bi') IS NOT NULL AS granted_again;  -- idempotent

-- The checks run as the role: functions in a scratch schema it may use.
CREATE SCHEMA regress_check;
GRANT USAGE ON SCHEMA regress_check TO regress_bi;

-- 1. Every relation of every non-system schema (tables, views, materialised views, foreign
-- tables): readable by the role? Its rows of the role's project and of any other project (by
-- project_id, or id for projects); a table without a project column shows its visible rows.
CREATE FUNCTION regress_check.relations(p_own bigint)
RETURNS TABLE (relation text, readable boolean, own_rows bigint, other_rows bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_col text;
BEGIN
    FOR r IN SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'regress_check')
                AND n.nspname !~ '^pg_(toast|temp)'
              ORDER BY 2, 3
    LOOP
        relation := r.nspname || '.' || r.relname;
        readable := has_schema_privilege(r.nspname, 'USAGE') AND has_table_privilege(r.oid, 'SELECT');
        own_rows := NULL;
        other_rows := NULL;
        IF readable THEN
            SELECT a.attname INTO v_col FROM pg_attribute a
             WHERE a.attrelid = r.oid AND NOT a.attisdropped
               AND a.attname = CASE WHEN r.relname = 'projects' THEN 'id' ELSE 'project_id' END;
            IF v_col IS NOT NULL THEN
                EXECUTE format('SELECT count(*) FILTER (WHERE %1$I = $1), count(*) FILTER (WHERE %1$I IS DISTINCT FROM $1) FROM %2$I.%3$I',
                               v_col, r.nspname, r.relname) INTO own_rows, other_rows USING p_own;
            ELSE
                EXECUTE format('SELECT count(*) FROM %I.%I', r.nspname, r.relname) INTO other_rows;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;

-- 2. Functions of every non-system schema the role can call that run with their owner's rights.
CREATE FUNCTION regress_check.definer_functions()
RETURNS TABLE (function text, returns text) LANGUAGE sql AS $$
    SELECT p.oid::regprocedure::text, p.prorettype::regtype::text
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
       AND p.prosecdef AND has_schema_privilege(n.nspname, 'USAGE') AND has_function_privilege(p.oid, 'EXECUTE')
     ORDER BY 1
$$;

-- 3. Every callable insights function taking (bigint project, query json/jsonb/text) and
-- returning insight results (rows, json, jsonb or text): its answer for a project and a query, as
-- text (a set as a JSON array of its rows; the wall-clock last_refresh blanked), or the error's
-- SQLSTATE.
CREATE FUNCTION regress_check.insight_functions()
RETURNS TABLE (fn regprocedure, argtype text) LANGUAGE sql AS $$
    SELECT p.oid::regprocedure, format_type(p.proargtypes[1], NULL)
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'insights' AND p.pronargs = 2 AND p.proargtypes[0] = 'int8'::regtype
       AND p.proargtypes[1] IN ('jsonb'::regtype, 'json'::regtype, 'text'::regtype)
       AND p.prorettype IN ('record'::regtype, 'json'::regtype, 'jsonb'::regtype, 'text'::regtype)
       AND has_function_privilege(p.oid, 'EXECUTE')
     ORDER BY 1::text
$$;
CREATE FUNCTION regress_check.answer(p_fn regprocedure, p_argtype text, p_project bigint, p_query text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v text;
BEGIN
    EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(t))::text, ''[]'') FROM %I.%I($1, $2::%s) t',
                   (SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = p_fn),
                   (SELECT proname FROM pg_proc WHERE oid = p_fn), p_argtype)
      INTO v USING p_project, p_query;
    RETURN regexp_replace(v, '"last_refresh": "[^"]*"', '"last_refresh": "-"', 'g');
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE;
END $$;
-- A query for each engine, picked by the function's name (the trend query for any other).
CREATE FUNCTION regress_check.query_for(p_fn regprocedure) RETURNS text LANGUAGE sql AS $$
    SELECT CASE substring((SELECT proname FROM pg_proc WHERE oid = p_fn) FROM '^_?(funnel_correlation_actors|funnel_correlation|funnel|lifecycle|paths|retention|stickiness)')
        WHEN 'funnel_correlation_actors' THEN '{"insight":"FUNNELS","events":[{"id":"$pageview","order":0},{"id":"signup","order":1}],"date_from":"2024-03-01","date_to":"2024-03-04","funnel_correlation_type":"events","funnel_correlation_person_entity":{"id":"signup","type":"events"},"funnel_correlation_person_converted":"true"}'
        WHEN 'funnel_correlation' THEN '{"insight":"FUNNELS","events":[{"id":"$pageview","order":0},{"id":"signup","order":1}],"date_from":"2024-03-01","date_to":"2024-03-04","funnel_correlation_type":"events"}'
        WHEN 'funnel' THEN '{"insight":"FUNNELS","events":[{"id":"$pageview","order":0},{"id":"signup","order":1}],"date_from":"2024-03-01","date_to":"2024-03-04"}'
        WHEN 'lifecycle' THEN '{"insight":"LIFECYCLE","shown_as":"Lifecycle","events":[{"id":"$pageview"}],"date_from":"2024-03-01","date_to":"2024-03-04"}'
        WHEN 'paths' THEN '{"insight":"PATHS","date_from":"2024-03-01","date_to":"2024-03-04"}'
        WHEN 'retention' THEN '{"insight":"RETENTION","target_entity":{"id":"$pageview","type":"events"},"returning_entity":{"id":"$pageview","type":"events"},"date_from":"2024-03-01","date_to":"2024-03-04","period":"Day","total_intervals":4}'
        WHEN 'stickiness' THEN '{"insight":"STICKINESS","shown_as":"Stickiness","events":[{"id":"$pageview"}],"date_from":"2024-03-01","date_to":"2024-03-04"}'
        ELSE '{"insight":"TRENDS","events":[{"id":"$pageview","order":0},{"id":"signup","order":1}],"date_from":"2024-03-01","date_to":"2024-03-04"}' END
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA regress_check TO regress_bi;
-- The superuser's answers for project p, to compare with the role's, and whether q's answer
-- differs from a missing project's for the superuser (q's data would show if it leaked).
CREATE TABLE regress_check.su_answers AS
SELECT f.fn::text AS fn, regress_check.answer(f.fn, f.argtype, :p, regress_check.query_for(f.fn)) AS answer,
       regress_check.answer(f.fn, f.argtype, :q, regress_check.query_for(f.fn))
         <> regress_check.answer(f.fn, f.argtype, -42, regress_check.query_for(f.fn)) AS q_shows_data
  FROM regress_check.insight_functions() f;
-- Planner statistics of the events exist (pg_stats must hide them from the role: RLS table).
ANALYZE insights.events;
GRANT SELECT ON regress_check.su_answers TO regress_bi;

SET ROLE regress_bi;
SELECT insights.role_project_id() = :p AS role_project_is_p;
-- 1. The role reads the analytics tables of p only (q has 2 persons, 4 events, a group and a
-- static cohort of two); every other relation is unreadable.
SELECT relation, own_rows, other_rows FROM regress_check.relations(:p) WHERE readable ORDER BY 1;
SELECT count(*) > 0 AS unreadable_relations_exist, bool_and(NOT readable) AS all_others_unreadable
  FROM regress_check.relations(:p) WHERE NOT readable;
-- No relation shows a row of another project.
SELECT relation FROM regress_check.relations(:p) WHERE other_rows > 0 AND own_rows IS NOT NULL;
-- 2. Only trigger functions (not callable directly) run with their owner's rights.
SELECT count(*) AS definer_functions, count(*) FILTER (WHERE returns <> 'trigger') AS callable_non_trigger
  FROM regress_check.definer_functions();
SELECT function FROM regress_check.definer_functions() WHERE returns <> 'trigger';
-- ... and a trigger function refuses a direct call.
SELECT insights._person_days_on_insert();
-- 3. For project q every insight function answers as for a project that does not exist; for p
-- as for the superuser.
-- (q_shows_data: for the superuser, q's answer is not a missing project's, so a leak would show.)
SELECT f.fn::text AS function, s.q_shows_data,
       regress_check.answer(f.fn, f.argtype, :q, regress_check.query_for(f.fn))
         = regress_check.answer(f.fn, f.argtype, -42, regress_check.query_for(f.fn)) AS q_as_missing,
       regress_check.answer(f.fn, f.argtype, :p, regress_check.query_for(f.fn)) = s.answer AS p_as_superuser
  FROM regress_check.insight_functions() f JOIN regress_check.su_answers s ON s.fn = f.fn::text
 ORDER BY 1;
-- The planner statistics of the RLS tables are hidden (pg_stats: most common values, histograms).
SELECT count(*) AS insights_stats_rows FROM pg_stats WHERE schemaname = 'insights';
-- The answers for p are real numbers, not empty: the trend counts $pageview 1, 1, 0, 0.
SELECT insights.trend_json(:p, '{"events":[{"id":"$pageview"}],"date_from":"2024-03-01","date_to":"2024-03-04"}') -> 'result' -> 0 -> 'data' AS p_pageviews;
SELECT insights.trend_json(:q, '{"events":[{"id":"$pageview"}],"date_from":"2024-03-01","date_to":"2024-03-04"}') -> 'result' -> 0 -> 'data' AS q_pageviews;
-- Settings a session can change do not move the role (the HTTP layer's project setting is not read).
SET pgi.project_id = '0';
SELECT set_config('pgi.project_id', :'q', false) IS NOT NULL AS changed;
SELECT count(*) AS q_events FROM insights.events WHERE project_id = :q;
-- Acting as the project group or pgi_bi itself sees nothing (fail closed).
SET ROLE pgi_bi;
SELECT count(*) AS events_as_group FROM insights.events;
-- Writes are refused.
SET ROLE regress_bi;
DELETE FROM insights.events WHERE project_id = :p;
UPDATE insights.persons SET properties = '{}';
SELECT insights.capture_batch(:p, '[{"event":"x","distinct_id":"p9","timestamp":"2024-03-01T10:00:00Z"}]');
SELECT insights.cancel_query_task(:q, gen_random_uuid());
RESET ROLE;

-- The revoke takes the project away, and with it pgi_bi's grants: the role reads nothing.
SELECT insights.revoke_project_role(:p, 'regress_bi') AS revoked, insights.revoke_project_role(:p, 'regress_bi') AS again;
SET ROLE regress_bi;
SELECT insights.role_project_id() IS NULL AS no_project, (SELECT count(*) FROM insights.events) AS events;
RESET ROLE;
-- Only the database owner manages project roles.
SET ROLE regress_bi;
SELECT insights.create_project_role(:q, 'regress_bi');
RESET ROLE;
ROLLBACK;
