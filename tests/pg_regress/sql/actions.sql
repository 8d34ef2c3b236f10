-- Actions (sql/api/80_actions.sql, docs/api.md#actions-and-cohorts) as the dispatcher serves them
-- and a psql user calls them: create, list (newest first, search, paging), retrieve, PATCH, soft
-- delete with deleted: true (DELETE is 405); validation errors as PostHog's body and, called
-- directly, as SQLSTATE 22023; a failed request stores nothing; another project's key sees
-- nothing; and the steps compiled into an insight: a trend over an action counts the events any
-- step matches, follows a PATCH at once, and a deleted action is a 400 there. Action ids are
-- masked as <id> where messages carry them. One transaction, rolled back.
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

-- Project p (Ann's key, every scope) and Bob's project q. Events on 2024-03-01..03: pageviews of
-- /pricing and /home, signups with a plan.
SELECT project_id AS p, user_id AS ann, personal_api_key AS key
  FROM insights.create_project_with_key('actions test', 'actions-ann@example.com') \gset
SELECT project_id AS q, personal_api_key AS bob_key
  FROM insights.create_project_with_key('other', 'actions-bob@example.com') \gset
SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-03-01T10:00:00Z","properties":{"$current_url":"https://shop.test/pricing"}},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-03-01T11:00:00Z","properties":{"$current_url":"https://shop.test/home"}},
  {"event":"signup","distinct_id":"u2","timestamp":"2024-03-01T11:05:00Z","properties":{"plan":"pro"}},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-03-02T09:00:00Z","properties":{"$current_url":"https://shop.test/pricing?x=1"}},
  {"event":"$pageview","distinct_id":"u3","timestamp":"2024-03-03T10:00:00Z","properties":{"$current_url":"https://shop.test/pricing"}},
  {"event":"signup","distinct_id":"u3","timestamp":"2024-03-03T10:30:00Z","properties":{"plan":"free"}},
  {"event":"signup","distinct_id":"u1","timestamp":"2024-03-03T12:00:00Z","properties":{"plan":"pro"}}]') AS stored;
SELECT jsonb_build_object('x-pgi-project', :'p', 'x-pgi-authorization', 'Bearer ' || :'key') AS auth \gset
SELECT jsonb_build_object('x-pgi-project', :'q', 'x-pgi-authorization', 'Bearer ' || :'bob_key') AS bob \gset
-- Action ids in messages ("Action 12 does not exist", "… with this name, ID 12") → <id>.
CREATE FUNCTION pg_temp.mask(t text) RETURNS text LANGUAGE sql AS $$ SELECT regexp_replace(t, '(Action|ID) \d+', '\1 <id>', 'g') $$;
SET LOCAL ROLE pgi_api;

-- POST actions/: 201 with PostHog's serializer; every step field is returned (absent ones null),
-- unknown step keys (isNew) are dropped, duplicate tags once.
SELECT status, body ->> 'name' AS name, body -> 'steps' AS steps, body -> 'tags' AS tags,
       body ->> 'deleted' AS deleted, body ->> 'is_calculating' AS calculating,
       (body ->> 'team_id')::bigint = :p AS own_team, body -> 'created_by' ->> 'email' AS created_by
  FROM pg_temp.call('actions', 'POST', :'auth', '{"name":"Pricing or pro signup","tags":["web","web","sales"],
    "steps":[{"event":"$pageview","url":"/pricing","url_matching":"contains","isNew":"x"},
             {"event":"signup","properties":[{"key":"plan","value":"pro","operator":"exact","type":"event"}]}]}');
SELECT id AS pricing FROM insights.actions WHERE name = 'Pricing or pro signup' \gset
SELECT status, body ->> 'name' AS name FROM pg_temp.call('actions', 'POST', :'auth', '{"name":"Signed up","steps":[{"event":"signup"}]}');
SELECT status, body ->> 'name' AS name FROM pg_temp.call('actions', 'POST', :'auth', '{"name":"Home","description":"the home page","steps":[{"url":"^https://shop\\.test/home$","url_matching":"regex"}]}');
SELECT id AS signed_up FROM insights.actions WHERE name = 'Signed up' \gset

-- GET actions/: live actions, newest first; ?search= (case-insensitive); ?limit pages with
-- DRF's next/previous URLs.
SELECT status, body -> 'count' AS count, jsonb_path_query_array(body, '$.results[*].name') AS names
  FROM pg_temp.call('actions', 'GET', :'auth');
SELECT body -> 'count' AS count, jsonb_path_query_array(body, '$.results[*].name') AS names
  FROM pg_temp.call('actions', 'GET', :'auth'::jsonb || '{"x-pgi-query":"search=SIGN"}');
SELECT jsonb_path_query_array(body, '$.results[*].name') AS names, body ->> 'next' AS next, body ->> 'previous' AS previous
  FROM pg_temp.call('actions', 'GET', :'auth'::jsonb || '{"x-pgi-query":"limit=1&offset=1", "x-pgi-path":"/api/projects/p/actions/"}');

-- A trend over an action counts the events any of its steps matches: pricing pageviews on 03-01,
-- 03-02 and 03-03, pro signups on 03-01 and 03-03 (not the free one, not /home): 2, 1, 2.
\set action_trend '{"insight":"TRENDS","actions":[{"id":":pricing","type":"actions"}],"date_from":"2024-03-01","date_to":"2024-03-03"}'
SELECT replace(:'action_trend', ':pricing', :'pricing') AS action_trend \gset
SELECT status, body -> 'result' -> 0 -> 'data' AS data, body -> 'result' -> 0 ->> 'count' AS total,
       body -> 'result' -> 0 -> 'action' ->> 'name' AS series
  FROM pg_temp.call('insight_trend', 'POST', :'auth', :'action_trend');
-- The same counts from the raw events (the reference).
SELECT "timestamp"::date AS day, count(*) FROM insights.events
 WHERE project_id = :p AND ((event = '$pageview' AND properties ->> '$current_url' LIKE '%/pricing%')
                            OR (event = 'signup' AND properties ->> 'plan' = 'pro'))
 GROUP BY 1 ORDER BY 1;
-- A regex URL step without an event matches any event with that URL: one /home pageview.
SELECT body -> 'result' -> 0 ->> 'count' AS total
  FROM pg_temp.call('insight_trend', 'POST', :'auth', (SELECT jsonb_build_object('insight', 'TRENDS',
    'actions', jsonb_build_array(jsonb_build_object('id', id, 'type', 'actions')),
    'date_from', '2024-03-01', 'date_to', '2024-03-03')::text FROM insights.actions WHERE name = 'Home'));

-- PATCH changes the definition, and the next insight uses it at once: signups only → 1, 0, 2.
SELECT status, body ->> 'name' AS name, jsonb_array_length(body -> 'steps') AS steps
  FROM pg_temp.call('action', 'PATCH', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'pricing'),
                    '{"name":"Signups","steps":[{"event":"signup"}]}');
