-- Funnel correlation from SQL: insights.funnel_correlation_json (PostHog's body for events, person
-- properties and event properties) and funnel_correlation_actors (who is behind a row), and
-- client errors with their SQLSTATE. Everything runs in one transaction that is rolled back.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
SET timezone = 'UTC';
SET datestyle = 'ISO';
BEGIN;
SELECT project_id AS p FROM insights.create_project('correlation test') \gset
-- Actors are person ids (they differ from run to run): pg_temp.who shows their distinct ids.
CREATE FUNCTION pg_temp.who(ids text[]) RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(distinct_id, ',' ORDER BY distinct_id) FROM insights.person_distinct_ids
   WHERE person_id = ANY (ids::bigint[]) $$;
-- One line per correlation row: name, success and failure counts, odds ratio, direction.
CREATE FUNCTION pg_temp.rows(body jsonb) RETURNS TABLE (name text, success int, failure int, odds numeric, type text)
LANGUAGE sql AS $$
  SELECT e -> 'event' ->> 'event', (e ->> 'success_count')::int, (e ->> 'failure_count')::int,
         round((e ->> 'odds_ratio')::numeric, 4), e ->> 'correlation_type'
    FROM jsonb_array_elements(body -> 'result' -> 'events') AS e $$;

-- Funnel signup → pay (7-day window). s1, s2, s3 convert (S = 3); f1, f2, f3 do not (F = 3).
-- Inside each person's window: "watched video" (quality hd) by s1, s2, s3, (sd) by f1;
-- "read docs" by s3, f1, f2. s1's "late" comes after converting and does not count.
-- Person property plan: pro for s1, s2, f1; free for s3, f2, f3.
SELECT insights.capture_batch(:p, '[
  {"event":"signup","distinct_id":"s1","timestamp":"2024-05-02T10:00:00Z","properties":{"$set":{"plan":"pro"}}},
  {"event":"signup","distinct_id":"s2","timestamp":"2024-05-02T10:00:00Z","properties":{"$set":{"plan":"pro"}}},
  {"event":"signup","distinct_id":"s3","timestamp":"2024-05-02T10:00:00Z","properties":{"$set":{"plan":"free"}}},
  {"event":"signup","distinct_id":"f1","timestamp":"2024-05-02T10:00:00Z","properties":{"$set":{"plan":"pro"}}},
  {"event":"signup","distinct_id":"f2","timestamp":"2024-05-02T10:00:00Z","properties":{"$set":{"plan":"free"}}},
  {"event":"signup","distinct_id":"f3","timestamp":"2024-05-02T10:00:00Z","properties":{"$set":{"plan":"free"}}},
  {"event":"watched video","distinct_id":"s1","timestamp":"2024-05-02T11:00:00Z","properties":{"quality":"hd"}},
  {"event":"watched video","distinct_id":"s2","timestamp":"2024-05-02T11:00:00Z","properties":{"quality":"hd"}},
  {"event":"watched video","distinct_id":"s3","timestamp":"2024-05-02T11:00:00Z","properties":{"quality":"hd"}},
  {"event":"watched video","distinct_id":"f1","timestamp":"2024-05-03T10:00:00Z","properties":{"quality":"sd"}},
  {"event":"read docs","distinct_id":"s3","timestamp":"2024-05-02T11:30:00Z"},
  {"event":"read docs","distinct_id":"f1","timestamp":"2024-05-02T11:30:00Z"},
  {"event":"read docs","distinct_id":"f2","timestamp":"2024-05-02T11:30:00Z"},
  {"event":"pay","distinct_id":"s1","timestamp":"2024-05-02T12:00:00Z"},
  {"event":"pay","distinct_id":"s2","timestamp":"2024-05-02T12:00:00Z"},
  {"event":"pay","distinct_id":"s3","timestamp":"2024-05-02T12:00:00Z"},
  {"event":"late","distinct_id":"s1","timestamp":"2024-05-02T13:00:00Z"}
]');
\set funnel '{"insight":"FUNNELS","date_from":"2024-05-01","date_to":"2024-05-10","funnel_window_interval":7,"funnel_window_interval_unit":"day","events":[{"id":"signup","order":0},{"id":"pay","order":1}]}'

