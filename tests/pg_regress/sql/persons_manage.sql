-- Persons management (sql/api/65_persons_manage.sql, sql/activity.sql; docs/api.md#project-
-- settings-and-persons-management) through the dispatcher: persons/bulk_delete/ by distinct ids,
-- person ids and uuids, with and without delete_events, with keep_person; a bad request deletes
-- nothing; deleting events drops the project's cached results and the insight counts follow;
-- PATCH, update_property, delete_property, reset_person_distinct_id and DELETE of one person, and
-- the activity log they leave (persons/:id/activity/, persons/activity/), which survives the
-- person. Persons are shown by their distinct ids (no raw ids). One transaction, rolled back.
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

-- Project p (Ann's key, every scope) and Bob's project q. Five persons: a (distinct ids a and
-- a-anon, merged by $identify), b, c, d, e; pageviews on 2024-03-01..03.
SELECT project_id AS p, personal_api_key AS key
  FROM insights.create_project_with_key('persons test', 'persons-ann@example.com') \gset
SELECT project_id AS q, personal_api_key AS bob_key
  FROM insights.create_project_with_key('other', 'persons-bob@example.com') \gset
SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"a-anon","timestamp":"2024-03-01T09:00:00Z"},
  {"event":"$identify","distinct_id":"a","timestamp":"2024-03-01T09:05:00Z","properties":{"$anon_distinct_id":"a-anon","$set":{"plan":"free","email":"a@example.com"}}},
  {"event":"$pageview","distinct_id":"a","timestamp":"2024-03-02T09:00:00Z"},
  {"event":"$pageview","distinct_id":"b","timestamp":"2024-03-01T10:00:00Z"},
  {"event":"$pageview","distinct_id":"b","timestamp":"2024-03-03T10:00:00Z"},
  {"event":"$pageview","distinct_id":"c","timestamp":"2024-03-01T11:00:00Z"},
  {"event":"$pageview","distinct_id":"c","timestamp":"2024-03-02T11:00:00Z"},
  {"event":"$pageview","distinct_id":"d","timestamp":"2024-03-02T12:00:00Z"},
  {"event":"$pageview","distinct_id":"e","timestamp":"2024-03-03T12:00:00Z"}]') AS stored;
SELECT jsonb_build_object('x-pgi-project', :'p', 'x-pgi-authorization', 'Bearer ' || :'key') AS auth \gset
SELECT jsonb_build_object('x-pgi-project', :'q', 'x-pgi-authorization', 'Bearer ' || :'bob_key') AS bob \gset
SELECT p.id AS a_id, p.uuid AS a_uuid FROM insights.persons p JOIN insights.person_distinct_ids d ON d.person_id = p.id
 WHERE d.project_id = :p AND d.distinct_id = 'a' \gset
SELECT p.id AS c_id, (SELECT uuid FROM insights.persons x JOIN insights.person_distinct_ids y ON y.person_id = x.id
                      WHERE y.project_id = :p AND y.distinct_id = 'd') AS d_uuid
  FROM insights.persons p JOIN insights.person_distinct_ids d ON d.person_id = p.id
 WHERE d.project_id = :p AND d.distinct_id = 'c' \gset

-- The project's state as a superuser sees it: persons (by their distinct ids), events per
-- distinct id (counted whether or not their person still exists), cached results.
CREATE FUNCTION pg_temp.state(p bigint) RETURNS TABLE (persons text, events text, cached bigint) LANGUAGE sql AS $$
  SELECT (SELECT string_agg(ids, ' | ' ORDER BY ids) FROM (SELECT string_agg(distinct_id, ' ' ORDER BY distinct_id) AS ids
            FROM insights.person_distinct_ids WHERE project_id = p GROUP BY person_id) x),
         (SELECT string_agg(format('%s:%s', distinct_id, n), ' ' ORDER BY distinct_id) FROM (SELECT distinct_id, count(*) AS n
            FROM insights.events WHERE project_id = p GROUP BY distinct_id) y),
         (SELECT count(*) FROM insights.query_cache WHERE project_id = p)
