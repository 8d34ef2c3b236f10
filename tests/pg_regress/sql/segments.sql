-- The columnar segments (sql/segments.sql, docs/segments.md): building a day, what marks it
-- dirty, which path a query takes (insights.explain), and the same answer with segments on and
-- off after every kind of change. One transaction, rolled back.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
SET timezone = 'UTC';
SET datestyle = 'ISO';
BEGIN;
SELECT project_id AS p FROM insights.create_project('segments test') \gset
SELECT insights.materialize_property('$browser');

SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-01-02T10:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-01-02T11:00:00Z","properties":{"$browser":"Chrome"}},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-01-02T12:00:00Z","properties":{"$browser":"Safari"}},
  {"event":"signup","distinct_id":"u2","timestamp":"2024-01-03T09:00:00Z","properties":{}},
  {"event":"$pageview","distinct_id":"u3","timestamp":"2024-01-03T23:30:00Z","properties":{"$browser":"Firefox"}},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-01-04T00:30:00Z","properties":{"$browser":"Chrome"}}
]');

-- Writes to closed days are marked at once (pending: never built yet).
SELECT day, state, events FROM insights.segments WHERE project_id = :p ORDER BY day;
SELECT insights.seal_segments(:p);
SELECT day, state, events, columns, bytes > 0 AS stored FROM insights.segments WHERE project_id = :p ORDER BY day;
SELECT column_name, id, value FROM insights.segment_dict WHERE project_id = :p ORDER BY 1, 2;

