-- PostHog's query endpoint for the insight query kinds, with its refresh modes and async runs:
--   POST   /api/projects/:project_id/query/        {"query": FunnelsQuery|TrendsQuery|RetentionQuery
--                                                   (bare or in an InsightVizNode), "refresh": mode}
--   GET    /api/projects/:project_id/query/:id/    {"query_status": {…}} of an async run
--   DELETE /api/projects/:project_id/query/:id/    cancel it (204)
-- Scope query:read. Results are cached in insights.query_cache; async runs are rows of
-- insights.query_tasks, executed by the extension's background worker (src/worker.rs).
-- api._cached_compute is the one implementation of the refresh modes
-- (docs/api.md#refresh-modes-and-cache).

-- How long a cached result stays fresh, by the query's interval (PostHog's thresholds; the lazy
-- ones for lazy_async).
CREATE FUNCTION api._stale_after(p_query jsonb, p_lazy boolean) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE lower(coalesce(p_query->>'interval', p_query#>>'{source,interval}', 'day'))
        WHEN 'minute' THEN CASE WHEN p_lazy THEN interval '15 minutes' ELSE interval '5 minutes' END
        WHEN 'hour' THEN CASE WHEN p_lazy THEN interval '2 hours' ELSE interval '1 hour' END
        WHEN 'week' THEN interval '1 day'
        WHEN 'month' THEN interval '1 day'
        ELSE CASE WHEN p_lazy THEN interval '12 hours' ELSE interval '6 hours' END
    END
$$;

-- The earliest time a client may force a recalculation after `last_refresh`.
CREATE FUNCTION api._min_refresh_gap(p_query jsonb) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE lower(coalesce(p_query->>'interval', p_query#>>'{source,interval}', 'day'))
        WHEN 'minute' THEN interval '1 minute'
        WHEN 'hour' THEN interval '3 minutes'
        ELSE interval '15 minutes'
    END
$$;

-- An absolute date_to (a date, or a datetime) that lies before `p_at` - 10 s: such a result can
-- no longer change, so it never goes stale (PostHog's exception). Relative dates never qualify.
CREATE FUNCTION api._ends_before(p_query jsonb, p_at timestamptz) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v text := coalesce(p_query->>'date_to', p_query#>>'{dateRange,date_to}', p_query#>>'{source,dateRange,date_to}');
    v_end timestamptz;
BEGIN
    IF v ~ '^\d{4}-\d{2}-\d{2}$' THEN
        v_end := v::date + 1;          -- a date means the whole day
    ELSIF v ~ '^\d{4}-\d{2}-\d{2}[T ]\d' THEN
        v_end := v::timestamptz;
    ELSE
        RETURN false;
    END IF;
    RETURN v_end < p_at - interval '10 seconds';
EXCEPTION WHEN OTHERS THEN
    RETURN false;                      -- not a date after all: treat as relative
END $$;

-- PostHog's cache key: "cache_" + md5 of the project and the normalised query (jsonb's text form
-- orders keys, so equal queries give equal keys).
CREATE FUNCTION api._cache_key(p_project_id bigint, p_kind text, p_query jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'cache_' || md5(p_project_id::text || ':' || p_kind || ':' || p_query::text)
$$;

-- One insight computed or served from the cache under a refresh mode. Returns the engine's body
-- ({"result", "timezone", …}) with the cache fields set, plus "query_status" when an async run
-- was started or is pending. Raises 22023 for an unknown mode; engine errors propagate (the
-- caller maps them to 400s) and are never cached.
CREATE FUNCTION api._cached_compute(p_kind text, p_query jsonb, p_mode text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_project bigint := insights.request_project_id();
    v_mode text := lower(coalesce(nullif(p_mode, ''), 'blocking'));
    v_key text;
    v_cache insights.query_cache;
    v_fresh boolean;
    v_task uuid;
    v_body jsonb;
BEGIN
    v_mode := CASE v_mode WHEN 'true' THEN 'force_blocking' WHEN 'false' THEN 'blocking' ELSE v_mode END;
    IF v_mode NOT IN ('force_cache', 'blocking', 'force_blocking', 'async', 'lazy_async',
                      'force_async', 'async_except_on_cache_miss') THEN
        RAISE EXCEPTION '"%" is not a valid choice.', p_mode USING ERRCODE = '22023', DETAIL = 'field: refresh',
            HINT = 'One of force_cache, blocking, force_blocking, async, lazy_async, force_async, async_except_on_cache_miss.';
    END IF;
    v_key := api._cache_key(v_project, p_kind, p_query);
    SELECT * INTO v_cache FROM insights.query_cache WHERE project_id = v_project AND cache_key = v_key;
    v_fresh := v_cache.cache_key IS NOT NULL
        AND (now() < v_cache.last_refresh + api._stale_after(p_query, v_mode = 'lazy_async')
             OR api._ends_before(p_query, v_cache.last_refresh));

    IF v_mode = 'async_except_on_cache_miss' THEN
        v_mode := CASE WHEN v_cache.cache_key IS NULL THEN 'blocking' ELSE 'async' END;
    END IF;
    -- A forced recalculation inside the minimum gap is served from the cache, as PostHog does.
    IF v_mode = 'force_blocking' AND v_cache.cache_key IS NOT NULL
       AND now() < v_cache.last_refresh + api._min_refresh_gap(p_query) THEN
        v_mode := 'force_cache';
    END IF;

    IF v_mode = 'force_cache' OR (v_fresh AND v_mode IN ('blocking', 'async', 'lazy_async')) THEN
        v_body := coalesce(v_cache.result, jsonb_build_object('result', NULL));
        RETURN api._with_cache_fields(v_body, v_cache.cache_key IS NOT NULL, v_cache.last_refresh, v_key, p_query);
    END IF;

    IF v_mode IN ('async', 'lazy_async', 'force_async') THEN
        v_task := insights.enqueue_query(v_project, p_kind, p_query, v_key, insights.request_user_id());
        v_body := coalesce(v_cache.result, jsonb_build_object('result', NULL));
        v_body := api._with_cache_fields(v_body, v_cache.cache_key IS NOT NULL, v_cache.last_refresh, v_key, p_query);
        RETURN v_body || jsonb_build_object('query_status', insights.query_status(v_project, v_task));
    END IF;

    -- blocking (stale or missing) and force_blocking: calculate now.
    v_body := insights.compute_insight(v_project, p_kind, p_query);
    INSERT INTO insights.query_cache AS c (project_id, cache_key, result, last_refresh)
    VALUES (v_project, v_key, v_body, now())
    ON CONFLICT (project_id, cache_key) DO UPDATE SET result = EXCLUDED.result, last_refresh = EXCLUDED.last_refresh;
    RETURN api._with_cache_fields(v_body, false, now(), v_key, p_query);
END $$;

CREATE FUNCTION api._with_cache_fields(p_body jsonb, p_cached boolean, p_last_refresh timestamptz,
                                       p_key text, p_query jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT p_body || jsonb_build_object(
        'is_cached', p_cached,
        'last_refresh', api._iso(p_last_refresh),
        'cache_key', p_key,
        'cache_target_age', api._iso(p_last_refresh + api._stale_after(p_query, false)),
        'next_allowed_client_refresh', api._iso(p_last_refresh + api._min_refresh_gap(p_query)))
$$;

-- The insight kind of a query node (bare or inside an InsightVizNode), or NULL.
CREATE FUNCTION api._query_kind(p_query jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT api._node_engine(coalesce(p_query#>>'{source,kind}', p_query->>'kind'))
$$;

-- POST /query/
CREATE FUNCTION api.h_query(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb;
    v_kind text;
    v_out jsonb;
BEGIN
    v_query := p_body->'query';
    IF v_query IS NULL OR jsonb_typeof(v_query) <> 'object' THEN
        RETURN api._error(400, 'validation_error', 'required', 'This field is required.', 'query');
    END IF;
    v_kind := api._query_kind(v_query);
    IF v_kind IS NULL THEN
        RETURN api._error(400, 'validation_error', 'invalid_input',
                          format('Unsupported query kind %s: this server answers FunnelsQuery, TrendsQuery, RetentionQuery, StickinessQuery, LifecycleQuery and PathsQuery.',
                                 coalesce(v_query#>>'{source,kind}', v_query->>'kind', 'null')), 'query');
    END IF;
    v_out := api._cached_compute(v_kind, v_query,
                                 CASE jsonb_typeof(p_body->'refresh')
                                     WHEN 'boolean' THEN (p_body->>'refresh')
                                     ELSE p_body->>'refresh' END);
    -- The query endpoint names the payload `results` (the legacy insight endpoints: `result`).
    RETURN ((v_out - 'result') || jsonb_build_object('results', v_out->'result'))::json;
END $$;

-- GET|DELETE /query/:id/
CREATE FUNCTION api.h_query_task(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_id text := api._header('x-pgi-id');
    v_status jsonb;
BEGIN
    IF v_id !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
        RETURN api._not_found();
    END IF;
    v_status := insights.query_status(insights.request_project_id(), v_id::uuid);
    IF v_status IS NULL THEN
        RETURN api._not_found();
    END IF;
    IF api._method() = 'DELETE' THEN
        PERFORM insights.cancel_query_task(insights.request_project_id(), v_id::uuid);
        PERFORM set_config('response.status', '204', true);
        RETURN NULL;
    END IF;
    RETURN json_build_object('query_status', v_status);
END $$;