$$;
\set pageviews '{"query":{"kind":"TrendsQuery","series":[{"kind":"EventsNode","event":"$pageview"}],"dateRange":{"date_from":"2024-03-01","date_to":"2024-03-03"}},"refresh":"blocking"}'
SET LOCAL ROLE pgi_api;

-- A cached trend of pageviews: 3, 3, 2.
SELECT status, body -> 'results' -> 0 -> 'data' AS data, body ->> 'is_cached' AS is_cached
  FROM pg_temp.call('query', 'POST', :'auth', :'pageviews');
RESET ROLE;
SELECT * FROM pg_temp.state(:p);
SET LOCAL ROLE pgi_api;

-- Bad requests: 400 naming the field (ids or distinct_ids required; a list of at most 1000 ids;
-- boolean options), and nothing deleted, not even the persons a request named correctly.
SELECT n, pg_temp.err(status, body) AS error
  FROM (VALUES
    (1, '{}'),
    (2, '{"ids":{"x":1}}'),
    (3, (SELECT jsonb_build_object('ids', jsonb_agg(i))::text FROM generate_series(1, 1001) i)),
    (4, '{"distinct_ids":["b","c"],"delete_events":"maybe"}'),
    (5, '{"distinct_ids":["b"],"keep_person":[]}'),
    (6, '{"distinct_ids":[["b"]]}')
  ) AS r(n, req), pg_temp.call('persons_bulk_delete', 'POST', :'auth', req) ORDER BY n;
RESET ROLE;
SELECT * FROM pg_temp.state(:p);
SET LOCAL ROLE pgi_api;

-- By distinct id, without delete_events: 202 and no body; b is gone, its events stay (PostHog
-- keeps them too), and the cache stays (no event changed).
SELECT status, body FROM pg_temp.call('persons_bulk_delete', 'POST', :'auth', '{"distinct_ids":["b","nobody"]}');
RESET ROLE;
SELECT * FROM pg_temp.state(:p);
SET LOCAL ROLE pgi_api;

-- By person id and uuid, delete_events=true in the query string (an unknown id is skipped): c
-- and d go with their events, and the cached results are dropped.
SELECT status, body FROM pg_temp.call('persons_bulk_delete', 'POST', :'auth'::jsonb || '{"x-pgi-query":"delete_events=true"}',
                                      jsonb_build_object('ids', jsonb_build_array(:c_id, :'d_uuid', 999999999))::text);
RESET ROLE;
SELECT * FROM pg_temp.state(:p);
SET LOCAL ROLE pgi_api;

-- keep_person: e's events go, e stays.
SELECT status FROM pg_temp.call('persons_bulk_delete', 'POST', :'auth', '{"distinct_ids":["e"],"delete_events":true,"keep_person":true}');
RESET ROLE;
SELECT * FROM pg_temp.state(:p);
SET LOCAL ROLE pgi_api;

-- The trend now counts what is left: a's 2 pageviews and b's 2 (b's events were kept): 2, 1, 1.
SELECT body -> 'results' -> 0 -> 'data' AS data, body ->> 'is_cached' AS is_cached
  FROM pg_temp.call('query', 'POST', :'auth', :'pageviews');

-- Another project's key deletes nothing here: the request succeeds (unknown ids are skipped),
-- and row-level security keeps a, e, every event and p's cached trend (just computed again) out of
-- its reach.
SELECT status FROM pg_temp.call('persons_bulk_delete', 'POST', :'bob', '{"distinct_ids":["a","e"],"delete_events":true}');
SELECT status FROM pg_temp.call('persons_bulk_delete', 'POST', :'bob', jsonb_build_object('ids', jsonb_build_array(:a_id))::text);
RESET ROLE;
SELECT * FROM pg_temp.state(:p);
SET LOCAL ROLE pgi_api;

-- One person, a: PATCH its properties (given keys set, others kept), set one, remove one,
-- detach a-anon, then DELETE it.
SELECT status, body -> 'properties' AS properties, body -> 'distinct_ids' AS distinct_ids
  FROM pg_temp.call('person', 'PATCH', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'a_id'), '{"properties":{"plan":"pro","seats":3}}');
