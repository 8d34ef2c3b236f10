-- The legacy compute endpoints (scope insight:read), under /api/projects/:project_id/ and
-- /api/environments/:id/:
--   insights/funnel/               insights.funnel_json             (legacy filter or FunnelsQuery)
--   insights/funnel/correlation/   insights.funnel_correlation_json (docs/funnels.md#correlation)
--   insights/trend/                insights.trend_json; stickiness and lifecycle by `insight` /
--                                  `shown_as`; ?format=csv is PostHog's CSV export
--   insights/retention/            insights.retention_json
--   insights/path/                 insights.paths_json              (legacy PATHS filter or PathsQuery)
-- GET takes the filter as query parameters (JSON-encoded where PostHog encodes them: events,
-- actions, exclusions, properties…), POST as a JSON body.

CREATE FUNCTION api.h_insight_funnel(p_body jsonb) RETURNS json
LANGUAGE sql AS $$
    SELECT insights.funnel_json(insights.request_project_id(), api._filter_from_request(p_body))::json
$$;

-- Correlation: the funnel filter plus funnel_correlation_type (events | properties |
-- event_with_properties), funnel_correlation_names, funnel_correlation_exclude_names,
-- funnel_correlation_event_names, funnel_correlation_exclude_event_names,
-- funnel_correlation_event_exclude_property_names (or a FunnelCorrelationQuery).
CREATE FUNCTION api.h_insight_funnel_correlation(p_body jsonb) RETURNS json
LANGUAGE sql AS $$
    SELECT insights.funnel_correlation_json(insights.request_project_id(), api._filter_from_request(p_body))::json
$$;

CREATE FUNCTION api.h_insight_retention(p_body jsonb) RETURNS json
LANGUAGE sql AS $$
    SELECT insights.retention_json(insights.request_project_id(), api._filter_from_request(p_body))::json
$$;

CREATE FUNCTION api.h_insight_path(p_body jsonb) RETURNS json
LANGUAGE sql AS $$
    SELECT insights.paths_json(insights.request_project_id(), api._filter_from_request(p_body))::json
$$;

-- Trends render their own bytes: `?format=csv` (docs/trends.md#csv-export) is PostHog's CSV
-- export (insights.trend_csv), `text/csv` with `Content-Disposition: attachment; filename="<export_name
-- slug> (<from> - <to>) from PostHog.csv"` and, with `export_insight_id`, the line
-- `<site>/insights/<id>/` first (as PostHog). Errors stay PostHog's JSON bodies (the dispatcher).
CREATE FUNCTION api.h_insight_trend(p_body jsonb) RETURNS api."*/*"
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_csv text;
    v_name text;
BEGIN
    IF api._format() <> 'csv' THEN
        RETURN api._render_json(insights.trend_json(insights.request_project_id(), api._filter_from_request(p_body))::json);
    END IF;
    SELECT t.csv, t.filename INTO v_csv, v_name
      FROM insights.trend_csv(insights.request_project_id(), api._filter_from_request(p_body),
                              v_query->>'export_name') t;
    PERFORM set_config('response.headers', json_build_array(
        json_build_object('Content-Type', 'text/csv; charset=utf-8'),
        json_build_object('Content-Disposition', format('attachment; filename="%s"', v_name)))::text, true);
    -- PostHog prefixes the link of the exported insight when export_insight_id is given.
    IF coalesce(v_query->>'export_insight_id', '') <> '' THEN
        v_csv := format(E'%s/insights/%s/\n', coalesce(api._header('x-pgi-base'), ''),
                        v_query->>'export_insight_id') || v_csv;
    END IF;
    RETURN convert_to(v_csv, 'UTF8');
END $$;
