-- Project settings (sql/api/32_project.sql, sql/activity.sql; docs/api.md#project-settings-and-
-- persons-management): GET /api/projects/:id/ in PostHog's team shape, PATCH of every writable
-- field, validation errors (PostHog's body through the dispatcher, SQLSTATE 22023 called
-- directly) that change nothing, scopes; and what a setting does to answers: a timezone change
-- drops the project's cached results, rebuilds the person-days rollup, and the same query then
-- counts in the new zone's days; a week start change moves weekly buckets; a name change keeps
-- the cache; test_account_filters are applied by filter_test_accounts. One transaction, rolled back.
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

-- Project p (Ann's key, every scope; a project:read-only key) and Bob's project q. Three
-- pageviews around midnight UTC of 2024-03-01/02: in UTC they fall on 03-01, 03-02, 03-02; in
-- America/New_York (UTC-5) all on 03-01. One is a test account's (email @test.com).
SELECT project_id AS p, user_id AS ann, personal_api_key AS key
  FROM insights.create_project_with_key('settings test', 'settings-ann@example.com') \gset
SELECT api_key AS read_key FROM insights.create_personal_api_key(:ann, 'read only', ARRAY['project:read']) \gset
SELECT project_id AS q, personal_api_key AS bob_key
  FROM insights.create_project_with_key('other', 'settings-bob@example.com') \gset
SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-03-01T23:30:00Z","properties":{"$set":{"email":"u1@example.com"}}},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-03-02T00:30:00Z","properties":{"$set":{"email":"qa@test.com"}}},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-03-02T01:30:00Z"}]') AS stored;
SELECT jsonb_build_object('x-pgi-project', :'p', 'x-pgi-authorization', 'Bearer ' || :'key') AS auth \gset
\set daily '{"query":{"kind":"TrendsQuery","series":[{"kind":"EventsNode","event":"$pageview"}],"dateRange":{"date_from":"2024-03-01","date_to":"2024-03-02"}},"refresh":"blocking"}'
CREATE FUNCTION pg_temp.cached(p bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM insights.query_cache WHERE project_id = p $$;
SET LOCAL ROLE pgi_api;

-- GET: PostHog's team serializer (the settings and the read-only fields that mean something here).
SELECT status, (body ->> 'id')::bigint = :p AS own, body ->> 'name' AS name, body ->> 'timezone' AS timezone,
       body -> 'week_start_day' AS week_start, body -> 'test_account_filters' AS test_filters,
       body -> 'ingested_event' AS ingested, body -> 'effective_membership_level' AS level,
       body -> 'data_attributes' AS data_attributes, body -> 'person_display_name_properties' AS display_props
  FROM pg_temp.call('project', 'GET', :'auth');

-- A daily trend, computed and cached in UTC: 1, 2; asked again, served from the cache.
SELECT body -> 'results' -> 0 -> 'data' AS data, body ->> 'is_cached' AS is_cached, body ->> 'timezone' AS timezone
  FROM pg_temp.call('query', 'POST', :'auth', :'daily');
SELECT body -> 'results' -> 0 -> 'data' AS data, body ->> 'is_cached' AS is_cached
  FROM pg_temp.call('query', 'POST', :'auth', :'daily');
-- A name change keeps the cache (no engine reads the name).
SELECT status, body ->> 'name' AS name FROM pg_temp.call('project', 'PATCH', :'auth', '{"name":"Renamed"}');
RESET ROLE;
SELECT pg_temp.cached(:p) AS cached;
SET LOCAL ROLE pgi_api;

-- PATCH timezone: the cached results are dropped, the person-days rollup is rebuilt in the new
-- zone (it equals a computation from the events), and the same query now counts New York days: 3, 0.
SELECT status, body ->> 'timezone' AS timezone FROM pg_temp.call('project', 'PATCH', :'auth', '{"timezone":"America/New_York"}');
RESET ROLE;
SELECT pg_temp.cached(:p) AS cached;
SELECT day, sum(events) AS events FROM insights.person_days WHERE project_id = :p GROUP BY day ORDER BY day;
SELECT ("timestamp" AT TIME ZONE 'America/New_York')::date AS day, count(*) AS events
  FROM insights.events WHERE project_id = :p GROUP BY 1 ORDER BY 1;
SET LOCAL ROLE pgi_api;
SELECT body -> 'results' -> 0 -> 'data' AS data, body ->> 'is_cached' AS is_cached, body ->> 'timezone' AS timezone
  FROM pg_temp.call('query', 'POST', :'auth', :'daily');

-- PATCH week_start_day: weekly buckets start on Monday (1) instead of Sunday (0), and the cache
-- is dropped again. 2024-03-01 is a Friday: its week starts Sun 02-25 or Mon 02-26.
\set weekly '{"query":{"kind":"TrendsQuery","interval":"week","series":[{"kind":"EventsNode","event":"$pageview"}],"dateRange":{"date_from":"2024-03-01","date_to":"2024-03-02"}},"refresh":"blocking"}'
SELECT body -> 'results' -> 0 -> 'days' AS days, body -> 'results' -> 0 -> 'data' AS data
  FROM pg_temp.call('query', 'POST', :'auth', :'weekly');
SELECT status, body -> 'week_start_day' AS week_start FROM pg_temp.call('project', 'PATCH', :'auth', '{"week_start_day":1}');
RESET ROLE;
SELECT pg_temp.cached(:p) AS cached;
SET LOCAL ROLE pgi_api;
SELECT body -> 'results' -> 0 -> 'days' AS days, body -> 'results' -> 0 -> 'data' AS data, body ->> 'is_cached' AS is_cached
  FROM pg_temp.call('query', 'POST', :'auth', :'weekly');

-- test_account_filters, then a trend with filter_test_accounts: u2 (qa@test.com) is left out: 2.
SELECT status, body -> 'test_account_filters' AS test_filters, body -> 'test_account_filters_default_checked' AS default_checked
  FROM pg_temp.call('project', 'PATCH', :'auth', '{"test_account_filters":[{"key":"email","value":"@test.com","operator":"not_icontains","type":"person"}],"test_account_filters_default_checked":true}');
SELECT body -> 'result' -> 0 ->> 'count' AS all_accounts
  FROM pg_temp.call('insight_trend', 'POST', :'auth', '{"events":[{"id":"$pageview"}],"date_from":"2024-03-01","date_to":"2024-03-02"}');
SELECT body -> 'result' -> 0 ->> 'count' AS without_test_accounts
  FROM pg_temp.call('insight_trend', 'POST', :'auth', '{"events":[{"id":"$pageview"}],"date_from":"2024-03-01","date_to":"2024-03-02","filter_test_accounts":true}');

-- The other writable fields, in one PATCH (PUT takes the same partial body).
SELECT status, body -> 'path_cleaning_filters' AS path_cleaning, body -> 'person_display_name_properties' AS display_props,
       body -> 'data_attributes' AS data_attributes
  FROM pg_temp.call('project', 'PUT', :'auth', '{"path_cleaning_filters":[{"regex":"/item/\\d+","alias":"/item/:id"}],
    "person_display_name_properties":["email","name"],"data_attributes":["data-attr","data-testid"],"is_demo":true,"id":1}');

-- Bad values: 400 with PostHog's body naming the field; the valid name sent with them is not
-- applied (nothing half-written), nor is anything else.
SELECT n, pg_temp.err(status, body) AS error
  FROM (VALUES
    (1, '{"name":"Half","timezone":"Mars/Olympus"}'),
    (2, '{"name":"Half","timezone":5}'),
    (3, '{"name":"   "}'),
    (4, '{"week_start_day":3}'),
    (5, '{"test_account_filters":{"key":"email"}}'),
    (6, '{"test_account_filters":[{"key":"email"},"x"]}'),
    (7, '{"path_cleaning_filters":[{"regex":"(","alias":"x"}]}'),
    (8, '{"path_cleaning_filters":[{"regex":"a"}]}'),
    (9, '{"data_attributes":null}'),
    (10, '{"person_display_name_properties":["email",1]}'),
    (11, '{"test_account_filters_default_checked":"perhaps"}'),
    (12, '[1]')
  ) AS r(n, req), pg_temp.call('project', 'PATCH', :'auth', req) ORDER BY n;
SELECT body ->> 'name' AS name, body ->> 'timezone' AS timezone, body -> 'week_start_day' AS week_start
  FROM pg_temp.call('project', 'GET', :'auth');

-- Called directly, the timezone mistake is SQLSTATE 22023 with the field and DRF's code.
SELECT pg_temp.request('PATCH', :'auth', 'project:write') AS authenticated;
SELECT api.h_project('{"timezone":"Mars/Olympus"}');
SELECT pg_temp.raises($$SELECT api.h_project('{"timezone":"Mars/Olympus"}')$$) AS error;

-- Scopes: the project:read key reads but cannot PATCH (403); DELETE is not a method of the
-- route (405); Bob's key cannot open p (403), and an unknown project is a 404.
SELECT n, status, coalesce(body ->> 'code', body ->> 'name') AS answer
  FROM (VALUES
    (1, 'GET', jsonb_build_object('x-pgi-project', :'p', 'x-pgi-authorization', 'Bearer ' || :'read_key')),
    (2, 'PATCH', jsonb_build_object('x-pgi-project', :'p', 'x-pgi-authorization', 'Bearer ' || :'read_key')),
    (3, 'DELETE', :'auth'::jsonb),
    (4, 'GET', jsonb_build_object('x-pgi-project', :'p', 'x-pgi-authorization', 'Bearer ' || :'bob_key')),
    (5, 'PATCH', jsonb_build_object('x-pgi-project', :'p', 'x-pgi-authorization', 'Bearer ' || :'bob_key')),
    (6, 'GET', :'auth'::jsonb || '{"x-pgi-project":"999999999"}')
  ) AS r(n, method, h), pg_temp.call('project', method, h, '{"timezone":"UTC"}') ORDER BY n;
RESET ROLE;
SELECT name, timezone, week_start_day FROM insights.projects WHERE id IN (:p, :q) ORDER BY id;
ROLLBACK;
