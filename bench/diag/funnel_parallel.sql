-- Diagnostics for bench/results/notes_10000000.md (not run by bench/run).
-- On a kept cluster (bench/run --events 10000000 --keep-pg), run as the postgres OS user:
--   psql -X -h "$PWD/bench/.pg" -p 54359 -d bench_10000000 -f bench/diag/funnel_parallel.sql
-- It times, interleaved, (A) insights.funnel (its inner statement runs through SPI), (B) the same inner
-- statement as a top-level query with 2 workers and (C) serially. Then it shows whether SPI's tuple count
-- limit is what stops the workers: build bench/diag/spiprobe.c first, e.g.
--   gcc -O2 -fPIC -shared -I/usr/include/postgresql/15/server -o /tmp/spiprobe.so bench/diag/spiprobe.c
-- The cfg texts are insights._funnel_agg's engine configuration (core/src/funnels.rs EngineConfig) for Q1/Q2.
\set cfg '{"order":"ordered","num_steps":4,"window_us":1209600000000,"exclusions":[],"attribution":"first_touch","attribution_step":0,"has_breakdown":false,"optional_steps":0,"viz":"steps","breakdown_limit":null,"no_other":false,"from_step":0,"to_step":3,"bin_count":null,"interval":"day","timezone":"UTC","week_start":0,"actors":null}'
\set cfgb '{"order":"ordered","num_steps":4,"window_us":1209600000000,"exclusions":[],"attribution":"first_touch","attribution_step":0,"has_breakdown":true,"optional_steps":0,"viz":"steps","breakdown_limit":25,"no_other":false,"from_step":0,"to_step":3,"bin_count":null,"interval":"day","timezone":"UTC","week_start":0,"actors":null}'
\set fq '{"kind": "FunnelsQuery", "series": [{"kind": "EventsNode", "event": "$pageview", "name": "$pageview"}, {"kind": "EventsNode", "event": "view_item", "name": "view_item"}, {"kind": "EventsNode", "event": "add_to_cart", "name": "add_to_cart"}, {"kind": "EventsNode", "event": "purchase", "name": "purchase"}], "dateRange": {"date_from": "2026-10-02T00:00:00Z", "date_to": "2026-10-31T23:59:59.999999Z", "explicitDate": true}, "funnelsFilter": {"funnelWindowInterval": 14, "funnelWindowIntervalUnit": "day", "funnelOrderType": "ordered", "funnelVizType": "steps"}}'
\set fqb '{"kind": "FunnelsQuery", "series": [{"kind": "EventsNode", "event": "$pageview", "name": "$pageview"}, {"kind": "EventsNode", "event": "view_item", "name": "view_item"}, {"kind": "EventsNode", "event": "add_to_cart", "name": "add_to_cart"}, {"kind": "EventsNode", "event": "purchase", "name": "purchase"}], "dateRange": {"date_from": "2026-10-02T00:00:00Z", "date_to": "2026-10-31T23:59:59.999999Z", "explicitDate": true}, "funnelsFilter": {"funnelWindowInterval": 14, "funnelWindowIntervalUnit": "day", "funnelOrderType": "ordered", "funnelVizType": "steps", "breakdownAttributionType": "first_touch"}, "breakdownFilter": {"breakdown": "$browser", "breakdown_type": "event"}}'
PREPARE q1(text) AS SELECT md5(insights._funnel_agg($1, e.person_id, NULL::text, e."timestamp",
  ((CASE WHEN e.event = '$pageview' THEN 1 ELSE 0 END) | (CASE WHEN e.event = 'view_item' THEN 2 ELSE 0 END) | (CASE WHEN e.event = 'add_to_cart' THEN 4 ELSE 0 END) | (CASE WHEN e.event = 'purchase' THEN 8 ELSE 0 END))::int4, 0, NULL::text)::text)
FROM insights.events e WHERE e.project_id = 1 AND e."timestamp" >= '2026-10-02 00:00:00+00' AND e."timestamp" <= '2026-10-31 23:59:59.999999+00'
  AND e.event = ANY('{$pageview,add_to_cart,purchase,view_item}') AND (e.event = '$pageview' OR e.event = 'view_item' OR e.event = 'add_to_cart' OR e.event = 'purchase');
PREPARE q2(text) AS SELECT md5(insights._funnel_agg($1, e.person_id, NULL::text, e."timestamp",
  ((CASE WHEN e.event = '$pageview' THEN 1 ELSE 0 END) | (CASE WHEN e.event = 'view_item' THEN 2 ELSE 0 END) | (CASE WHEN e.event = 'add_to_cart' THEN 4 ELSE 0 END) | (CASE WHEN e.event = 'purchase' THEN 8 ELSE 0 END))::int4, 0, (e.properties ->> '$browser')::text)::text)
FROM insights.events e WHERE e.project_id = 1 AND e."timestamp" >= '2026-10-02 00:00:00+00' AND e."timestamp" <= '2026-10-31 23:59:59.999999+00'
  AND e.event = ANY('{$pageview,add_to_cart,purchase,view_item}') AND (e.event = '$pageview' OR e.event = 'view_item' OR e.event = 'add_to_cart' OR e.event = 'purchase');
\timing on
\o /dev/null
\echo Q1 A insights.funnel (SPI)
SELECT * FROM insights.funnel(1::bigint, :'fq'::jsonb);
\echo Q1 B inner statement, 2 workers
EXECUTE q1(:'cfg');
\echo Q1 C inner statement, serial
SET max_parallel_workers_per_gather = 0; EXECUTE q1(:'cfg'); RESET max_parallel_workers_per_gather;
\echo Q2 A insights.funnel (SPI)
SELECT * FROM insights.funnel(1::bigint, :'fqb'::jsonb);
\echo Q2 B inner statement, 2 workers
EXECUTE q2(:'cfgb');
\echo Q2 C inner statement, serial
SET max_parallel_workers_per_gather = 0; EXECUTE q2(:'cfgb'); RESET max_parallel_workers_per_gather;
\o
\timing off
-- SPI tuple-count limit vs parallel workers (pgrx's Spi::get_one_with_args passes tcount = 1)
CREATE FUNCTION pg_temp.spiprobe(text, int8, bool) RETURNS int8 AS '/tmp/spiprobe.so', 'spiprobe' LANGUAGE C STRICT;
\set q 'SELECT count(*), sum(hashint8(e.person_id)) FROM insights.events e WHERE e.project_id = $1 AND e."timestamp" >= ''2026-10-02'' AND e."timestamp" < ''2026-11-01'' AND e.event = ANY(''{$pageview,add_to_cart,purchase,view_item}'')'
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;
SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice; SET client_min_messages = notice;
\echo ===== SPI_execute_with_args tcount 0 (expect Workers Launched: 2)
SELECT pg_temp.spiprobe(:'q', 0, false);
\echo ===== SPI_execute_with_args tcount 1 (pgrx get_one_with_args; Workers Launched: 0 on PostgreSQL 15.20)
SELECT pg_temp.spiprobe(:'q', 1, false);
