-- Funnel correlation (docs/funnels.md#correlation).
--
-- /api/projects/:project_id/insights/funnel/correlation/ (and /api/environments/:id/…), GET and
-- POST: the funnel filter plus funnel_correlation_type (events | properties |
-- event_with_properties), funnel_correlation_names, funnel_correlation_exclude_names,
-- funnel_correlation_event_names, funnel_correlation_exclude_event_names,
-- funnel_correlation_event_exclude_property_names (or a FunnelCorrelationQuery). Scope
-- insight:read. The engine is insights.funnel_correlation_json.
CREATE FUNCTION api.insight_funnel_correlation(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._insight_compute($1, 'funnel_correlation') $$;

-- /api/projects/:project_id/persons/funnel/correlation/ (GET and POST): the persons behind a
-- correlation row (its success_people_url / failure_people_url): the funnel filter plus
-- funnel_correlation_person_entity (events, event_with_properties) or
-- funnel_correlation_property_values (properties), and funnel_correlation_person_converted
-- ("true" | "false"), paged with limit/offset. Scope person:read.
CREATE FUNCTION api.persons_funnel_correlation(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response($1, 'funnel_correlation') $$;
