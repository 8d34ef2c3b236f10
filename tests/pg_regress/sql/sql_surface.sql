-- The SQL surface BI tools call: typed rows and JSON from one engine per insight kind, the
-- window_funnel / retention_flags building blocks over any table, NULL arguments (no rows or
-- NULL, as STRICT functions give) and client errors (22xxx with a field, never XX000).
\set VERBOSITY sqlstate
SET timezone = 'UTC';
SET datestyle = 'ISO';
SELECT project_id AS p FROM insights.create_project('sql surface test') \gset

-- Three persons: u1 converts fully, u2 stops after step 2, u3 only views.
SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-01-02T10:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"signup","distinct_id":"u1","timestamp":"2024-01-02T10:05:00Z"},
  {"event":"purchase","distinct_id":"u1","timestamp":"2024-01-03T09:00:00Z"},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-01-02T11:00:00Z","properties":{"$browser":"Safari"}},
  {"event":"signup","distinct_id":"u2","timestamp":"2024-01-04T11:00:00Z"},
  {"event":"$pageview","distinct_id":"u3","timestamp":"2024-01-05T12:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-01-09T10:00:00Z","properties":{"$browser":"Chrome"}}
]');

\set funnel '{"insight":"FUNNELS","date_from":"2024-01-01","date_to":"2024-01-10","funnel_window_interval":14,"funnel_window_interval_type":"day","events":[{"id":"$pageview","order":0},{"id":"signup","order":1},{"id":"purchase","order":2}]}'

SELECT step, name, count FROM insights.funnel(:p, :'funnel') ORDER BY step;
SELECT jsonb_path_query_array(insights.funnel_json(:p, :'funnel'), '$.result[*].count') AS counts;
-- Actors are person ids; show their distinct ids (ids differ from run to run).
SELECT d.distinct_id FROM insights.funnel_actors(:p, :'funnel', 2) a
  JOIN insights.person_distinct_ids d ON d.person_id = a::bigint ORDER BY 1;
SELECT d.distinct_id FROM insights.funnel_actors(:p, :'funnel', -3) a
  JOIN insights.person_distinct_ids d ON d.person_id = a::bigint ORDER BY 1;
-- A breakdown: rows per browser.
SELECT breakdown_value, step, count
  FROM insights.funnel(:p, jsonb_set(:'funnel'::jsonb, '{breakdown}', '"$browser"'))
 ORDER BY breakdown_value, step;

-- The same funnel written by hand with the building block over the events table.
SELECT level, count(*) FROM (
  SELECT person_id, insights.window_funnel('14 days', timestamp,
           event = '$pageview', event = 'signup', event = 'purchase') AS level
    FROM insights.events
   WHERE project_id = :p AND timestamp >= '2024-01-01' AND timestamp < '2024-01-11'
   GROUP BY person_id) f
 GROUP BY level ORDER BY level;

-- Trends: daily pageviews, typed.
SELECT series, bucket, value
  FROM insights.trend(:p, '{"insight":"TRENDS","date_from":"2024-01-01","date_to":"2024-01-05","interval":"day","events":[{"id":"$pageview"}]}')
 ORDER BY bucket;
-- Retention: daily, 3 intervals.
SELECT cohort_date, period, count
  FROM insights.retention(:p, '{"insight":"RETENTION","date_from":"2024-01-02","date_to":"2024-01-04","period":"Day","total_intervals":3,"target_entity":{"id":"$pageview","type":"events"},"returning_entity":{"id":"$pageview","type":"events"}}')
 ORDER BY cohort_date, period;

-- NULL arguments: no rows / NULL, never an internal error.
SELECT insights.funnel_json(NULL, :'funnel') IS NULL AS null_project;
SELECT insights.trend_json(:p, NULL) IS NULL AS null_query;
SELECT count(*) FROM insights.funnel_actors(NULL, :'funnel', 1);
SELECT count(*) FROM insights.funnel_actors(:p, NULL, 1);
SELECT count(*) FROM insights.funnel_actors(:p, :'funnel', NULL);
SELECT count(*) FROM insights.funnel(:p, NULL);
SELECT count(*) FROM insights.retention(NULL, '{}');

-- Client errors: SQLSTATE 22023 (bad value), 22007 (bad date), 22P02 (malformed), each with the
-- field in DETAIL (the HTTP layer turns it into PostHog's `attr`).
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text;
BEGIN
  EXECUTE q;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
  RETURN st || ' ' || msg || ' [' || det || ']';
END $$;
SELECT pg_temp.err(format('SELECT * FROM insights.funnel_actors(%s, %L, 0)', :p, :'funnel'));
SELECT pg_temp.err(format('SELECT insights.funnel_json(%s, %L)', :p, '{"insight":"FUNNELS","events":[{"id":"a"}]}'));
SELECT pg_temp.err(format('SELECT insights.trend_json(%s, %L)', :p, '{"insight":"TRENDS","date_from":"yesterday-ish","events":[{"id":"a"}]}'));
SELECT pg_temp.err(format('SELECT insights.retention_json(%s, %L)', :p, '{"insight":"RETENTION","total_intervals":"many"}'));
SELECT pg_temp.err(format('SELECT insights.funnel_json(%s, %L)', :p, '{"insight":"FUNNELS","events":[{"id":"a"},'));
SELECT pg_temp.err(format('SELECT insights.funnel_json(99999999, %L)', :'funnel'));

-- Async queries by hand (this database has no worker: pg_insights.worker_database names another):
-- enqueue → claim → run → cached; the same key while queued gives the same task; an engine
-- error is recorded on the task and not cached; a queued task can be cancelled.
SELECT insights.enqueue_query(:p, 'funnel', :'funnel', 'k1') AS t1 \gset
SELECT insights.enqueue_query(:p, 'funnel', :'funnel', 'k1') = :'t1' AS same_task;
SELECT insights.claim_query_task() = :'t1' AS claimed;
SELECT insights.run_query_task(:'t1');
SELECT status, attempts, error_message FROM insights.query_tasks WHERE id = :'t1';
SELECT jsonb_path_query_array(result, '$.result[*].count') AS cached_counts
  FROM insights.query_cache WHERE project_id = :p AND cache_key = 'k1';
SELECT s->'complete' AS complete, s->'error' AS error, jsonb_path_query_array(s, '$.results.result[*].count') AS counts
  FROM insights.query_status(:p, :'t1') AS s;
SELECT insights.query_status(:p + 1, :'t1') IS NULL AS other_project_sees_nothing;
SELECT insights.enqueue_query(:p, 'funnel', '{"insight":"FUNNELS","events":[{"id":"a"}]}', 'k2') AS t2 \gset
SELECT insights.claim_query_task() = :'t2' AS claimed;
SELECT insights.run_query_task(:'t2');
SELECT status, error_state, error_message FROM insights.query_tasks WHERE id = :'t2';
SELECT count(*) AS cached FROM insights.query_cache WHERE project_id = :p AND cache_key = 'k2';
SELECT insights.enqueue_query(:p, 'trend', '{}', 'k3') AS t3 \gset
SELECT insights.cancel_query_task(:p, :'t3') AS cancelled, insights.cancel_query_task(:p, :'t3') AS again;
SELECT status FROM insights.query_tasks WHERE id = :'t3';
SELECT insights.claim_query_task() IS NULL AS queue_empty;
SELECT pg_temp.err(format('SELECT insights.enqueue_query(%s, %L, %L, %L)', :p, 'paths', '{}', 'k4'));