-- A helper: the trend's result with segments on equals the heap's.
CREATE FUNCTION pg_temp.same(p bigint, q jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE a jsonb; b jsonb;
BEGIN
    SET LOCAL pg_insights.use_segments = on;
    a := insights.trend_json(p, q) -> 'result';
    SET LOCAL pg_insights.use_segments = off;
    b := insights.trend_json(p, q) -> 'result';
    SET LOCAL pg_insights.use_segments = on;
    RETURN a = b;
END $$;

\set dau '{"events":[{"id":"$pageview","math":"dau"}],"breakdown":"$browser","date_from":"2024-01-01","date_to":"2024-01-05"}'
\set total '{"events":[{"id":null}],"properties":[{"key":"$browser","value":"Chrome","type":"event"}],"date_from":"2024-01-02","date_to":"2024-01-04T00:10:00Z","interval":"hour"}'
\set json '{"events":[{"id":"$pageview"}],"properties":[{"key":"plan","value":"pro","type":"event"}],"date_from":"2024-01-01","date_to":"2024-01-05"}'
SELECT * FROM insights.explain(:p, :'dau');
SELECT * FROM insights.explain(:p, :'total');
SELECT * FROM insights.explain(:p, :'json');
SELECT series, breakdown_value, bucket::date, value FROM insights.trend(:p, :'dau') WHERE value > 0 ORDER BY 2, 3;
SELECT pg_temp.same(:p, :'dau') AS dau, pg_temp.same(:p, :'total') AS total;

-- A late event on a sealed day: dirty at once, and the answer has it.
SELECT insights.capture_batch(:p, '[{"event":"$pageview","distinct_id":"u4","timestamp":"2024-01-02T13:00:00Z","properties":{"$browser":"Safari"}}]');
SELECT day, state FROM insights.segments WHERE project_id = :p ORDER BY day;
SELECT value FROM insights.trend(:p, :'dau') WHERE breakdown_value = 'Safari' AND bucket = '2024-01-02';
SELECT pg_temp.same(:p, :'dau') AS dau, pg_temp.same(:p, :'total') AS total;
SELECT insights.seal_segments(:p);
SELECT value FROM insights.trend(:p, :'dau') WHERE breakdown_value = 'Safari' AND bucket = '2024-01-02';

-- A merge rewrites person_id: both persons' days go dirty; rebuilt, u4 counts as u2.
SELECT insights.merge_persons(:p, (SELECT person_id FROM insights.person_distinct_ids WHERE project_id = :p AND distinct_id = 'u4'),
                                  (SELECT person_id FROM insights.person_distinct_ids WHERE project_id = :p AND distinct_id = 'u2'));
SELECT day, state FROM insights.segments WHERE project_id = :p ORDER BY day;
SELECT pg_temp.same(:p, :'dau') AS dau;
SELECT insights.seal_segments(:p);
SELECT value FROM insights.trend(:p, :'dau') WHERE breakdown_value = 'Safari' AND bucket = '2024-01-02';

-- A delete, then a timezone change (UTC days do not move; buckets do): still the heap's answer.
DELETE FROM insights.events WHERE project_id = :p AND event = 'signup';
SELECT day, state, events FROM insights.segments WHERE project_id = :p ORDER BY day;
SELECT insights.seal_segments(:p);
UPDATE insights.projects SET timezone = 'America/New_York' WHERE id = :p;
SELECT pg_temp.same(:p, :'dau') AS dau, pg_temp.same(:p, :'total') AS total;
SELECT series, breakdown_value, bucket, value FROM insights.trend(:p, :'dau') WHERE value > 0 ORDER BY 2, 3;

-- Stickiness, lifecycle and recurring retention read each person's periods from segments too (the heap for the rest
-- of the range, the persons table for lifecycle's creation periods): the heap's answers, here
-- with local days that straddle UTC days.
CREATE FUNCTION pg_temp.same_as(f text, p bigint, q jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE a jsonb; b jsonb;
BEGIN
    SET LOCAL pg_insights.use_segments = on;
    EXECUTE format('SELECT insights.%I($1, $2) -> ''result''', f) INTO a USING p, q;
    SET LOCAL pg_insights.use_segments = off;
    EXECUTE format('SELECT insights.%I($1, $2) -> ''result''', f) INTO b USING p, q;
    SET LOCAL pg_insights.use_segments = on;
    RETURN a = b;
END $$;
\set stick '{"insight":"STICKINESS","events":[{"id":"$pageview"}],"properties":[{"key":"$browser","value":"Safari","operator":"is_not","type":"event"}],"date_from":"2024-01-01","date_to":"2024-01-05"}'
\set life '{"insight":"LIFECYCLE","events":[{"id":"$pageview"}],"date_from":"2024-01-01","date_to":"2024-01-05"}'
SELECT * FROM insights.explain(:p, :'stick');
SELECT * FROM insights.explain(:p, :'life');
SELECT intervals, actors FROM insights.stickiness(:p, :'stick') WHERE actors > 0 ORDER BY 1;
SELECT status, bucket::date, value FROM insights.lifecycle(:p, :'life') WHERE value <> 0 ORDER BY 1, 2;
\set ret '{"insight":"RETENTION","retention_type":"retention_recurring","target_entity":{"id":"$pageview","type":"events"},"returning_entity":{"id":"$pageview","type":"events"},"total_intervals":3,"date_to":"2024-01-04"}'
SELECT * FROM insights.explain(:p, :'ret');
SELECT cohort_date, period, count FROM insights.retention(:p, :'ret') ORDER BY 1, 2;
SELECT pg_temp.same_as('stickiness_json', :p, :'stick') AS stickiness,
       pg_temp.same_as('lifecycle_json', :p, :'life') AS lifecycle,
       pg_temp.same_as('retention_json', :p, :'ret') AS retention;

-- Switched off: the heap, and explain says so.
SET pg_insights.use_segments = off;
SELECT path, detail FROM insights.explain(:p, :'dau');
RESET pg_insights.use_segments;

-- A dematerialised column leaves the segments (a later column of that name may hold another
-- property); the segments still answer event-name queries.
SELECT insights.dematerialize_property('$browser');
SELECT day, columns FROM insights.segments WHERE project_id = :p ORDER BY day;
SELECT count(*) FROM insights.segment_dict WHERE column_name = 'mat_$browser';
SELECT path FROM insights.explain(:p, '{"events":[{"id":"$pageview","math":"dau"}],"date_from":"2024-01-01","date_to":"2024-01-05"}');

-- TRUNCATE empties them.
TRUNCATE insights.events CASCADE;
SELECT count(*) FROM insights.event_segments;
ROLLBACK;
