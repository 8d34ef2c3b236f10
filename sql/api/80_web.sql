-- Endpoints the web page (web/, docs/web.md) needs beyond PostHog's insight resource:
--   GET /api/projects/            the projects the key can open (project:read), PostHog's list shape
--   GET /shared/<access_token>.json  one shared insight without any key (the page at /shared/<token>)

-- The projects of the key's user, narrowed to the key's scoped_teams. SECURITY DEFINER: RLS on
-- insights.projects shows only the request's project, and this request has none. The key was
-- checked by the dispatcher; it is read again here (same order as api._authenticate) only for its
-- scoped_teams.
CREATE FUNCTION api._key_projects() RETURNS SETOF insights.projects
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    v_auth text := api._header('x-pgi-authorization');
    v_key text;
    v_teams bigint[];
BEGIN
    v_key := CASE WHEN v_auth ~* '^Bearer\s+\S' THEN regexp_replace(v_auth, '^Bearer\s+', '', 'i')
                  ELSE api._query()->>'personal_api_key' END;
    SELECT k.scoped_teams INTO v_teams FROM insights.personal_api_keys k
     WHERE k.secure_value = insights.hash_api_key(v_key) AND k.revoked_at IS NULL;
    RETURN QUERY
        SELECT p.* FROM insights.projects p
          JOIN insights.project_members m ON m.project_id = p.id
         WHERE m.user_id = insights.request_user_id()
           AND (v_teams IS NULL OR p.id = ANY (v_teams))
         ORDER BY p.id;
END $$;

-- GET /api/projects/ (project:read): PostHog's paginated list of projects; no secrets (the
-- project token is public by design and the page shows it).
CREATE FUNCTION api.h_projects(p_body jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_query jsonb := api._query();
    v_limit integer := api._int_param(v_query, 'limit', 100, 1, 1000);
    v_offset integer := api._int_param(v_query, 'offset', 0, 0, 2147483647);
    v_count bigint;
    v_results jsonb;
BEGIN
    SELECT count(*) INTO v_count FROM api._key_projects();
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', p.id, 'uuid', p.uuid, 'name', p.name, 'api_token', p.api_token,
               'timezone', p.timezone, 'week_start_day', p.week_start_day,
               'created_at', api._iso(p.created_at)) ORDER BY p.id), '[]')
      INTO v_results
      FROM (SELECT * FROM api._key_projects() LIMIT v_limit OFFSET v_offset) p;
    RETURN api._limit_offset_page(v_count, v_limit, v_offset, v_results);
END $$;

-- GET /shared/<access_token>.json (no key; scope `-`, so this handler checks the method and keeps
-- its own exception handler): {"insight": {...}} with the fields a read-only viewer needs and no
-- user data. A disabled, unknown or malformed token is a 404 at once: the lookup runs per request.
CREATE FUNCTION api.h_shared(p_raw bytea) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_token text := api._header('x-pgi-id');
    v_id bigint;
    v_row insights.saved_insights;
    v_json jsonb;
    v_state text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    IF api._method() NOT IN ('GET', 'HEAD') THEN
        RETURN api._method_not_allowed();
    END IF;
    IF coalesce(v_token, '') !~ '^[A-Za-z0-9_-]{8,64}$' THEN
        RETURN api._not_found();
    END IF;
    v_id := api._shared_insight_id(v_token);
    IF v_id IS NULL THEN
        RETURN api._not_found();
    END IF;
    BEGIN
        SELECT * INTO v_row FROM insights.saved_insights WHERE id = v_id;
        -- Viewers cannot force a calculation: a cached result, else one blocking run.
        v_json := api._insight_json(v_row, 'blocking');
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
        RETURN api._error_from_sql(v_state, v_message, v_detail, v_hint);
    END;
    RETURN json_build_object('insight', jsonb_build_object(
        'id', v_json->'id', 'short_id', v_json->'short_id', 'name', v_json->'name',
        'derived_name', v_json->'derived_name', 'description', v_json->'description',
        'filters', v_json->'filters', 'query', v_json->'query', 'result', v_json->'result',
        'last_refresh', v_json->'last_refresh', 'timezone', v_json->'timezone'));
END $$;

-- GET event_definitions/ (event_definition:read): the project's event names, as PostHog's list
-- {count, next, previous, results: [{id, name}]}, ?search= (case-insensitive substring), at most
-- 500 names. A loose index scan over events (project_id, event, timestamp) finds each distinct
-- name with one index probe, so it stays fast on large event tables. `id` is the name: there is
-- no event definition table here.
CREATE FUNCTION api.h_event_definitions(p_body jsonb) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_query jsonb := api._query();
    v_project bigint := insights.request_project_id();
    v_search text := lower(coalesce(v_query->>'search', ''));
    v_names jsonb;
BEGIN
    WITH RECURSIVE names(event) AS (
        (SELECT e.event FROM insights.events e WHERE e.project_id = v_project ORDER BY e.event LIMIT 1)
        UNION ALL
        SELECT (SELECT e.event FROM insights.events e
                 WHERE e.project_id = v_project AND e.event > n.event ORDER BY e.event LIMIT 1)
          FROM names n WHERE n.event IS NOT NULL
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', event, 'name', event) ORDER BY event), '[]')
      INTO v_names
      FROM (SELECT event FROM names WHERE event IS NOT NULL
               AND (v_search = '' OR strpos(lower(event), v_search) > 0)
             ORDER BY event LIMIT 500) x;
    RETURN json_build_object('count', jsonb_array_length(v_names), 'next', NULL, 'previous', NULL,
                             'results', v_names);
END $$;
