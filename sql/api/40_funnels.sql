-- /api/projects/:project_id/insights/funnel/ (and /api/environments/:id/…): PostHog's legacy
-- funnel endpoint. GET takes the filter as query parameters (JSON-encoded where PostHog encodes
-- them: events, actions, exclusions, properties…), POST as a JSON body (a legacy filter or a
-- FunnelsQuery). Scope insight:read. The engine is insights.funnel_json.

CREATE FUNCTION api.insight_funnel(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._insight_compute($1, 'funnel') $$;

-- /api/projects/:project_id/persons/funnel/ (GET and POST): the persons behind a funnel step
-- (`funnel_step` = N converted at step N, -N dropped off before step N), paged with limit/offset.
CREATE FUNCTION api.persons_funnel(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response($1, 'funnel') $$;
