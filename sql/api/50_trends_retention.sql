-- /api/projects/:project_id/insights/trend/ and /insights/retention/ (and /api/environments/:id/…):
-- PostHog's legacy compute endpoints. GET takes the filter as query parameters (JSON-encoded where
-- PostHog encodes them), POST as a JSON body (a legacy filter or a TrendsQuery/RetentionQuery).
-- Scope insight:read. The engines are insights.trend_json and insights.retention_json.

CREATE FUNCTION api._insight_compute(p_body bytea, p_kind text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_body jsonb;
    v_denied json;
    v_result jsonb;
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    IF api._method() NOT IN ('GET', 'POST', 'HEAD') THEN
        RETURN api._method_not_allowed();
    END IF;
    BEGIN
        v_body := insights.decode_api_body(p_body);
        v_denied := api._authenticate('insight:read', v_body);
        IF v_denied IS NOT NULL THEN
            RETURN v_denied;
        END IF;
        v_result := CASE p_kind
            WHEN 'trend' THEN insights.trend_json(insights.request_project_id(), api._filter_from_request(v_body))
            WHEN 'retention' THEN insights.retention_json(insights.request_project_id(), api._filter_from_request(v_body))
        END;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL;
        RETURN api._error_from_sql(v_state, v_message, v_detail);
    END;
    RETURN v_result::json;
END $$;

CREATE FUNCTION api.insight_trend(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._insight_compute($1, 'trend') $$;

CREATE FUNCTION api.insight_retention(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._insight_compute($1, 'retention') $$;