-- Events. Odds ratio with a prior of 1: ((s+1)(F-f+1)) / ((S-s+1)(f+1)).
-- watched video: s = 3, f = 1 → (4·3)/(1·2) = 6; read docs: s = 1, f = 2 → (2·2)/(3·3) = 0.4444.
-- Successes come first (odds descending), then failures (ascending); funnel steps are never rows.
SELECT * FROM pg_temp.rows(insights.funnel_correlation_json(:p, :'funnel'));
SELECT j -> 'result' -> 'skewed' AS skewed, j -> 'is_cached' AS is_cached
  FROM insights.funnel_correlation_json(:p, :'funnel') AS j;
-- Leaving an event out by name.
SELECT * FROM pg_temp.rows(insights.funnel_correlation_json(:p,
  :'funnel'::jsonb || '{"funnel_correlation_exclude_event_names":["read docs"]}'));

-- Person properties: plan::pro s = 2, f = 1 → (3·3)/(2·2) = 2.25; plan::free s = 1, f = 2 → 0.4444.
SELECT * FROM pg_temp.rows(insights.funnel_correlation_json(:p,
  :'funnel'::jsonb || '{"funnel_correlation_type":"properties","funnel_correlation_names":["plan"]}'));

-- Event properties of "watched video": quality::hd s = 3, f = 0 → (4·4)/(1·1) = 16; quality::sd
-- (s + f = 1) is too rare to be a row.
SELECT * FROM pg_temp.rows(insights.funnel_correlation_json(:p,
  :'funnel'::jsonb || '{"funnel_correlation_type":"event_with_properties","funnel_correlation_event_names":["watched video"]}'));

-- The persons behind a row: read docs among drop-offs and among converters; an event property
-- filter on the entity; a person property value among converters.
\set docs '{"funnel_correlation_person_entity":{"id":"read docs","type":"events"}}'
SELECT pg_temp.who(ARRAY(SELECT insights.funnel_correlation_actors(:p,
         :'funnel'::jsonb || :'docs' || '{"funnel_correlation_person_converted":"false"}'))) AS docs_failed,
       pg_temp.who(ARRAY(SELECT insights.funnel_correlation_actors(:p,
         :'funnel'::jsonb || :'docs' || '{"funnel_correlation_person_converted":"true"}'))) AS docs_converted,
       pg_temp.who(ARRAY(SELECT insights.funnel_correlation_actors(:p,
         :'funnel'::jsonb || :'docs'))) AS docs_all;
SELECT pg_temp.who(ARRAY(SELECT insights.funnel_correlation_actors(:p, :'funnel'::jsonb ||
         '{"funnel_correlation_person_entity":{"id":"watched video","type":"events",
           "properties":[{"key":"quality","value":"sd","type":"event","operator":"exact"}]}}'))) AS watched_sd,
       pg_temp.who(ARRAY(SELECT insights.funnel_correlation_actors(:p, :'funnel'::jsonb ||
         '{"funnel_correlation_type":"properties","funnel_correlation_person_converted":"true",
           "funnel_correlation_property_values":[{"key":"plan","value":"pro","type":"person","operator":"exact"}]}'))) AS pro_converted;

-- Client errors: 22023 (bad value), never XX000.
SELECT insights.funnel_correlation_json(:p, :'funnel'::jsonb || '{"funnel_correlation_type":"bogus"}');
SELECT insights.funnel_correlation_json(:p, :'funnel'::jsonb || '{"funnel_correlation_type":"properties"}');
SELECT insights.funnel_correlation_json(:p, :'funnel'::jsonb || '{"funnel_step":0}');
SELECT count(*) FROM insights.funnel_correlation_actors(:p, :'funnel');
SELECT count(*) FROM insights.funnel_correlation_actors(:p, :'funnel'::jsonb || :'docs' || '{"funnel_correlation_person_converted":"maybe"}');
ROLLBACK;
