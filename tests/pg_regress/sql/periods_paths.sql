-- Stickiness, lifecycle and paths from SQL, as a BI tool or psql user calls them: typed rows,
-- PostHog's JSON, the actors of one data point, and client errors (22xxx with a field).
-- Everything runs in one transaction that is rolled back.
\set VERBOSITY sqlstate
\set ON_ERROR_ROLLBACK on
SET timezone = 'UTC';
SET datestyle = 'ISO';
BEGIN;
SELECT project_id AS p FROM insights.create_project('periods and paths test') \gset

-- u1 views daily 01-02..01-04, u2 on 01-02 and 01-04, u3 only on 01-05.
SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-01-02T10:00:00Z","properties":{"$current_url":"https://x.io/"}},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-01-02T10:02:00Z","properties":{"$current_url":"https://x.io/pricing/"}},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-01-03T10:00:00Z","properties":{"$current_url":"https://x.io/"}},
  {"event":"$pageview","distinct_id":"u1","timestamp":"2024-01-04T10:00:00Z","properties":{"$current_url":"https://x.io/"}},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-01-02T11:00:00Z","properties":{"$current_url":"https://x.io/"}},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-01-02T11:01:00Z","properties":{"$current_url":"https://x.io/pricing"}},
  {"event":"$pageview","distinct_id":"u2","timestamp":"2024-01-04T11:00:00Z","properties":{"$current_url":"https://x.io/"}},
  {"event":"$pageview","distinct_id":"u3","timestamp":"2024-01-05T12:00:00Z","properties":{"$current_url":"https://x.io/docs"}}
]');

\set sticky '{"insight":"STICKINESS","events":[{"id":"$pageview"}],"date_from":"2024-01-01","date_to":"2024-01-05"}'
SELECT series, intervals, actors FROM insights.stickiness(:p, :'sticky') ORDER BY intervals;
SELECT insights.stickiness_json(:p, :'sticky') -> 'result' -> 0 -> 'labels' AS labels;
SELECT d.distinct_id FROM insights.stickiness_actors(:p, :'sticky', 2) a
  JOIN insights.person_distinct_ids d ON d.person_id = a::bigint ORDER BY 1;

\set life '{"kind":"LifecycleQuery","series":[{"kind":"EventsNode","event":"$pageview"}],"dateRange":{"date_from":"2024-01-02","date_to":"2024-01-05"},"interval":"day"}'
SELECT status, bucket::date, value FROM insights.lifecycle(:p, :'life') WHERE value <> 0 ORDER BY bucket, status;
SELECT jsonb_path_query_array(insights.lifecycle_json(:p, :'life'), '$.result[*].label') AS labels;
SELECT d.distinct_id FROM insights.lifecycle_actors(:p, :'life', '2024-01-03', 'dormant') a
  JOIN insights.person_distinct_ids d ON d.person_id = a::bigint ORDER BY 1;

\set paths '{"insight":"PATHS","date_from":"2024-01-01","date_to":"2024-01-05","local_path_cleaning_filters":[{"regex":"^https://x[.]io(/|$)","alias":"/"}]}'
SELECT * FROM insights.paths(:p, :'paths');
-- A path that must start at /pricing has nothing after it.
SELECT * FROM insights.paths(:p, jsonb_set(:'paths'::jsonb, '{start_point}', '"/pricing"'));

-- Client errors: a 22023 naming the field, never XX000.
SELECT insights.lifecycle_json(:p, '{"kind":"LifecycleQuery","series":[{"kind":"EventsNode","event":"a"},{"kind":"EventsNode","event":"b"}]}');
SELECT insights.paths_json(:p, '{"insight":"PATHS","local_path_cleaning_filters":[{"regex":"(","alias":""}]}');
SELECT insights.lifecycle_actors(:p, :'life', '2024-01-03', 'gone');
SELECT insights.stickiness_json(:p, '{"insight":"STICKINESS","events":[]}');
ROLLBACK;
