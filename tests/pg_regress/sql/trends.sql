-- Trends from SQL: insights.trend (typed rows), trend_json (PostHog's body), trend_actors (who is
-- behind one data point) and trend_csv (PostHog's CSV export): total counts, daily active users,
-- a property math, a breakdown, compare, a formula, hourly buckets in a non-UTC project, and
-- client errors with their SQLSTATE. Everything runs in one transaction that is rolled back.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
SET timezone = 'UTC';
SET datestyle = 'ISO';
BEGIN;
SELECT project_id AS p FROM insights.create_project('trends test') \gset
-- Actors are person ids (they differ from run to run): pg_temp.who shows their distinct ids.
CREATE FUNCTION pg_temp.who(ids text[]) RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(distinct_id, ',' ORDER BY distinct_id) FROM insights.person_distinct_ids
   WHERE person_id = ANY (ids::bigint[]) $$;

-- Pageviews per day (03-01 .. 03-04): 2, 2, 0, 2 by 1, 2, 0, 2 persons; purchases of 10 (03-02),
-- 30 (03-03), 20 and 40 (03-04). u1 and u3 use Chrome, u2 Safari.
SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-03-01T09:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-03-01T10:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-03-02T09:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"purchase","distinct_id":"u1","timestamp":"2024-03-02T15:00:00Z","properties":{"amount":10}},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-03-02T12:00:00Z","properties":{"$browser":"Safari"}},
  {"event":"purchase","distinct_id":"u2","timestamp":"2024-03-03T12:00:00Z","properties":{"amount":30}},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-03-04T12:00:00Z","properties":{"$browser":"Safari"}},
  {"event":"$pageview","distinct_id":"u3","timestamp":"2024-03-04T08:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"purchase","distinct_id":"u3","timestamp":"2024-03-04T09:00:00Z","properties":{"amount":20}},
  {"event":"purchase","distinct_id":"u3","timestamp":"2024-03-04T10:00:00Z","properties":{"amount":40}}
]');

-- Total pageviews and daily active users, one row per series (named by custom_name) and day.
\set trend '{"insight":"TRENDS","date_from":"2024-03-01","date_to":"2024-03-04","interval":"day","events":[{"id":"$pageview","custom_name":"views","order":0},{"id":"$pageview","math":"dau","custom_name":"users","order":1}]}'
SELECT series, bucket::date AS day, value FROM insights.trend(:p, :'trend') ORDER BY series, bucket;
-- The same as PostHog's body: one item per series with data, labels and count (the total).
SELECT item ->> 'label' AS label, item -> 'data' AS data, item -> 'labels' AS labels, item -> 'count' AS count
  FROM jsonb_array_elements(insights.trend_json(:p, :'trend') -> 'result') AS item;

-- Property maths over purchase.amount: sum, average and maximum per day (a day without a
-- purchase is 0).
SELECT series, bucket::date AS day, value FROM insights.trend(:p, '{"insight":"TRENDS","date_from":"2024-03-01","date_to":"2024-03-04",
  "events":[{"id":"purchase","math":"sum","math_property":"amount","custom_name":"sum","order":0},
            {"id":"purchase","math":"avg","math_property":"amount","custom_name":"avg","order":1},
            {"id":"purchase","math":"max","math_property":"amount","custom_name":"max","order":2}]}') ORDER BY series, bucket;
-- A total-value display has one row per series and no bucket; users counts each person once (3).
SELECT series, bucket, value
  FROM insights.trend(:p, jsonb_set(:'trend'::jsonb, '{display}', '"BoldNumber"')) ORDER BY series;

-- A breakdown by browser (total pageviews): Chrome 2, 1, 0, 1; Safari 0, 1, 0, 1.
\set pv '{"insight":"TRENDS","date_from":"2024-03-01","date_to":"2024-03-04","events":[{"id":"$pageview"}]}'
SELECT breakdown_value, bucket::date AS day, value
  FROM insights.trend(:p, jsonb_set(:'pv'::jsonb, '{breakdown}', '"$browser"')) ORDER BY breakdown_value, bucket;

