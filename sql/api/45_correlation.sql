-- Funnel correlation (§8.3).
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
LANGUAGE plpgsql AS $$
DECLARE
    v_body jsonb;
    v_denied json;
    v_filter jsonb;
    v_limit integer;
    v_offset integer;
    v_group text;
    v_people jsonb;
    v_total integer;
    v_missing integer;
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    IF api._method() NOT IN ('GET', 'POST', 'HEAD') THEN
        RETURN api._method_not_allowed();
    END IF;
    BEGIN
        v_body := insights.decode_api_body($1);
        v_denied := api._authenticate('person:read', v_body);
        IF v_denied IS NOT NULL THEN
            RETURN v_denied;
        END IF;
        v_filter := api._filter_from_request(v_body);
        -- PostHog's own names for the page (funnel_correlation_person_limit/offset) work too.
        v_limit := api._int_param(v_filter || api._query(), 'limit',
                       api._int_param(v_filter, 'funnel_correlation_person_limit', 100, 1, 10000), 1, 10000);
        v_offset := api._int_param(v_filter || api._query(), 'offset',
                       api._int_param(v_filter, 'funnel_correlation_person_offset', 0, 0, 2147483647), 0, 2147483647);
        v_group := nullif(v_filter->>'aggregation_group_type_index', '');

        IF v_group IS NOT NULL AND v_group ~ '^\s*[0-4]\s*$' THEN
            WITH ids AS (
                SELECT a AS key
                  FROM insights.funnel_correlation_actors(insights.request_project_id(), v_filter) a
            ), page AS (
                SELECT ids.key, g.properties, g.created_at
                  FROM ids LEFT JOIN insights.groups g
                    ON g.project_id = insights.request_project_id() AND g.group_key = ids.key
                   AND g.group_type_index = v_group::smallint
                 ORDER BY ids.key LIMIT v_limit OFFSET v_offset
            )
            SELECT coalesce((SELECT jsonb_agg(jsonb_build_object(
                        'type', 'group', 'id', page.key, 'group_key', page.key,
                        'group_type_index', v_group::int,
                        'group_properties', coalesce(page.properties, '{}'),
                        'created_at', page.created_at) ORDER BY page.key) FROM page), '[]'),
                   (SELECT count(*) FROM ids), 0
              INTO v_people, v_total, v_missing;
        ELSE
            WITH ids AS (
                SELECT a::bigint AS id
                  FROM insights.funnel_correlation_actors(insights.request_project_id(), v_filter) a
            ), page AS (
                SELECT p.* FROM insights.persons p JOIN ids ON ids.id = p.id
                 ORDER BY p.id LIMIT v_limit OFFSET v_offset
            )
            SELECT coalesce((SELECT jsonb_agg(api._person_json(page) ORDER BY page.id) FROM page), '[]'),
                   (SELECT count(*) FROM ids),
                   (SELECT count(*) FROM ids WHERE NOT EXISTS (SELECT 1 FROM insights.persons p WHERE p.id = ids.id))
              INTO v_people, v_total, v_missing;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL;
        RETURN api._error_from_sql(v_state, v_message, v_detail);
    END;
    RETURN json_build_object(
        'results', json_build_array(json_build_object('people', v_people, 'count', jsonb_array_length(v_people))),
        'next', CASE WHEN v_offset + v_limit < v_total
                     THEN api._url_with(jsonb_build_object('limit', v_limit, 'offset', v_offset + v_limit)) END,
        'previous', CASE WHEN v_offset > 0
                         THEN api._url_with(jsonb_build_object('limit', v_limit,
                                                               'offset', greatest(v_offset - v_limit, 0))) END,
        'missing_persons', v_missing);
END $$;
