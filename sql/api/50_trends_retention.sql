-- /api/projects/:project_id/insights/trend/ and /insights/retention/ (and /api/environments/:id/…):
-- PostHog's legacy compute endpoints. GET takes the filter as query parameters (JSON-encoded where
-- PostHog encodes them), POST as a JSON body (a legacy filter or a TrendsQuery/RetentionQuery).
-- Scope insight:read. The engines are insights.trend_json and insights.retention_json.

CREATE FUNCTION api.insight_trend(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._insight_compute($1, 'trend') $$;

CREATE FUNCTION api.insight_retention(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._insight_compute($1, 'retention') $$;
