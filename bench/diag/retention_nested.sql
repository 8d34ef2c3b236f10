-- The nested statement of insights.retention (bench Q4) with its plan, through auto_explain in this
-- session only. Usage (kept bench cluster):
--   psql -h bench/.pg -p 54359 -U postgres bench_10000000 -v pid=1 -f bench/diag/retention_nested.sql
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = on;
SET auto_explain.log_verbose = on;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = notice;
SELECT now(), pg_backend_pid();
SELECT left(cohort_date, 10)::date AS cohort, period AS week_offset, count AS persons
FROM insights.retention(:pid::bigint, '{"kind": "RetentionQuery", "dateRange": {"date_to": "2026-11-01T23:59:59Z"}, "retentionFilter": {"period": "Week", "totalIntervals": 8, "retentionType": "retention_first_time", "targetEntity": {"id": null, "type": "events"}, "returningEntity": {"id": null, "type": "events"}}}'::jsonb) WHERE count > 0;
