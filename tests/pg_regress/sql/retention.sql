-- Retention from SQL: insights.retention (typed rows), retention_json (PostHog's body),
-- retention_actors (a cohort's actors with the periods they came back in), recurring, cumulative
-- and first-time retention, insights.retention_flags over a plain table, and client errors with
-- their SQLSTATE. Everything runs in one transaction that is rolled back.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
SET timezone = 'UTC';
SET datestyle = 'ISO';
BEGIN;
SELECT project_id AS p FROM insights.create_project('retention test') \gset
-- Actors are person ids (they differ from run to run): pg_temp.who shows their distinct ids.
CREATE FUNCTION pg_temp.who(id text) RETURNS text LANGUAGE sql AS $$
  SELECT min(distinct_id) FROM insights.person_distinct_ids WHERE person_id = id::bigint $$;

-- Days with a pageview: u1 04-01, 04-02, 04-04; u2 04-01, 04-03; u3 04-02, 04-03;
-- u4 03-30 (before the range) and 04-02.
SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-04-01T09:00:00Z"},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-04-02T09:00:00Z"},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-04-04T09:00:00Z"},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-04-01T10:00:00Z"},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-04-03T10:00:00Z"},
  {"event":"$pageview","distinct_id":"u3","timestamp":"2024-04-02T11:00:00Z"},
  {"event":"$pageview","distinct_id":"u3","timestamp":"2024-04-03T11:00:00Z"},
  {"event":"$pageview","distinct_id":"u4","timestamp":"2024-03-30T12:00:00Z"},
  {"event":"$pageview","distinct_id":"u4","timestamp":"2024-04-02T12:00:00Z"}
]');

-- Recurring, daily, 4 cohorts ending at date_to (04-01 .. 04-04). Cohort 04-01 = {u1, u2}:
-- 2, 1 (u1), 1 (u2), 1 (u1); 04-02 = {u1, u3, u4}: 3, 1 (u3), 1 (u1); 04-03 = {u2, u3}: 2, 0;
-- 04-04 = {u1}: 1. The matrix is cohorts × total_intervals: cells past the range end are 0.
\set ret '{"insight":"RETENTION","date_to":"2024-04-04","period":"Day","total_intervals":4,"target_entity":{"id":"$pageview","type":"events"},"returning_entity":{"id":"$pageview","type":"events"}}'
SELECT cohort_date, cohort_label, period, count, round(percentage::numeric, 2) AS percentage
  FROM insights.retention(:p, :'ret') ORDER BY cohort_date, period;
-- The same as PostHog's body: one item per cohort with its label, date and counts.
SELECT item ->> 'label' AS label, item ->> 'date' AS date, jsonb_path_query_array(item, '$.values[*].count') AS counts
  FROM jsonb_array_elements(insights.retention_json(:p, :'ret') -> 'result') AS item;

-- Cumulative: a person counts in period k when they came back in period k or any later one.
SELECT cohort_date, array_agg(count ORDER BY period) AS counts
  FROM insights.retention(:p, jsonb_set(:'ret'::jsonb, '{cumulative}', 'true')) GROUP BY 1 ORDER BY 1;

-- First-time retention: a person's cohort is the day of their first pageview ever, so u4 (first
-- seen 03-30) is in no cohort and u1 is only in 04-01's.
SELECT cohort_date, array_agg(count ORDER BY period) AS counts
  FROM insights.retention(:p, jsonb_set(:'ret'::jsonb, '{retention_type}', '"retention_first_time"'))
 GROUP BY 1 ORDER BY 1;

-- The actors of cohort 1 (04-02) with the periods they appeared in (0 = the cohort day).
SELECT pg_temp.who(actor) AS actor, appearances
  FROM insights.retention_actors(:p, :'ret', 1) ORDER BY 1;
SELECT pg_temp.who(actor) AS actor, appearances
  FROM insights.retention_actors(:p, jsonb_set(:'ret'::jsonb, '{retention_type}', '"retention_first_time"'), 1)
 ORDER BY 1;

-- insights.retention_flags over any table, as ClickHouse's retention(): r[1] = active on the first
-- day, r[i] = active on the first day and on day i. User 3 misses the first day: all false.
CREATE TEMP TABLE logins (user_id int, day date);
INSERT INTO logins VALUES (1, '2024-04-01'), (1, '2024-04-02'), (1, '2024-04-03'),
                          (2, '2024-04-01'), (2, '2024-04-03'),
                          (3, '2024-04-02'), (3, '2024-04-03'),
                          (4, '2024-04-01');
SELECT user_id, insights.retention_flags(day = '2024-04-01', day = '2024-04-02', day = '2024-04-03') AS r
  FROM logins GROUP BY user_id ORDER BY user_id;
SELECT sum(r[1]::int) AS day_0, sum(r[2]::int) AS day_1, sum(r[3]::int) AS day_2 FROM (
  SELECT insights.retention_flags(day = '2024-04-01', day = '2024-04-02', day = '2024-04-03') AS r
    FROM logins GROUP BY user_id) s;

-- Client errors: 22023 (bad value), 22007 (bad date), never XX000.
SELECT insights.retention_json(:p, jsonb_set(:'ret'::jsonb, '{period}', '"Fortnight"'));
SELECT insights.retention_json(:p, jsonb_set(:'ret'::jsonb, '{retention_type}', '"retention_sometimes"'));
SELECT insights.retention_json(:p, jsonb_set(:'ret'::jsonb, '{total_intervals}', '0'));
SELECT insights.retention_json(:p, jsonb_set(:'ret'::jsonb, '{date_to}', '"next payday"'));
SELECT count(*) FROM insights.retention_actors(:p, :'ret', -1);
SELECT count(*) FROM insights.retention_actors(:p, :'ret', 4);
ROLLBACK;