SELECT body -> 'result' -> 0 -> 'data' AS data FROM pg_temp.call('insight_trend', 'POST', :'auth', :'action_trend');

-- Soft delete: PATCH deleted: true. The list hides it, GET still returns it, an insight over it
-- is a 400 naming the series; DELETE is 405 (PostHog's ForbidDestroyModel).
SELECT status, body ->> 'deleted' AS deleted
  FROM pg_temp.call('action', 'PATCH', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'pricing'), '{"deleted":true}');
SELECT jsonb_path_query_array(body, '$.results[*].name') AS names FROM pg_temp.call('actions', 'GET', :'auth');
SELECT status, body ->> 'name' AS name, body ->> 'deleted' AS deleted
  FROM pg_temp.call('action', 'GET', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'pricing'));
SELECT pg_temp.mask(pg_temp.err(status, body)) AS error
  FROM pg_temp.call('insight_trend', 'POST', :'auth', :'action_trend');
SELECT pg_temp.err(status, body) AS error
  FROM pg_temp.call('action', 'DELETE', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'pricing'));
-- Restoring needs its name free among live actions: with a live "Signups" it is a 400 (unique);
-- restored under another name it counts again (signups only: 3).
SELECT status, body ->> 'name' AS name FROM pg_temp.call('actions', 'POST', :'auth', '{"name":"Signups"}');
SELECT pg_temp.mask(pg_temp.err(status, body)) AS error
  FROM pg_temp.call('action', 'PATCH', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'pricing'), '{"deleted":false}');
