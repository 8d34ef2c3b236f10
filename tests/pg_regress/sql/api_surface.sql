-- The HTTP layer's RPC functions (schema api, sql/api/*.sql) called the way PostgREST calls them:
-- as role pgi_api, with the request in the transaction-local settings request.headers (nginx
-- passes method, query string, project and Authorization as x-pgi-* headers) and the body as
-- bytea; the answer's status and headers come back in response.status / response.headers.
-- Shows authentication (401), scopes and project membership (403), 404, 405, a 400 naming the
-- field, JSON and CSV answers, and row-level security. One transaction, rolled back.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
SET timezone = 'UTC';
SET datestyle = 'ISO';
BEGIN;
-- The api schema is not part of the extension: scripts/stack applies sql/api/*.sql on start.
-- Load it here, inside the transaction, without echoing it (paths are relative to tests/pg_regress).
SET LOCAL client_min_messages = warning;
\set ECHO none
\ir load_api.psql
-- The dispatcher's route table, generated from nginx/routes.conf as scripts/stack does.
\set routes_sql `python3 ../../scripts/openapi.py --routes-sql ../../nginx/routes.conf`
:routes_sql
\set ECHO all
RESET client_min_messages;

-- One request: a fresh request context (PostgREST runs each request in its own transaction),
-- the headers nginx would send (the route of routes.conf in x-pgi-route), then api.dispatch;
-- returns the status, the body and the Content-Type.
CREATE FUNCTION pg_temp.call(p_route text, p_method text, p_headers jsonb, p_body text DEFAULT '')
RETURNS TABLE (status int, body text, content_type text) LANGUAGE plpgsql AS $$
DECLARE v text;
BEGIN
  PERFORM set_config(s, '', true) FROM unnest(ARRAY['response.status', 'response.headers', 'pgi.project_id', 'pgi.user_id', 'pgi.sharing_insight_id']) s;
  PERFORM set_config('request.method', 'POST', true);
  PERFORM set_config('request.headers', (jsonb_build_object('x-pgi-method', p_method, 'x-pgi-route', p_route) || p_headers)::text, true);
  v := convert_from(api.dispatch(convert_to(p_body, 'UTF8')), 'UTF8');
  RETURN QUERY SELECT coalesce(nullif(current_setting('response.status', true), ''), '200')::int, v,
    (SELECT h ->> 'Content-Type' FROM json_array_elements(nullif(current_setting('response.headers', true), '')::json) h
      WHERE h ->> 'Content-Type' IS NOT NULL);
END $$;

-- Project p (Ann's key has every scope), a person:read-only key of Ann's, and Bob's project q.
SELECT project_id AS p, user_id AS ann, personal_api_key AS key
  FROM insights.create_project_with_key('api test', 'ann@example.com') \gset
SELECT api_key AS people_key FROM insights.create_personal_api_key(:ann, 'people only', ARRAY['person:read']) \gset
SELECT project_id AS q, personal_api_key AS bob_key
  FROM insights.create_project_with_key('other', 'bob@example.com') \gset
SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-03-01T10:00:00Z"},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-03-01T11:00:00Z"},
  {"event":"signup","distinct_id":"u2","timestamp":"2024-03-01T11:05:00Z"},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-03-03T10:00:00Z"}]');
SELECT insights.capture_batch(:q, '[{"event":"$pageview","distinct_id":"x","timestamp":"2024-03-01T10:00:00Z"}]');
SELECT jsonb_build_object('x-pgi-project', :'p', 'x-pgi-authorization', 'Bearer ' || :'key') AS auth \gset
\set trend '{"insight":"TRENDS","events":[{"id":"$pageview"}],"date_from":"2024-03-01","date_to":"2024-03-03"}'

-- From here on, the requests run as PostgREST's request role.
SET LOCAL ROLE pgi_api;

-- POST /api/projects/:p/insights/trend/ with a JSON body; GET with the filter in the query string.
SELECT status, content_type, body::jsonb -> 'result' -> 0 -> 'data' AS data
  FROM pg_temp.call('insight_trend', 'POST', :'auth', :'trend');
SELECT status, body::jsonb -> 'result' -> 0 -> 'data' AS data
  FROM pg_temp.call('insight_trend', 'GET', :'auth'::jsonb || jsonb_build_object('x-pgi-query',
    'events=%5B%7B%22id%22%3A%22%24pageview%22%7D%5D&date_from=2024-03-01&date_to=2024-03-03'));
-- ?format=csv: PostHog's CSV export, as text/csv.
SELECT status, content_type, replace(body, E'\r\n', E'\n') AS body
  FROM pg_temp.call('insight_trend', 'POST', :'auth'::jsonb || '{"x-pgi-query":"format=csv"}', :'trend');
-- POST /insights/funnel/.
SELECT status, jsonb_path_query_array(body::jsonb, '$.result[*].count') AS counts
  FROM pg_temp.call('insight_funnel', 'POST', :'auth',
    '{"insight":"FUNNELS","date_from":"2024-03-01","date_to":"2024-03-03","events":[{"id":"$pageview"},{"id":"signup"}]}');

-- Errors are PostHog's bodies {type, code, detail, attr} with their status: no key, a wrong key,
-- a key without the insight:read scope, a project the key's user is not a member of, a project
-- that does not exist, a method the endpoint does not take, and a bad filter value.
SELECT name, status, body::jsonb ->> 'code' AS code, body::jsonb ->> 'detail' AS detail, body::jsonb ->> 'attr' AS attr
  FROM (VALUES
    (1, 'no key', :'auth'::jsonb - 'x-pgi-authorization', 'POST', :'trend'),
    (2, 'wrong key', :'auth'::jsonb || '{"x-pgi-authorization":"Bearer phx_nope"}', 'POST', :'trend'),
    (3, 'missing scope', :'auth'::jsonb || jsonb_build_object('x-pgi-authorization', 'Bearer ' || :'people_key'), 'POST', :'trend'),
    (4, 'not a member', :'auth'::jsonb || jsonb_build_object('x-pgi-authorization', 'Bearer ' || :'bob_key'), 'POST', :'trend'),
    (5, 'no project', :'auth'::jsonb || '{"x-pgi-project":"999999999"}', 'POST', :'trend'),
    (6, 'method', :'auth', 'DELETE', ''),
    (7, 'bad interval', :'auth', 'POST', '{"events":[{"id":"$pageview"}],"interval":"fortnight"}')
  ) AS r(n, name, headers, method, req), pg_temp.call('insight_trend', method, headers, req) ORDER BY n;

-- Row-level security: once a request is authenticated, pgi_api sees only its project's rows;
-- before that, none at all.
SELECT status FROM pg_temp.call('insight_trend', 'POST', :'auth', :'trend');
SELECT count(*) AS events, count(DISTINCT project_id) AS projects FROM insights.events;
SELECT status FROM pg_temp.call('insight_trend', 'DELETE', :'auth');  -- 405 before authenticating
SELECT count(*) AS events FROM insights.events;
-- Raw ingestion and administration are not granted to the request role (42501).
SELECT insights.capture_batch(:p, '[{"event":"x","distinct_id":"y"}]');
ROLLBACK;