-- Compare 03-03 .. 03-04 with the period before it (03-01 .. 03-02).
SELECT item ->> 'compare_label' AS compare_label, item -> 'days' AS days, item -> 'data' AS data
  FROM jsonb_array_elements(insights.trend_json(:p, '{"insight":"TRENDS","date_from":"2024-03-03","date_to":"2024-03-04",
         "compare":true,"events":[{"id":"$pageview"}]}') -> 'result') AS item;

-- A formula over the two series: pageviews per active user (A / B); a day without users gives 0.
SELECT series, bucket::date AS day, value
  FROM insights.trend(:p, jsonb_set(:'trend'::jsonb, '{formula}', '"A / B"')) ORDER BY bucket;

-- Actors behind one point: the active users of 03-02, and the Safari pageviewers of 03-04.
SELECT pg_temp.who(ARRAY(SELECT insights.trend_actors(:p, :'trend'::jsonb || '{"entity_id":"$pageview","entity_type":"events",
         "entity_math":"dau","date_from":"2024-03-02","date_to":"2024-03-02"}'))) AS dau_03_02,
       pg_temp.who(ARRAY(SELECT insights.trend_actors(:p, :'pv'::jsonb || '{"breakdown":"$browser","breakdown_value":"Safari",
         "entity_id":"$pageview","entity_type":"events","date_from":"2024-03-04","date_to":"2024-03-04"}'))) AS safari_03_04;

-- PostHog's CSV export: a column per day, a row per series, CRLF line ends; with the file name.
SELECT replace(csv, E'\r\n', E'\n') AS csv, filename FROM insights.trend_csv(:p, :'trend');
SELECT filename FROM insights.trend_csv(:p, :'pv', 'Views by day!');

-- Hourly buckets follow the project's time zone (Asia/Kolkata, UTC+05:30): 03-01 local is
-- 02-29 18:30Z .. 03-01 18:30Z, so the 20:00Z and 04:45Z/04:50Z views fall in the 01:00 and 10:00
-- local hours, and the 18:00Z and 19:00Z views are outside the day. As in PostHog, an hourly
-- range ends at the hour date_to names (a bare date would mean its 00:00 hour only).
SELECT project_id AS k FROM insights.create_project('trends kolkata', 'Asia/Kolkata') \gset
SELECT insights.capture_batch(:k, '[
  {"event":"$pageview","distinct_id":"v1","timestamp":"2024-02-29T18:00:00Z"},
  {"event":"$pageview","distinct_id":"v1","timestamp":"2024-02-29T20:00:00Z"},
  {"event":"$pageview","distinct_id":"v1","timestamp":"2024-03-01T04:45:00Z"},
  {"event":"$pageview","distinct_id":"v2","timestamp":"2024-03-01T04:50:00Z"},
  {"event":"$pageview","distinct_id":"v2","timestamp":"2024-03-01T19:00:00Z"}
]');
\set hourly '{"insight":"TRENDS","date_from":"2024-03-01","date_to":"2024-03-01T23:00:00","interval":"hour","events":[{"id":"$pageview"}]}'
SELECT count(*) AS buckets, sum(value) AS views, min(bucket) AS first_bucket FROM insights.trend(:k, :'hourly');
SELECT bucket, bucket AT TIME ZONE 'Asia/Kolkata' AS local_hour, value
  FROM insights.trend(:k, :'hourly') WHERE value > 0 ORDER BY bucket;
SELECT j ->> 'timezone' AS timezone, j -> 'result' -> 0 -> 'days' -> 10 AS days_10
  FROM insights.trend_json(:k, :'hourly') AS j;

-- Client errors: 22023 (bad value), 22007 (bad date), never XX000.
SELECT insights.trend_json(:p, '{"insight":"TRENDS","events":[{"id":"$pageview","math":"median-ish"}]}');
SELECT insights.trend_json(:p, '{"insight":"TRENDS","events":[{"id":"purchase","math":"sum"}]}');
SELECT insights.trend_json(:p, jsonb_set(:'pv'::jsonb, '{interval}', '"fortnight"'));
SELECT insights.trend_json(:p, jsonb_set(:'trend'::jsonb, '{formula}', '"A + C"'));
SELECT insights.trend_json(:p, jsonb_set(:'pv'::jsonb, '{date_to}', '"someday"'));
SELECT count(*) FROM insights.trend_actors(:p, :'pv'::jsonb || '{"entity_id":"nope"}');
ROLLBACK;