SELECT status, body ->> 'name' AS name, body ->> 'deleted' AS deleted
  FROM pg_temp.call('action', 'PATCH', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'pricing'),
                    '{"deleted":false,"name":"All signups"}');
SELECT body -> 'result' -> 0 ->> 'count' AS total FROM pg_temp.call('insight_trend', 'POST', :'auth', :'action_trend');

-- Bad bodies: 400 with PostHog's body naming the field, and nothing stored.
SELECT n, pg_temp.mask(pg_temp.err(status, body)) AS error
  FROM (VALUES
    (1, '{"name":"Signed up","steps":[]}'),
    (2, '{"name":"x","steps":[{"event":"e","url_matching":"glob"}]}'),
    (3, '{"name":"x","steps":[{"url":"(unclosed","url_matching":"regex"}]}'),
    (4, '{"name":"x","steps":[{"event":"e","properties":[1]}]}'),
    (5, '{"name":"x","steps":{"event":"e"}}'),
    (6, '{"name":"x","steps":["e"]}'),
    (7, '{"name":"x","tags":[1]}'),
    (8, '{"name":"x","pinned_at":"yesterday"}'),
    (9, '{"name":"x","deleted":"maybe"}'),
    (10, '{"name":"x","steps":[{"event":"e","properties":[{"key":"plan","operator":"no_such_operator","value":"x"}]}]}'),
    (11, '{"name":"x","steps":[{"event":"$autocapture","selector":"div::after"}]}')
  ) AS r(n, req), pg_temp.call('actions', 'POST', :'auth', req) ORDER BY n;
RESET ROLE;
SELECT name, deleted FROM insights.actions WHERE project_id = :p ORDER BY id;
SET LOCAL ROLE pgi_api;

-- Called directly (as a psql user would, once the request is authenticated), the same mistakes
-- are SQLSTATE 22023 with the field in DETAIL and DRF's code in HINT.
SELECT pg_temp.request('POST', :'auth', 'action:write') AS authenticated;
SELECT api.h_actions('{"name":"x","steps":[{"event":"e","url_matching":"glob"}]}');
SELECT n, pg_temp.mask(pg_temp.raises(stmt)) AS error
  FROM (VALUES
    (1, $$SELECT api.h_actions('{"name":"x","steps":[{"event":"e","url_matching":"glob"}]}')$$),
    (2, $$SELECT api.h_actions('{"name":"Signed up"}')$$),
    (3, $$SELECT api.h_actions('{"name":"x","steps":[{"event":"$autocapture","selector":"div::after"}]}')$$)) AS t(n, stmt)
 ORDER BY n;
-- A good one returns the serializer.
SELECT api.h_actions('{"name":"Direct","steps":[{"event":"$pageview"}]}')::jsonb ->> 'name' AS name;

-- Another project's key: Ann's action is not found there (404), and its list is empty.
SELECT pg_temp.err(status, body) AS error
  FROM pg_temp.call('action', 'GET', :'bob'::jsonb || jsonb_build_object('x-pgi-id', :'signed_up'));
SELECT pg_temp.err(status, body) AS error
  FROM pg_temp.call('action', 'PATCH', :'bob'::jsonb || jsonb_build_object('x-pgi-id', :'signed_up'), '{"name":"stolen"}');
SELECT body -> 'count' AS count FROM pg_temp.call('actions', 'GET', :'bob');
RESET ROLE;
SELECT name, deleted FROM insights.actions WHERE id = :signed_up;
ROLLBACK;
