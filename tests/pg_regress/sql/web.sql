-- The web page's endpoints (sql/api/80_web.sql, docs/web.md) through the dispatcher: GET
-- /api/projects/ (the key's projects, narrowed by its scoped_teams; PostHog's paginated list),
-- GET event_definitions/ (the project's event names, ?search=), and GET /shared/<token>.json (one
-- shared insight without any key; 404 once sharing is disabled), also through
-- ?sharing_access_token= on the insight route. Projects are shown by name (no raw ids); no
-- now() values. One transaction, rolled back.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
SET timezone = 'UTC';
SET datestyle = 'ISO';
BEGIN;
SET LOCAL client_min_messages = warning;
\set ECHO none
\ir api_call.psql
\set ECHO all
RESET client_min_messages;

-- Ann: member of "web test" (p) and "second" (p2); a key scoped to p only; a key without
-- project:read. Bob: member of "other" (q) only.
SELECT project_id AS p, user_id AS ann, personal_api_key AS key
  FROM insights.create_project_with_key('web test', 'web-ann@example.com') \gset
SELECT project_id AS p2 FROM insights.create_project('second', 'Europe/Paris', 1) \gset
SELECT insights.add_project_member(:p2, :ann);
SELECT api_key AS scoped_key FROM insights.create_personal_api_key(:ann, 'p only', ARRAY['*'], ARRAY[:p]::bigint[]) \gset
SELECT api_key AS insight_key FROM insights.create_personal_api_key(:ann, 'insights only', ARRAY['insight:read']) \gset
SELECT project_id AS q, personal_api_key AS bob_key
  FROM insights.create_project_with_key('other', 'web-bob@example.com') \gset
SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-03-01T10:00:00Z"},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-03-02T10:00:00Z"},
  {"event":"signup","distinct_id":"u2","timestamp":"2024-03-02T10:05:00Z"},
  {"event":"purchase","distinct_id":"u2","timestamp":"2024-03-03T10:00:00Z"},
  {"event":"$autocapture","distinct_id":"u1","timestamp":"2024-03-03T11:00:00Z"}]') AS stored;
SELECT insights.capture_batch(:q, '[{"event":"bob_only","distinct_id":"x","timestamp":"2024-03-01T10:00:00Z"}]') AS stored;
SELECT jsonb_build_object('x-pgi-project', :'p', 'x-pgi-authorization', 'Bearer ' || :'key') AS auth \gset
CREATE FUNCTION pg_temp.bearer(k text) RETURNS jsonb LANGUAGE sql AS $$ SELECT jsonb_build_object('x-pgi-authorization', 'Bearer ' || k) $$;
SET LOCAL ROLE pgi_api;

-- GET /api/projects/ (no project in the path): Ann's two projects by id, with their settings;
-- the scoped key sees p only; Bob sees q only.
SELECT status, body -> 'count' AS count, body -> 'next' AS next,
       jsonb_path_query_array(body, '$.results[*].name') AS names,
       jsonb_path_query_array(body, '$.results[*].timezone') AS timezones,
       jsonb_path_query_array(body, '$.results[*].week_start_day') AS week_starts,
       (SELECT bool_and(r ->> 'api_token' LIKE 'phc_%') FROM jsonb_array_elements(body -> 'results') r) AS tokens
  FROM pg_temp.call('projects', 'GET', pg_temp.bearer(:'key'));
SELECT n, body -> 'count' AS count, jsonb_path_query_array(body, '$.results[*].name') AS names
  FROM (VALUES (1, :'scoped_key'), (2, :'bob_key')) AS k(n, k), pg_temp.call('projects', 'GET', pg_temp.bearer(k))
 ORDER BY n;
-- The fields of one entry (no secrets).
SELECT (SELECT jsonb_agg(k ORDER BY k) FROM jsonb_object_keys(body -> 'results' -> 0) k) AS fields
  FROM pg_temp.call('projects', 'GET', pg_temp.bearer(:'key'));
-- Paged: limit=1 → DRF's next/previous (a previous page at offset 0 drops offset, as DRF).
SELECT n, jsonb_path_query_array(body, '$.results[*].name') AS names, body ->> 'next' AS next, body ->> 'previous' AS previous
  FROM (VALUES (1, 'limit=1'), (2, 'limit=1&offset=1')) AS r(n, qs),
       pg_temp.call('projects', 'GET', pg_temp.bearer(:'key') || jsonb_build_object('x-pgi-query', qs, 'x-pgi-path', '/api/projects/'))
 ORDER BY n;
