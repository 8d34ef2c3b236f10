-- Insight drill-downs (scope person:read), under /api/projects/:project_id/ and
-- /api/environments/:id/:
--   persons/trends/     the actors behind one trends data point (what `persons_urls` link to)
--   persons/retention/  the actors of one retention cohort (`selected_interval`) with their
--                       appearances
-- GET takes the filter as query parameters, POST as a JSON body (query parameters are merged
-- under it). Paged with limit (default 100) / offset and absolute `next` / `previous` URLs.

-- An actor as PostHog serialises it: a person (§8.1 plus "type"), or a group.
CREATE FUNCTION api._actor_json(p_key text, p_group_type_index integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_group_type_index IS NULL THEN
            (SELECT jsonb_build_object('type', 'person') || api._person_json(p)
               FROM insights.persons p WHERE p.id = p_key::bigint)
        ELSE
            (SELECT jsonb_build_object(
                        'type', 'group', 'id', p_key, 'group_key', p_key,
                        'group_type_index', p_group_type_index,
                        'group_properties', coalesce(g.properties, '{}'),
                        'properties', coalesce(g.properties, '{}'),
                        'created_at', g.created_at)
               FROM (SELECT 1) one
               LEFT JOIN insights.groups g
                 ON g.project_id = insights.request_project_id() AND g.group_key = p_key
                AND g.group_type_index = p_group_type_index)
    END
$$;

-- The `next` / `previous` / `initial` links of a page.
CREATE FUNCTION api._page_links(p_limit integer, p_offset integer, p_total integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'next', CASE WHEN p_offset + p_limit < p_total
                     THEN api._url_with(jsonb_build_object('limit', p_limit, 'offset', p_offset + p_limit)) END,
        'previous', CASE WHEN p_offset > 0
                         THEN api._url_with(jsonb_build_object('limit', p_limit,
                                                               'offset', greatest(p_offset - p_limit, 0))) END,
        'initial', api._url_with(jsonb_build_object('limit', p_limit, 'offset', 0)))
$$;

-- GET/POST persons/trends/: the trends filter plus entity_id / entity_type / entity_math,
-- date_from / date_to of the data point (explicit_date) and breakdown_value.
-- {"results": [{"people": [...], "count": <on this page>, "label": <series label>}],
--  "next", "previous", "initial", "missing_persons", "is_cached", "last_refresh"}
CREATE FUNCTION api.persons_trends(bytea) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_body jsonb;
    v_denied json;
    v_filter jsonb;
    v_query jsonb := api._query();
    v_limit integer;
    v_offset integer;
    v_meta jsonb;
    v_gti integer;
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
        IF api._method() = 'POST' AND v_body <> '{}'::jsonb THEN
            v_filter := (v_query - 'personal_api_key' - 'format' - 'refresh' - 'limit' - 'offset') || v_filter;
        END IF;
        v_limit := api._int_param(v_filter || v_query, 'limit', 100, 1, 10000);
        v_offset := api._int_param(v_filter || v_query, 'offset', 0, 0, 2147483647);
        v_meta := insights.trend_actors_meta(insights.request_project_id(), v_filter);
        v_gti := (v_meta->>'group_type_index')::integer;

        WITH ids AS (
            SELECT a AS key FROM insights.trend_actors(insights.request_project_id(), v_filter) a
        ), live AS (
            SELECT ids.key FROM ids
             WHERE v_gti IS NOT NULL
                OR EXISTS (SELECT 1 FROM insights.persons p WHERE p.id = ids.key::bigint)
        ), page AS (
            SELECT live.key FROM live
             ORDER BY CASE WHEN v_gti IS NULL THEN live.key::bigint END, live.key
             LIMIT v_limit OFFSET v_offset
        )
        SELECT coalesce((SELECT jsonb_agg(api._actor_json(page.key, v_gti)
                                          ORDER BY CASE WHEN v_gti IS NULL THEN page.key::bigint END, page.key)
                           FROM page), '[]'),
               (SELECT count(*) FROM ids),
               (SELECT count(*) FROM ids) - (SELECT count(*) FROM live)
          INTO v_people, v_total, v_missing;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL;
        RETURN api._error_from_sql(v_state, v_message, v_detail);
    END;
    RETURN (jsonb_build_object(
        'results', jsonb_build_array(jsonb_build_object(
            'people', v_people, 'count', jsonb_array_length(v_people), 'label', v_meta->'label')),
        'missing_persons', v_missing,
        'is_cached', false,
        'last_refresh', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        || api._page_links(v_limit, v_offset, v_total - v_missing))::json;
END $$;

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
