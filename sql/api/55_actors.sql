-- Insight drill-downs (scope person:read), under /api/projects/:project_id/ and
-- /api/environments/:id/:
--   persons/trends/     the actors behind one trends data point (what `persons_urls` link to)
--   persons/retention/  the actors of one retention cohort (`selected_interval`) with their
--                       appearances
-- GET takes the filter as query parameters, POST as a JSON body (query parameters are merged
-- under it). Paged with limit (default 100) / offset and absolute `next` / `previous` URLs.

-- GET/POST persons/trends/: the trends filter plus entity_id / entity_type / entity_math,
-- date_from / date_to of the data point (explicit_date) and breakdown_value.
-- {"results": [{"people": [...], "count": <on this page>, "label": <series label>}],
--  "next", "previous", "initial", "missing_persons", "is_cached", "last_refresh"}
CREATE FUNCTION api.persons_trends(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response($1, 'trends') $$;

-- GET/POST persons/stickiness/: the stickiness filter plus stickiness_days (k) and, optionally,
-- entity_id / entity_type of the series. {"results": [{"people": [...], "count"}], "next", …}
CREATE FUNCTION api.persons_stickiness(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response($1, 'stickiness') $$;

-- GET/POST persons/lifecycle/: the lifecycle filter plus target_date and lifecycle_type (new,
-- returning, resurrecting, dormant); a missing one is a 400. Same shape as persons/stickiness/.
CREATE FUNCTION api.persons_lifecycle(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response($1, 'lifecycle') $$;

-- GET/POST persons/path/: the paths filter (plus funnel_filter for funnel paths) and
-- path_start_key / path_end_key / path_dropoff_key. Same shape as persons/stickiness/.
CREATE FUNCTION api.persons_path(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response($1, 'path') $$;

-- GET/POST persons/retention/: the retention filter plus selected_interval (the cohort, 0 = the
-- oldest; default 0). {"result": [{"person": <actor>, "appearances": [0, 1, 4, …]}], "next",
-- "previous", "initial", "missing_persons"}: the period offsets (0 = the cohort period) at which
-- the actor performed the returning event, most appearances first.
CREATE FUNCTION api.persons_retention(bytea) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_body jsonb;
    v_denied json;
    v_filter jsonb;
    v_query jsonb := api._query();
    v_limit integer;
    v_offset integer;
    v_interval integer;
    v_gti integer;
    v_result jsonb;
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
        IF api._method() = 'POST' AND v_body <> '{}'::jsonb THEN
            v_filter := (v_query - 'personal_api_key' - 'format' - 'refresh' - 'limit' - 'offset') || v_filter;
        END IF;
        v_limit := api._int_param(v_filter || v_query, 'limit', 100, 1, 10000);
        v_offset := api._int_param(v_filter || v_query, 'offset', 0, 0, 2147483647);
        v_interval := api._int_param(v_filter, 'selected_interval', 0, 0, 2147483647);
        v_filter := v_filter - 'selected_interval';
        v_gti := CASE WHEN coalesce(v_filter->>'aggregation_group_type_index', '') ~ '^\s*\d{1,9}\s*$'
                      THEN (v_filter->>'aggregation_group_type_index')::integer END;

        WITH acts AS (
            SELECT a.actor, a.appearances
              FROM insights.retention_actors(insights.request_project_id(), v_filter, v_interval) a
        ), live AS (
            SELECT acts.*, CASE WHEN v_gti IS NULL
                                THEN (SELECT p.uuid::text FROM insights.persons p WHERE p.id = acts.actor::bigint)
                                ELSE acts.actor END AS sort_key
              FROM acts
        ), page AS (
            SELECT live.* FROM live WHERE live.sort_key IS NOT NULL
             ORDER BY cardinality(live.appearances) DESC, live.sort_key
             LIMIT v_limit OFFSET v_offset
        )
        SELECT coalesce((SELECT jsonb_agg(jsonb_build_object(
                                    'person', api._actor_json(page.actor, v_gti),
                                    'appearances', to_jsonb(page.appearances))
                                  ORDER BY cardinality(page.appearances) DESC, page.sort_key)
                           FROM page), '[]'),
               (SELECT count(*) FROM acts),
               (SELECT count(*) FROM live WHERE live.sort_key IS NULL)
          INTO v_result, v_total, v_missing;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL;
        RETURN api._error_from_sql(v_state, v_message, v_detail);
    END;
    RETURN (jsonb_build_object('result', v_result, 'missing_persons', v_missing)
            || api._page_links(v_limit, v_offset, v_total - v_missing))::json;
END $$;
