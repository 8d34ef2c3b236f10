-- /api/projects/:project_id/insights/funnel/ (and /api/environments/:id/…): PostHog's legacy
-- funnel endpoint. GET takes the filter as query parameters (JSON-encoded where PostHog encodes
-- them: events, actions, exclusions, properties…), POST as a JSON body (a legacy filter or a
-- FunnelsQuery). Scope insight:read. The engine is insights.funnel_json.

CREATE FUNCTION api.insight_funnel(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._insight_compute($1, 'funnel') $$;

-- /api/projects/:project_id/persons/funnel/ (GET and POST): the persons behind a funnel step
-- (`funnel_step` = N converted at step N, -N dropped off before step N), paged with limit/offset.
CREATE FUNCTION api.persons_funnel(bytea) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_body jsonb;
    v_denied json;
    v_filter jsonb;
    v_step integer;
    v_limit integer;
    v_offset integer;
    v_breakdown jsonb;
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
        v_limit := api._int_param(v_filter || api._query(), 'limit', 100, 1, 10000);
        v_offset := api._int_param(v_filter || api._query(), 'offset', 0, 0, 2147483647);
        v_step := api._int_param(v_filter, 'funnel_step', 1, -2147483647, 2147483647);
        v_breakdown := CASE WHEN coalesce(v_filter->>'funnel_step_breakdown', '') = '' THEN NULL
                            WHEN jsonb_typeof(v_filter->'funnel_step_breakdown') = 'string'
                                 AND (v_filter->>'funnel_step_breakdown') ~ '^\s*[\[\{"]'
                                 THEN (v_filter->>'funnel_step_breakdown')::jsonb
                            ELSE v_filter->'funnel_step_breakdown' END;
        v_filter := v_filter - 'funnel_step' - 'funnel_step_breakdown';

        IF coalesce(v_filter->>'aggregation_group_type_index', '') <> '' THEN
            -- Funnels over groups list groups, as PostHog's actors endpoints do.
            WITH ids AS (
                SELECT a AS key
                  FROM insights.funnel_actors(insights.request_project_id(), v_filter, v_step, v_breakdown) a
            ), page AS (
                SELECT ids.key, g.group_type_index, g.properties, g.created_at
                  FROM ids LEFT JOIN insights.groups g
                    ON g.project_id = insights.request_project_id() AND g.group_key = ids.key
                   AND g.group_type_index = (v_filter->>'aggregation_group_type_index')::smallint
                 ORDER BY ids.key LIMIT v_limit OFFSET v_offset
            )
            SELECT coalesce((SELECT jsonb_agg(jsonb_build_object(
                        'type', 'group', 'id', page.key, 'group_key', page.key,
                        'group_type_index', (v_filter->>'aggregation_group_type_index')::int,
                        'group_properties', coalesce(page.properties, '{}'),
                        'created_at', page.created_at) ORDER BY page.key) FROM page), '[]'),
                   (SELECT count(*) FROM ids), 0
              INTO v_people, v_total, v_missing;
        ELSE
            WITH ids AS (
                SELECT a::bigint AS id
                  FROM insights.funnel_actors(insights.request_project_id(), v_filter, v_step, v_breakdown) a
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
