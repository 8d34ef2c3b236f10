-- Funnels from SQL: insights.funnel (typed rows), funnel_json (PostHog's body), funnel_actors
-- (who converted or dropped off), the order types, a breakdown, exclusions, the conversion window,
-- insights.window_funnel over a plain table, and client errors with their SQLSTATE.
-- Everything runs in one transaction that is rolled back.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
SET timezone = 'UTC';
SET datestyle = 'ISO';
BEGIN;
SELECT project_id AS p FROM insights.create_project('funnels test') \gset

-- signup → activate → pay. a converts in two hours; b converts after three days, with a pageview
-- between signup and activate; c activates before signing up; d cancels, then activates; e only pays.
SELECT insights.capture_batch(:p, '[
  {"event":"signup","distinct_id":"a","timestamp":"2024-02-01T10:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"activate","distinct_id":"a","timestamp":"2024-02-01T10:20:00Z","properties":{"$browser":"Chrome"}},
  {"event":"pay","distinct_id":"a","timestamp":"2024-02-01T12:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"signup","distinct_id":"b","timestamp":"2024-02-02T10:00:00Z","properties":{"$browser":"Safari"}},
  {"event":"$pageview","distinct_id":"b","timestamp":"2024-02-02T10:30:00Z","properties":{"$browser":"Safari"}},
  {"event":"activate","distinct_id":"b","timestamp":"2024-02-02T11:00:00Z","properties":{"$browser":"Safari"}},
  {"event":"pay","distinct_id":"b","timestamp":"2024-02-05T10:00:00Z","properties":{"$browser":"Safari"}},
  {"event":"activate","distinct_id":"c","timestamp":"2024-02-03T09:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"signup","distinct_id":"c","timestamp":"2024-02-03T10:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"pay","distinct_id":"c","timestamp":"2024-02-03T11:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"signup","distinct_id":"d","timestamp":"2024-02-04T10:00:00Z","properties":{"$browser":"Safari"}},
  {"event":"cancel","distinct_id":"d","timestamp":"2024-02-04T10:30:00Z","properties":{"$browser":"Safari"}},
  {"event":"activate","distinct_id":"d","timestamp":"2024-02-04T11:00:00Z","properties":{"$browser":"Safari"}},
  {"event":"pay","distinct_id":"e","timestamp":"2024-02-06T10:00:00Z","properties":{"$browser":"Chrome"}}
]');

-- Ordered, 14-day window: a, b, c, d enter; a, b, d activate; a, b pay. Times are seconds from
-- the previous step: activate 1200 (a), 3600 (b), 3600 (d); pay 6000 (a), 255600 (b).
\set funnel '{"insight":"FUNNELS","date_from":"2024-02-01","date_to":"2024-02-10","funnel_window_interval":14,"funnel_window_interval_unit":"day","events":[{"id":"signup","order":0},{"id":"activate","order":1},{"id":"pay","order":2}]}'
SELECT step, name, count, average_conversion_time, median_conversion_time
  FROM insights.funnel(:p, :'funnel') ORDER BY step;
-- The same funnel as PostHog's body (last_refresh is the time of the call, so it is left out).
SELECT jsonb_path_query_array(j, '$.result[*].count') AS counts,
       jsonb_path_query_array(j, '$.result[*].name') AS names,
       j ->> 'timezone' AS timezone, j ->> 'is_cached' AS is_cached
  FROM insights.funnel_json(:p, :'funnel') AS j;
-- Actors are person ids (they differ from run to run): pg_temp.who shows their distinct ids.
-- Step 2 = converted to step 2; -2 / -3 = dropped off right before step 2 / 3.
CREATE FUNCTION pg_temp.who(ids text[]) RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(distinct_id, ',' ORDER BY distinct_id) FROM insights.person_distinct_ids
   WHERE person_id = ANY (ids::bigint[]) $$;
SELECT pg_temp.who(ARRAY(SELECT insights.funnel_actors(:p, :'funnel', 2))) AS step_2,
       pg_temp.who(ARRAY(SELECT insights.funnel_actors(:p, :'funnel', -2))) AS dropped_before_2,
       pg_temp.who(ARRAY(SELECT insights.funnel_actors(:p, :'funnel', -3))) AS dropped_before_3;

-- A one-day conversion window: b pays too late, so only a completes.
SELECT step, count, average_conversion_time
  FROM insights.funnel(:p, jsonb_set(:'funnel'::jsonb, '{funnel_window_interval}', '1')) ORDER BY step;

-- Strict order (FunnelsQuery form): no other event may come between two steps, so b (pageview)
-- and d (cancel) stop at step 1 and c (pay right after signup) too; only a completes.
SELECT step, name, count FROM insights.funnel(:p, '{"kind":"FunnelsQuery",
  "series":[{"kind":"EventsNode","event":"signup"},{"kind":"EventsNode","event":"activate"},{"kind":"EventsNode","event":"pay"}],
  "dateRange":{"date_from":"2024-02-01","date_to":"2024-02-10"},
  "funnelsFilter":{"funnelOrderType":"strict","funnelWindowInterval":14,"funnelWindowIntervalUnit":"day"}}') ORDER BY step;

-- Unordered: steps in any order; steps are named "Completed N steps". e (pay only) completes 1,
-- d completes 2, a, b and c complete 3.
SELECT step, name, count
  FROM insights.funnel(:p, jsonb_set(:'funnel'::jsonb, '{funnel_order_type}', '"unordered"')) ORDER BY step;

-- An exclusion: a "cancel" between signup and activate removes d from every step.
\set excl '[{"id":"cancel","type":"events","funnel_from_step":0,"funnel_to_step":1}]'
SELECT step, count FROM insights.funnel(:p, jsonb_set(:'funnel'::jsonb, '{exclusions}', :'excl')) ORDER BY step;
SELECT pg_temp.who(ARRAY(SELECT insights.funnel_actors(:p, jsonb_set(:'funnel'::jsonb, '{exclusions}', :'excl'), 1)))
       AS entered;

-- A breakdown by browser (of the first step's event): Chrome a, c; Safari b, d.
SELECT breakdown_value, step, count
  FROM insights.funnel(:p, jsonb_set(:'funnel'::jsonb, '{breakdown}', '"$browser"'))
 ORDER BY breakdown_value, step;
SELECT pg_temp.who(ARRAY(SELECT insights.funnel_actors(:p, jsonb_set(:'funnel'::jsonb, '{breakdown}', '"$browser"'),
                                                      2, '"Safari"'))) AS safari_step_2;

-- insights.window_funnel over any table: the furthest step per user within the window, and
-- ClickHouse's modes. u2 has an unrelated event between a and b, u3 repeats b, u4 does a and b
-- at the same instant.
CREATE TEMP TABLE clicks (user_id int, ts timestamptz, ev text);
INSERT INTO clicks VALUES
  (1, '2024-01-01 10:00', 'a'), (1, '2024-01-01 10:10', 'b'), (1, '2024-01-01 10:20', 'c'),
  (2, '2024-01-01 10:00', 'a'), (2, '2024-01-01 10:05', 'x'), (2, '2024-01-01 10:10', 'b'),
  (3, '2024-01-01 10:00', 'a'), (3, '2024-01-01 10:05', 'b'), (3, '2024-01-01 10:10', 'b'), (3, '2024-01-01 10:15', 'c'),
  (4, '2024-01-01 10:00', 'a'), (4, '2024-01-01 10:00', 'b');
SELECT user_id,
       insights.window_funnel('1 hour', ts, ev = 'a', ev = 'b', ev = 'c') AS plain,
       insights.window_funnel('12 minutes', ts, ev = 'a', ev = 'b', ev = 'c') AS short_window,
       insights.window_funnel('1 hour', 'strict_order', ts, ev = 'a', ev = 'b', ev = 'c') AS strict_order,
       insights.window_funnel('1 hour', 'strict_deduplication', ts, ev = 'a', ev = 'b', ev = 'c') AS strict_dedup,
       insights.window_funnel('1 hour', 'strict_increase', ts, ev = 'a', ev = 'b', ev = 'c') AS strict_increase
  FROM clicks GROUP BY user_id ORDER BY user_id;

-- Client errors: 22023 (bad value, with the field in DETAIL), 22007 (bad date), never XX000.
SELECT insights.funnel_json(:p, '{"insight":"FUNNELS","events":[{"id":"signup"}]}');
SELECT insights.funnel_json(:p, jsonb_set(:'funnel'::jsonb, '{funnel_order_type}', '"sideways"'));
SELECT insights.funnel_json(:p, jsonb_set(:'funnel'::jsonb, '{funnel_window_interval_unit}', '"fortnight"'));
SELECT insights.funnel_json(:p, jsonb_set(:'funnel'::jsonb, '{exclusions}',
  '[{"id":"cancel","type":"events","funnel_from_step":1,"funnel_to_step":1}]'));
SELECT insights.funnel_json(:p, jsonb_set(:'funnel'::jsonb, '{date_from}', '"the other day"'));
SELECT count(*) FROM insights.funnel_actors(:p, :'funnel', 0);
SELECT insights.window_funnel('1 hour', 'sideways', ts, ev = 'a') FROM clicks;
SELECT insights.window_funnel('-1 hour', ts, ev = 'a') FROM clicks;
ROLLBACK;