SELECT status FROM pg_temp.call('person_update_property', 'POST', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'a_uuid'), '{"key":"team","value":"core"}');
SELECT status FROM pg_temp.call('person_delete_property', 'POST', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'a_id'), '{"$unset":"email"}');
SELECT status FROM pg_temp.call('persons_reset_distinct_id', 'POST', :'auth', '{"distinct_id":"a-anon"}');
SELECT status, body -> 'properties' AS properties, body -> 'distinct_ids' AS distinct_ids
  FROM pg_temp.call('person', 'GET', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'a_id'));
-- Their mistakes: 400 naming the field, 404 for an unknown person or distinct id.
SELECT n, pg_temp.err(status, body) AS error
  FROM (VALUES
    (1, 'person', 'PATCH', :'a_id', '{"properties":["x"]}'),
    (2, 'person_update_property', 'POST', :'a_id', '{"value":1}'),
    (3, 'person_update_property', 'POST', :'a_id', '{"key":"k"}'),
    (4, 'person_delete_property', 'POST', :'a_id', '{"$unset":1}'),
    (5, 'persons_reset_distinct_id', 'POST', '', '{}'),
    (6, 'persons_reset_distinct_id', 'POST', '', '{"distinct_id":"nobody"}'),
    (7, 'person_update_property', 'POST', '999999999', '{"key":"k","value":1}')
  ) AS r(n, route, method, id, req), pg_temp.call(route, method, :'auth'::jsonb || jsonb_build_object('x-pgi-id', id), req) ORDER BY n;
SELECT status, body FROM pg_temp.call('person', 'DELETE', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'a_id'));
SELECT pg_temp.err(status, body) AS error FROM pg_temp.call('person', 'GET', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'a_id'));

-- persons/:id/activity/ of a, after its deletion (the log survives the person): created by
-- ingestion (a system entry, no user), then Ann's changes and the deletion. The log is newest
-- first; entries written in one transaction share their time (and ids are random uuids), so
-- they are listed here sorted by activity and changes.
SELECT status, body -> 'total_count' AS total, body -> 'next' AS next
  FROM pg_temp.call('person_activity', 'GET', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'a_id'));
SELECT e ->> 'activity' AS activity, e ->> 'is_system' AS system, e -> 'user' ->> 'email' AS "user",
       e ->> 'item_id' = :'a_id' AS item, e -> 'detail' ->> 'name' = :'a_uuid' AS name, e -> 'detail' -> 'changes' AS changes
  FROM pg_temp.call('person_activity', 'GET', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'a_id')),
       jsonb_array_elements(body -> 'results') e
 ORDER BY 1, (e -> 'detail' -> 'changes')::text;
-- Paged: limit=2, page=2 of the same 6 entries.
SELECT jsonb_array_length(body -> 'results') AS entries, body ->> 'next' AS next, body ->> 'previous' AS previous
  FROM pg_temp.call('person_activity', 'GET', :'auth'::jsonb || jsonb_build_object('x-pgi-id', :'a_id',
                    'x-pgi-query', 'limit=2&page=2', 'x-pgi-path', '/api/projects/p/persons/a/activity/'));
-- persons/activity/: every person's entries: 5 created by ingestion (a-anon's person became a's
-- at $identify: no merge), 4 deletions (b, c, d, a), Ann's 3 updates and 1 reset.
SELECT body -> 'total_count' AS total FROM pg_temp.call('persons_activity', 'GET', :'auth'::jsonb || '{"x-pgi-query":"limit=100"}');
SELECT e ->> 'activity' AS activity, count(*)
  FROM pg_temp.call('persons_activity', 'GET', :'auth'::jsonb || '{"x-pgi-query":"limit=100"}'),
       jsonb_array_elements(body -> 'results') e
 GROUP BY 1 ORDER BY 1;
-- Unknown persons: 404; Bob's key does not see a's log.
SELECT n, pg_temp.err(status, body) AS error
  FROM (VALUES (1, :'auth'::jsonb || '{"x-pgi-id":"999999999"}'), (2, :'auth'::jsonb || '{"x-pgi-id":"abc"}'),
               (3, :'bob'::jsonb || jsonb_build_object('x-pgi-id', :'a_id'))) AS r(n, h),
       pg_temp.call('person_activity', 'GET', h) ORDER BY n;
ROLLBACK;