-- No key, a wrong key, a key without project:read; a bad limit.
SELECT n, pg_temp.err(status, body) AS error
  FROM (VALUES (1, '{}'::jsonb), (2, pg_temp.bearer('phx_nope')), (3, pg_temp.bearer(:'insight_key')),
               (4, pg_temp.bearer(:'key') || '{"x-pgi-query":"limit=abc"}')) AS r(n, h),
       pg_temp.call('projects', 'GET', h) ORDER BY n;

-- GET event_definitions/: p's event names, sorted, as {count, next, previous, results: [{id, name}]};
-- ?search= is a case-insensitive substring; another project's names never show.
SELECT status, body -> 'count' AS count, body -> 'next' AS next, jsonb_path_query_array(body, '$.results[*].name') AS names,
       (SELECT bool_and(r ->> 'id' = r ->> 'name') FROM jsonb_array_elements(body -> 'results') r) AS id_is_name
  FROM pg_temp.call('event_definitions', 'GET', :'auth');
SELECT n, body -> 'count' AS count, jsonb_path_query_array(body, '$.results[*].name') AS names
  FROM (VALUES (1, 'search=UP'), (2, 'search=age'), (3, 'search=bob'), (4, 'search=')) AS r(n, qs),
       pg_temp.call('event_definitions', 'GET', :'auth'::jsonb || jsonb_build_object('x-pgi-query', qs))
 ORDER BY n;
SELECT jsonb_path_query_array(body, '$.results[*].name') AS bob_names
  FROM pg_temp.call('event_definitions', 'GET', pg_temp.bearer(:'bob_key') || jsonb_build_object('x-pgi-project', :'q'));
SELECT pg_temp.err(status, body) AS error FROM pg_temp.call('event_definitions', 'GET', pg_temp.bearer(:'bob_key') || jsonb_build_object('x-pgi-project', :'p'));

-- A saved trend insight of p, shared: PATCH sharing {enabled: true} gives its access token.
SELECT status, body ->> 'short_id' IS NOT NULL AS saved
  FROM pg_temp.call('insights', 'POST', :'auth', '{"name":"Daily pageviews","description":"for the team",
    "filters":{"insight":"TRENDS","events":[{"id":"$pageview"}],"date_from":"2024-03-01","date_to":"2024-03-03"}}');
RESET ROLE;
SELECT id AS insight FROM insights.saved_insights WHERE project_id = :p AND name = 'Daily pageviews' \gset
SET LOCAL ROLE pgi_api;
SELECT status, body ->> 'enabled' AS enabled, body ->> 'access_token' AS token
  FROM pg_temp.call('insight_sharing', 'PATCH', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'insight'), '{"enabled":true}') \gset
SELECT :status AS status, :'enabled' AS enabled, :'token' ~ '^[A-Za-z0-9_-]{8,64}$' AS token_shape;

-- GET /shared/<token>.json without any key: the insight with its result, and only the fields a
-- viewer needs (no user data).
SELECT status, content_type, body -> 'insight' ->> 'name' AS name, body -> 'insight' ->> 'description' AS description,
       body -> 'insight' -> 'result' -> 0 -> 'data' AS data, body -> 'insight' ->> 'timezone' AS timezone
  FROM pg_temp.call('shared', 'GET', jsonb_build_object('x-pgi-id', :'token'));
SELECT (SELECT jsonb_agg(k ORDER BY k) FROM jsonb_object_keys(body -> 'insight') k) AS fields
  FROM pg_temp.call('shared', 'GET', jsonb_build_object('x-pgi-id', :'token'));
-- The same token opens the insight route (GET only) through ?sharing_access_token=, not others.
SELECT status, body ->> 'name' AS name
  FROM pg_temp.call('insight', 'GET', jsonb_build_object('x-pgi-project', :'p', 'x-pgi-id', :'insight',
                                                          'x-pgi-query', 'sharing_access_token=' || :'token'));
SELECT pg_temp.err(status, body) AS error
  FROM pg_temp.call('insights', 'GET', jsonb_build_object('x-pgi-project', :'p', 'x-pgi-query', 'sharing_access_token=' || :'token'));
-- Not found: an unknown or malformed token; a method other than GET is 405.
SELECT n, pg_temp.err(status, body) AS error
  FROM (VALUES (1, 'GET', 'AAAAAAAAAAAAAAAAAAAAAA'), (2, 'GET', 'a b'), (3, 'GET', ''), (4, 'POST', :'token')) AS r(n, method, t),
       pg_temp.call('shared', method, jsonb_build_object('x-pgi-id', t)) ORDER BY n;
-- Sharing disabled: the same token is a 404 at once.
SELECT status, body ->> 'enabled' AS enabled
  FROM pg_temp.call('insight_sharing', 'PATCH', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'insight'), '{"enabled":false}');
SELECT pg_temp.err(status, body) AS error FROM pg_temp.call('shared', 'GET', jsonb_build_object('x-pgi-id', :'token'));
ROLLBACK;
