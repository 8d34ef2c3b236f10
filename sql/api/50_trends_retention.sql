-- /api/projects/:project_id/insights/trend/ and /insights/retention/ (and /api/environments/:id/…):
-- PostHog's legacy compute endpoints. GET takes the filter as query parameters (JSON-encoded where
-- PostHog encodes them), POST as a JSON body (a legacy filter or a TrendsQuery/RetentionQuery).
-- Scope insight:read. The engines are insights.trend_json and insights.retention_json.

-- PostgREST's "any media type" handler: a function returning this domain sends its bytes as
-- they are, with the Content-Type it sets in response.headers (JSON or CSV here).
CREATE DOMAIN api."*/*" AS bytea;

-- `?format=csv` (docs/trends.md#csv-export): PostHog's CSV export (insights.trend_csv), `text/csv` with
-- `Content-Disposition: attachment; filename="<export_name slug> (<from> - <to>) from PostHog.csv"`
-- and, with `export_insight_id`, the line `<site>/insights/<id>/` first (as PostHog).
-- Errors stay PostHog's JSON bodies.
CREATE FUNCTION api.insight_trend(bytea) RETURNS api."*/*"
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_json json;
    v_body jsonb;
    v_csv text;
    v_name text;
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    IF v_query->>'format' = 'csv' AND api._method() IN ('GET', 'POST', 'HEAD') THEN
        BEGIN
            v_body := insights.decode_api_body($1);
            v_json := api._authenticate('insight:read', v_body);
            IF v_json IS NULL THEN
                SELECT t.csv, t.filename INTO v_csv, v_name
                  FROM insights.trend_csv(insights.request_project_id(), api._filter_from_request(v_body),
                                          v_query->>'export_name') t;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL;
            v_json := api._error_from_sql(v_state, v_message, v_detail);
        END;
        IF v_json IS NULL THEN
            PERFORM set_config('response.headers', json_build_array(
                json_build_object('Content-Type', 'text/csv; charset=utf-8'),
                json_build_object('Content-Disposition', format('attachment; filename="%s"', v_name)))::text, true);
            -- PostHog prefixes the link of the exported insight when export_insight_id is given.
            IF coalesce(v_query->>'export_insight_id', '') <> '' THEN
                v_csv := format(E'%s/insights/%s/\n', coalesce(api._header('x-pgi-base'), ''),
                                v_query->>'export_insight_id') || v_csv;
            END IF;
            RETURN convert_to(v_csv, 'UTF8');
        END IF;
    ELSE
        v_json := api._insight_compute($1, 'trend');
    END IF;
    PERFORM set_config('response.headers',
                       '[{"Content-Type": "application/json; charset=utf-8"}]', true);
    RETURN convert_to(v_json::text, 'UTF8');
END $$;

CREATE FUNCTION api.insight_retention(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._insight_compute($1, 'retention') $$;

-- GET/POST insights/path/: a legacy PATHS filter (no `insight` needed) or a PathsQuery.
CREATE FUNCTION api.insight_path(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._insight_compute($1, 'path') $$;
