-- Ingestion with PostHog person semantics: persons created at their first event, $identify
-- merging an anonymous person, $create_alias, $set/$set_once/$unset, $groupidentify, groups on
-- events, re-sent uuids skipped, and a bad event rejecting the whole batch.
\set VERBOSITY sqlstate
SET timezone = 'UTC';
SET datestyle = 'ISO';
SELECT project_id AS p FROM insights.create_project('ingest test') \gset

SELECT insights.capture_batch(:p, '[
  {"event":"$pageview","distinct_id":"anon-1","timestamp":"2024-01-02T10:00:00Z","uuid":"00000000-0000-0000-0000-000000000001",
   "properties":{"$browser":"Chrome","$set_once":{"first_browser":"Chrome"}}},
  {"event":"$pageview","distinct_id":"anon-1","timestamp":"2024-01-01T09:00:00Z","uuid":"00000000-0000-0000-0000-000000000002"},
  {"event":"$pageview","distinct_id":"user-1","timestamp":"2024-01-03T08:00:00Z","uuid":"00000000-0000-0000-0000-000000000003",
   "properties":{"$set":{"email":"u1@example.com","plan":"free"}}},
  {"event":"$identify","distinct_id":"user-1","timestamp":"2024-01-03T09:00:00Z","uuid":"00000000-0000-0000-0000-000000000004",
   "properties":{"$anon_distinct_id":"anon-1","$set":{"plan":"pro"},"$set_once":{"first_browser":"Safari"}}},
  {"event":"$create_alias","distinct_id":"user-1","timestamp":"2024-01-03T10:00:00Z","uuid":"00000000-0000-0000-0000-000000000005",
   "properties":{"alias":"mobile-1"}},
  {"event":"$groupidentify","distinct_id":"user-1","timestamp":"2024-01-03T11:00:00Z","uuid":"00000000-0000-0000-0000-000000000006",
   "properties":{"$group_type":"organization","$group_key":"org:5","$group_set":{"industry":"finance"}}},
  {"event":"paid","distinct_id":"mobile-1","timestamp":"2024-01-04T12:00:00Z","uuid":"00000000-0000-0000-0000-000000000007",
   "properties":{"$groups":{"organization":"org:5"},"$unset":["plan"]}}
]');

-- One person owns all three ids; it was created at the earliest event (01-01 09:00).
SELECT count(*) AS persons FROM insights.persons WHERE project_id = :p;
SELECT distinct_id, (SELECT count(DISTINCT person_id) FROM insights.person_distinct_ids WHERE project_id = :p) AS owners
  FROM insights.person_distinct_ids WHERE project_id = :p ORDER BY distinct_id;
SELECT created_at, is_identified, properties FROM insights.persons WHERE project_id = :p;
-- Every event points at that person (events were rewritten on merge).
SELECT count(DISTINCT person_id) AS event_persons, count(*) AS events FROM insights.events WHERE project_id = :p;
SELECT event, group_0 FROM insights.events WHERE project_id = :p AND group_0 <> '' ORDER BY event;
SELECT group_type_index, group_type FROM insights.group_type_mappings WHERE project_id = :p;
SELECT group_key, properties FROM insights.groups WHERE project_id = :p;

-- Re-sending the same batch stores nothing new.
SELECT insights.capture_batch(:p, '[{"event":"$pageview","distinct_id":"anon-1","timestamp":"2024-01-02T10:00:00Z","uuid":"00000000-0000-0000-0000-000000000001"}]') AS stored_again;

-- A bad event rejects the whole batch: the good first event is not stored either.
SELECT insights.capture_batch(:p, '[{"event":"ok","distinct_id":"x"},{"event":"","distinct_id":"y"}]');
SELECT insights.capture_batch(:p, '[{"event":"ok","distinct_id":"x"},{"distinct_id":"y"}]');
SELECT insights.capture_batch(:p, '[{"event":"ok","distinct_id":"x","timestamp":"yesterday-ish"}]');
SELECT insights.capture_batch(:p, '[{"event":"ok","distinct_id":"x","uuid":"not-a-uuid"}]');
SELECT insights.capture_batch(:p, '{"event":"not a list"}');
SELECT count(*) AS still_seven FROM insights.events WHERE project_id = :p;
SELECT count(*) AS no_person_x FROM insights.person_distinct_ids WHERE project_id = :p AND distinct_id = 'x';

-- An identified person is not merged into another person by a later $identify; a distinct id
-- without a person is simply added to the identified person.
SELECT insights.capture_batch(:p, '[
  {"event":"$identify","distinct_id":"user-2","timestamp":"2024-01-05T10:00:00Z","properties":{"$anon_distinct_id":"anon-2"}},
  {"event":"$pageview","distinct_id":"user-3","timestamp":"2024-01-05T10:30:00Z"},
  {"event":"$identify","distinct_id":"user-3","timestamp":"2024-01-05T11:00:00Z","properties":{"$anon_distinct_id":"user-2"}}
]');
SELECT count(DISTINCT person_id) AS two_people FROM insights.person_distinct_ids
 WHERE project_id = :p AND distinct_id IN ('user-2', 'user-3');
SELECT count(DISTINCT person_id) AS one_person FROM insights.person_distinct_ids
 WHERE project_id = :p AND distinct_id IN ('user-2', 'anon-2');

-- Capture by token: an unknown token is 28000 and stores nothing.
SELECT insights.capture('phc_doesnotexist0000000000000000', '[{"event":"a","distinct_id":"b"}]');
