-- /api/projects/:project_id/persons/ (and /api/environments/:id/persons/): PostHog's person list
-- and retrieve. Scope person:read.

-- PostHog's person serializer (docs/api.md#persons).
CREATE FUNCTION api._person_json(p insights.persons) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', p.id,
        'uuid', p.uuid,
        'name', coalesce(p.properties->>'email', p.properties->>'name', ids.first_id, p.uuid::text),
        'distinct_ids', coalesce(ids.all_ids, '[]'::jsonb),
        'properties', p.properties,
        'created_at', api._iso(p.created_at),
        'is_identified', p.is_identified,
        'last_seen_at', NULL)
      FROM (SELECT jsonb_agg(d.distinct_id ORDER BY d.distinct_id) AS all_ids,
                   min(d.distinct_id) AS first_id
              FROM insights.person_distinct_ids d WHERE d.person_id = p.id) AS ids
$$;

-- GET persons/ with limit/offset, distinct_id, email, search and properties (PostHog person
-- property filters, api._persons_matching in 65_persons_manage.sql) filters; ?format=csv renders
-- the page as CSV.
CREATE FUNCTION api.h_persons(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_limit integer := api._int_param(v_query, 'limit', 100, 1, 1000);
    v_offset integer := api._int_param(v_query, 'offset', 0, 0, 2147483647);
    v_results jsonb;
    v_count integer;
    v_matching bigint[];
BEGIN
    IF coalesce(v_query->>'properties', '') NOT IN ('', '[]', '{}') THEN
        v_matching := api._persons_matching(v_query->'properties');
    END IF;
    SELECT coalesce(jsonb_agg(api._person_json(pp) ORDER BY pp.created_at DESC, pp.id DESC), '[]'),
           count(*)
      INTO v_results, v_count
      FROM (SELECT p.id FROM insights.persons p
             WHERE (v_matching IS NULL OR p.id = ANY (v_matching))
               AND (v_query->>'distinct_id' IS NULL OR EXISTS (
                      SELECT 1 FROM insights.person_distinct_ids d
                       WHERE d.person_id = p.id AND d.distinct_id = v_query->>'distinct_id'))
               AND (v_query->>'email' IS NULL OR p.properties->>'email' = v_query->>'email')
               AND (v_query->>'search' IS NULL
                    OR p.properties->>'email' ILIKE '%' || (v_query->>'search') || '%'
                    OR p.properties->>'name' ILIKE '%' || (v_query->>'search') || '%'
                    OR EXISTS (SELECT 1 FROM insights.person_distinct_ids d
                                WHERE d.person_id = p.id AND d.distinct_id = v_query->>'search'))
             ORDER BY p.created_at DESC, p.id DESC
             LIMIT v_limit + 1 OFFSET v_offset) AS page
      JOIN insights.persons pp ON pp.id = page.id;
    RETURN json_build_object(
        'results', CASE WHEN v_count > v_limit THEN v_results - v_limit ELSE v_results END,
        'next', CASE WHEN v_count > v_limit
                     THEN api._url_with(jsonb_build_object('limit', v_limit, 'offset', v_offset + v_limit)) END,
        'previous', CASE WHEN v_offset > 0
                         THEN api._url_with(jsonb_build_object('limit', v_limit,
                                                               'offset', greatest(v_offset - v_limit, 0))) END);
END $$;

-- GET persons/:id/ by numeric id or uuid.
CREATE FUNCTION api.h_person(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_id text := api._header('x-pgi-id');
    v_person insights.persons;
BEGIN
    IF v_id ~ '^\d{1,18}$' THEN
        SELECT * INTO v_person FROM insights.persons WHERE id = v_id::bigint;
    ELSIF v_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        SELECT * INTO v_person FROM insights.persons WHERE uuid = v_id::uuid;
    END IF;
    IF v_person.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    -- PATCH and DELETE (person:write) are persons management's (65_persons_manage.sql).
    IF api._method() = 'PATCH' THEN
        RETURN api._person_patch(v_person, p_body);
    ELSIF api._method() = 'DELETE' THEN
        RETURN api._person_delete(v_person, p_body);
    END IF;
    RETURN api._person_json(v_person);
END $$;

---------------------------------------------------------------------------------------------------
-- Insight actors: the persons (or groups) behind a funnel step, a funnel correlation row or a
-- trends data point. One request handler for the three endpoints; each kind only says how to
-- get its actor keys (the engines' *_actors functions). persons/retention (55_actors.sql) pages
-- actors with their appearances and has its own handler.

-- An actor as PostHog serialises it: a person (docs/api.md#persons, plus "type"), or a group.
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

-- One page of actors (person ids, or group keys when p_gti is set), ordered by id / key: the
-- serialised page, how many actors there are, and how many of them are persons that no longer
-- exist (merged away since the events were written: PostHog's missing_persons).
CREATE FUNCTION api._actor_page(p_keys text[], p_gti integer, p_limit integer, p_offset integer,
                                OUT people jsonb, OUT total integer, OUT missing integer)
LANGUAGE sql STABLE AS $$
    WITH ids AS (
        SELECT DISTINCT k FROM unnest(p_keys) k
    ), live AS (
        SELECT k FROM ids
         WHERE p_gti IS NOT NULL OR EXISTS (SELECT 1 FROM insights.persons p WHERE p.id = k::bigint)
    ), page AS (
        SELECT k FROM live
         ORDER BY CASE WHEN p_gti IS NULL THEN k::bigint END, k
         LIMIT p_limit OFFSET p_offset
    )
    SELECT coalesce((SELECT jsonb_agg(api._actor_json(page.k, p_gti)
                                      ORDER BY CASE WHEN p_gti IS NULL THEN page.k::bigint END, page.k)
                       FROM page), '[]'),
           (SELECT count(*) FROM ids)::integer,
           ((SELECT count(*) FROM ids) - (SELECT count(*) FROM live))::integer
$$;

-- GET/POST persons/funnel/, persons/funnel/correlation/, persons/trends/ (scope person:read).
-- GET takes the filter as query parameters, POST as a JSON body (query parameters are merged
-- under it). Paged with limit (default 100) / offset:
-- {"results": [{"people": [...], "count": <on this page>(, "label")}], "next", "previous",
--  "initial", "missing_persons"(, "is_cached", "last_refresh")}.
CREATE FUNCTION api._actors_response(p_body jsonb, p_kind text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_project bigint := insights.request_project_id();
    v_filter jsonb;
    v_query jsonb;
    v_limit integer;
    v_offset integer;
    v_gti integer;
    v_keys text[];
    v_meta jsonb := '{}';
    v_page record;
BEGIN
    v_query := api._query();
    v_filter := api._filter_from_request(p_body);
    IF api._method() = 'POST' AND p_body <> '{}'::jsonb THEN
        v_filter := (v_query - 'personal_api_key' - 'format' - 'refresh' - 'limit' - 'offset') || v_filter;
    END IF;
    -- Correlation people URLs page with PostHog's own names (funnel_correlation_person_*).
    v_limit := api._int_param(v_filter || v_query, 'limit',
                   api._int_param(v_filter, 'funnel_correlation_person_limit', 100, 1, 10000), 1, 10000);
    v_offset := api._int_param(v_filter || v_query, 'offset',
                   api._int_param(v_filter, 'funnel_correlation_person_offset', 0, 0, 2147483647), 0, 2147483647);
    v_gti := CASE WHEN coalesce(v_filter->>'aggregation_group_type_index', '') ~ '^\s*\d{1,9}\s*$'
                  THEN (v_filter->>'aggregation_group_type_index')::integer END;
    CASE p_kind
    WHEN 'funnel' THEN
        -- funnel_step N: converted at step N; -N: dropped off right before step N.
        v_keys := ARRAY(SELECT insights.funnel_actors(
            v_project, v_filter - 'funnel_step' - 'funnel_step_breakdown',
            api._int_param(v_filter, 'funnel_step', 1, -2147483647, 2147483647),
            CASE WHEN coalesce(v_filter->>'funnel_step_breakdown', '') = '' THEN NULL
                 WHEN jsonb_typeof(v_filter->'funnel_step_breakdown') = 'string'
                      AND (v_filter->>'funnel_step_breakdown') ~ '^\s*[\[\{"]'
                      THEN (v_filter->>'funnel_step_breakdown')::jsonb
                 ELSE v_filter->'funnel_step_breakdown' END));
    WHEN 'funnel_correlation' THEN
        v_keys := ARRAY(SELECT insights.funnel_correlation_actors(v_project, v_filter));
    WHEN 'trends' THEN
        v_meta := insights.trend_actors_meta(v_project, v_filter);
        v_gti := (v_meta->>'group_type_index')::integer;
        v_keys := ARRAY(SELECT insights.trend_actors(v_project, v_filter));
    WHEN 'stickiness' THEN
        -- stickiness_days k: the actors active in exactly k intervals (at least k, cumulative).
        IF coalesce(v_filter->>'stickiness_days', '') = '' THEN
            RAISE EXCEPTION 'Must include stickiness_days' USING ERRCODE = '22023', DETAIL = 'field: stickiness_days';
        END IF;
        v_keys := ARRAY(SELECT insights.stickiness_actors(
            v_project, v_filter - 'stickiness_days',
            api._int_param(v_filter, 'stickiness_days', 1, 1, 2147483647)));
    WHEN 'path' THEN
        -- path_start_key / path_end_key / path_dropoff_key ("<step>_<item>") pick the persons.
        v_keys := ARRAY(SELECT insights.paths_actors(
            v_project, v_filter - 'path_start_key' - 'path_end_key' - 'path_dropoff_key',
            v_filter->>'path_start_key', v_filter->>'path_end_key', v_filter->>'path_dropoff_key'));
    WHEN 'lifecycle' THEN
        -- target_date + lifecycle_type: the actors with that status in the period of the date.
        IF coalesce(v_filter->>'target_date', '') = '' THEN
            RAISE EXCEPTION 'Must include specified date' USING ERRCODE = '22023', DETAIL = 'field: target_date';
        END IF;
        IF coalesce(v_filter->>'lifecycle_type', '') = '' THEN
            RAISE EXCEPTION 'Must include lifecycle type' USING ERRCODE = '22023', DETAIL = 'field: lifecycle_type';
        END IF;
        v_keys := ARRAY(SELECT insights.lifecycle_actors(
            v_project, v_filter - 'target_date' - 'lifecycle_type',
            v_filter->>'target_date', v_filter->>'lifecycle_type'));
    END CASE;
    v_page := api._actor_page(v_keys, v_gti, v_limit, v_offset);
    RETURN (jsonb_build_object(
                'results', jsonb_build_array(
                    jsonb_build_object('people', v_page.people, 'count', jsonb_array_length(v_page.people))
                    || CASE WHEN p_kind = 'trends' THEN jsonb_build_object('label', v_meta->'label') ELSE '{}' END),
                'missing_persons', v_page.missing)
            || CASE WHEN p_kind = 'trends'
                    THEN jsonb_build_object('is_cached', false, 'last_refresh', api._iso(now()))
                    ELSE '{}' END
            || api._page_links(v_limit, v_offset, v_page.total - v_page.missing))::json;
END $$;

-- /api/projects/:project_id/persons/funnel/ (GET and POST): the persons behind a funnel step
-- (`funnel_step` = N converted at step N, -N dropped off before step N), paged with limit/offset.
CREATE FUNCTION api.h_persons_funnel(p_body jsonb) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response(p_body, 'funnel') $$;

-- persons/funnel/correlation/ (GET and POST): the persons behind a correlation row (its
-- success_people_url / failure_people_url): the funnel filter plus
-- funnel_correlation_person_entity (events, event_with_properties) or
-- funnel_correlation_property_values (properties), and funnel_correlation_person_converted
-- ("true" | "false"), paged with limit/offset.
CREATE FUNCTION api.h_persons_funnel_correlation(p_body jsonb) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response(p_body, 'funnel_correlation') $$;

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
CREATE FUNCTION api.h_persons_trends(p_body jsonb) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response(p_body, 'trends') $$;

-- GET/POST persons/stickiness/: the stickiness filter plus stickiness_days (k) and, optionally,
-- entity_id / entity_type of the series. {"results": [{"people": [...], "count"}], "next", …}
CREATE FUNCTION api.h_persons_stickiness(p_body jsonb) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response(p_body, 'stickiness') $$;

-- GET/POST persons/lifecycle/: the lifecycle filter plus target_date and lifecycle_type (new,
-- returning, resurrecting, dormant); a missing one is a 400. Same shape as persons/stickiness/.
CREATE FUNCTION api.h_persons_lifecycle(p_body jsonb) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response(p_body, 'lifecycle') $$;

-- GET/POST persons/path/: the paths filter (plus funnel_filter for funnel paths) and
-- path_start_key / path_end_key / path_dropoff_key. Same shape as persons/stickiness/.
CREATE FUNCTION api.h_persons_path(p_body jsonb) RETURNS json
LANGUAGE sql AS $$ SELECT api._actors_response(p_body, 'path') $$;

-- GET/POST persons/retention/: the retention filter plus selected_interval (the cohort, 0 = the
-- oldest; default 0). {"result": [{"person": <actor>, "appearances": [0, 1, 4, …]}], "next",
-- "previous", "initial", "missing_persons"}: the period offsets (0 = the cohort period) at which
-- the actor performed the returning event, most appearances first.
CREATE FUNCTION api.h_persons_retention(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_filter jsonb := api._filter_from_request(p_body);
    v_limit integer;
    v_offset integer;
    v_interval integer;
    v_gti integer;
    v_result jsonb;
    v_total integer;
    v_missing integer;
BEGIN
    IF api._method() = 'POST' AND p_body <> '{}'::jsonb THEN
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
    RETURN (jsonb_build_object('result', v_result, 'missing_persons', v_missing)
            || api._page_links(v_limit, v_offset, v_total - v_missing))::json;
END $$;
