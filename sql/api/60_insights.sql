-- /api/projects/:project_id/insights/… (and /api/environments/:id/insights/…): PostHog's saved
-- insights resource (docs/api.md#saved-insights): list/create, retrieve/update (soft delete), results
-- with PostHog's refresh modes over insights.query_cache, activity, viewed, sharing.
--
-- Every function runs as pgi_api, so row-level security (10_rls.sql) keeps each statement inside
-- the request's project: an insight id of another project is simply not found (404).
-- User values only ever travel as plpgsql variables (bound parameters); nothing is built as SQL text.
--
-- Validation errors are raised with SQLSTATE 22023, DETAIL 'field: <attr>' and HINT 'code: <code>'
-- (DRF's error code) and turned into PostHog's body by api._error_from_sql.

---------------------------------------------------------------------------------------------------
-- Helpers

-- A 400 for a body field, in DRF's words; p_code is DRF's code ('invalid' becomes 'invalid_input').
CREATE FUNCTION api._field_error(p_attr text, p_detail text, p_code text DEFAULT 'invalid')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', p_detail USING ERRCODE = 'invalid_parameter_value',
        DETAIL = 'field: ' || p_attr, HINT = 'code: ' || p_code;
END $$;

-- PostHog's user object (created_by, last_modified_by, activity `user`).
CREATE FUNCTION api._user_json(p_user_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', u.id, 'uuid', u.uuid, 'distinct_id', u.uuid::text,
                              'first_name', u.first_name, 'last_name', u.last_name, 'email', u.email,
                              'is_email_verified', NULL, 'hedgehog_config', NULL,
                              'role_at_organization', NULL)
      FROM insights.users u WHERE u.id = p_user_id
$$;

-- DRF's BooleanField: JSON booleans, and the strings/numbers it accepts from forms.
CREATE FUNCTION api._bool_field(p_body jsonb, p_attr text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := p_body->p_attr;
BEGIN
    IF jsonb_typeof(v) = 'boolean' THEN
        RETURN v::text::boolean;
    ELSIF jsonb_typeof(v) = 'null' THEN
        PERFORM api._field_error(p_attr, 'This field may not be null.', 'null');
    ELSIF lower(v #>> '{}') IN ('true', 't', '1', 'yes', 'on') THEN
        RETURN true;
    ELSIF lower(v #>> '{}') IN ('false', 'f', '0', 'no', 'off') THEN
        RETURN false;
    END IF;
    PERFORM api._field_error(p_attr, 'Must be a valid boolean.');
END $$;

-- DRF's CharField(max_length=p_max, 400 unless given), nullable or not.
CREATE FUNCTION api._text_field(p_body jsonb, p_attr text, p_nullable boolean, p_max integer DEFAULT 400)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := p_body->p_attr;
BEGIN
    IF jsonb_typeof(v) = 'null' THEN
        IF NOT p_nullable THEN
            PERFORM api._field_error(p_attr, 'This field may not be null.', 'null');
        END IF;
        RETURN NULL;
    ELSIF jsonb_typeof(v) NOT IN ('string', 'number') THEN
        PERFORM api._field_error(p_attr, 'Not a valid string.');
    ELSIF length(v #>> '{}') > p_max THEN
        PERFORM api._field_error(p_attr, format('Ensure this field has no more than %s characters.', p_max),
                                 'max_length');
    END IF;
    RETURN v #>> '{}';
END $$;

-- `filters` / `query`: a JSON object (a form body may send it JSON-encoded), or null.
CREATE FUNCTION api._object_field(p_body jsonb, p_attr text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := p_body->p_attr;
BEGIN
    IF jsonb_typeof(v) = 'string' AND (v #>> '{}') ~ '^\s*\{' THEN
        BEGIN
            v := (v #>> '{}')::jsonb;
        EXCEPTION WHEN invalid_text_representation THEN
            PERFORM api._field_error(p_attr, 'Value must be valid JSON.');
        END;
    END IF;
    IF jsonb_typeof(v) IN ('object', 'null') THEN
        RETURN CASE WHEN jsonb_typeof(v) = 'null' THEN NULL ELSE v END;
    END IF;
    PERFORM api._field_error(p_attr, format('Expected a dictionary of items but got type "%s".',
                                            CASE jsonb_typeof(v) WHEN 'array' THEN 'list'
                                                 WHEN 'string' THEN 'str' WHEN 'number' THEN 'int'
                                                 ELSE jsonb_typeof(v) END), 'not_a_dict');
END $$;

-- A JSON list, or DRF's not_a_list error.
CREATE FUNCTION api._list_field(p_body jsonb, p_attr text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := p_body->p_attr;
BEGIN
    IF jsonb_typeof(v) = 'array' THEN
        RETURN v;
    ELSIF jsonb_typeof(v) = 'null' THEN
        PERFORM api._field_error(p_attr, 'This field may not be null.', 'null');
    END IF;
    PERFORM api._field_error(p_attr, format('Expected a list of items but got type "%s".',
                                            CASE jsonb_typeof(v) WHEN 'object' THEN 'dict'
                                                 WHEN 'string' THEN 'str' WHEN 'number' THEN 'int'
                                                 WHEN 'boolean' THEN 'bool' END), 'not_a_list');
END $$;

-- DRF's ListField(child=CharField) of tags (insights, actions): strings only, each once, in order.
CREATE FUNCTION api._tags_field(p_body jsonb) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_tag jsonb;
    v_tags text[] := '{}';
BEGIN
    FOR v_tag IN SELECT x FROM jsonb_array_elements(api._list_field(p_body, 'tags')) AS x LOOP
        IF jsonb_typeof(v_tag) <> 'string' THEN
            PERFORM api._field_error('tags', 'Not a valid string.');
        END IF;
        IF NOT (v_tag #>> '{}') = ANY (v_tags) THEN
            v_tags := v_tags || (v_tag #>> '{}');
        END IF;
    END LOOP;
    RETURN v_tags;
END $$;

-- A list of integer ids (dashboards, insight_ids).
CREATE FUNCTION api._id_list_field(p_body jsonb, p_attr text) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := api._list_field(p_body, p_attr);
    e jsonb;
    v_ids bigint[] := '{}';
BEGIN
    FOR e IN SELECT x FROM jsonb_array_elements(v) AS x LOOP
        IF NOT ((jsonb_typeof(e) = 'number' AND (e #>> '{}') ~ '^\d{1,18}$')
                OR (jsonb_typeof(e) = 'string' AND (e #>> '{}') ~ '^\d{1,18}$')) THEN
            PERFORM api._field_error(p_attr, format('Incorrect type. Expected pk value, received %s.',
                                                    CASE jsonb_typeof(e) WHEN 'string' THEN 'str'
                                                         WHEN 'number' THEN 'float' WHEN 'object' THEN 'dict'
                                                         WHEN 'array' THEN 'list' WHEN 'boolean' THEN 'bool'
                                                         ELSE 'NoneType' END), 'incorrect_type');
        END IF;
        v_ids := v_ids || (e #>> '{}')::bigint;
    END LOOP;
    RETURN v_ids;
END $$;

-- A list query parameter: a JSON array ('["a","b"]'), or one plain value; NULL when absent.
CREATE FUNCTION api._list_param(p_query jsonb, p_name text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v text := nullif(p_query->>p_name, '');
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    IF v ~ '^\s*\[' THEN
        BEGIN
            RETURN ARRAY(SELECT x #>> '{}' FROM jsonb_array_elements(v::jsonb) AS x);
        EXCEPTION WHEN invalid_text_representation THEN
            PERFORM api._field_error(p_name, 'Value must be valid JSON.');
        END;
    END IF;
    RETURN ARRAY[v];
END $$;

-- A list filter date (PostHog's relative_date_parse subset): "-Nh" (exact), "-Nd"/"-Nw"/"-Nm"/"-Ny"
-- (start of that day), dStart/mStart/yStart, or an ISO date/datetime, in the project timezone.
-- NULL when absent; a 400 naming the parameter otherwise.
CREATE FUNCTION api._date_param(p_query jsonb, p_name text, p_tz text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v text := nullif(btrim(p_query->>p_name), '');
    v_today timestamp := date_trunc('day', now() AT TIME ZONE p_tz);
    v_n integer;
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    ELSIF v ~ '^-\d{1,6}h$' THEN
        RETURN now() - make_interval(hours => substring(v FROM 2 FOR length(v) - 2)::integer);
    ELSIF v ~ '^-\d{1,6}[dwmy]$' THEN
        v_n := substring(v FROM 2 FOR length(v) - 2)::integer;
        RETURN (v_today - CASE right(v, 1) WHEN 'd' THEN make_interval(days => v_n)
                                           WHEN 'w' THEN make_interval(weeks => v_n)
                                           WHEN 'm' THEN make_interval(months => v_n)
                                           ELSE make_interval(years => v_n) END) AT TIME ZONE p_tz;
    ELSIF v = 'dStart' THEN
        RETURN v_today AT TIME ZONE p_tz;
    ELSIF v = 'mStart' THEN
        RETURN date_trunc('month', v_today) AT TIME ZONE p_tz;
    ELSIF v = 'yStart' THEN
        RETURN date_trunc('year', v_today) AT TIME ZONE p_tz;
    ELSIF v ~ '^\d{4}-\d{2}-\d{2}$' THEN
        RETURN v::date::timestamp AT TIME ZONE p_tz;
    ELSIF v ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}' THEN
        IF v ~ '(Z|[+-]\d{2}(:?\d{2})?)$' THEN
            RETURN v::timestamptz;
        END IF;
        RETURN v::timestamp AT TIME ZONE p_tz;
    END IF;
    PERFORM api._field_error(p_name, format('"%s" is not a valid date.', v));
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format OR numeric_value_out_of_range THEN
    PERFORM api._field_error(p_name, format('"%s" is not a valid date.', v));
END $$;

-- A random short_id: 8 characters of [A-Za-z0-9] (PostHog's generate_short_id), from
-- gen_random_uuid's strong randomness.
CREATE FUNCTION api._new_short_id() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT string_agg(substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
                             get_byte(b, i) % 62 + 1, 1), '' ORDER BY i)
      FROM (SELECT sha256(uuid_send(gen_random_uuid())) AS b) r, generate_series(0, 7) AS i
$$;

-- An insight by the :id path segment (numeric id or short_id), deleted ones only on request.
-- RLS restricts it to the request's project.
CREATE FUNCTION api._insight_by_path(p_include_deleted boolean) RETURNS insights.saved_insights
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id text := api._header('x-pgi-id');
    v_row insights.saved_insights;
BEGIN
    IF v_id ~ '^\d{1,18}$' THEN
        SELECT * INTO v_row FROM insights.saved_insights WHERE id = v_id::bigint;
    ELSIF v_id ~ '^[A-Za-z0-9]{8}$' THEN
        SELECT * INTO v_row FROM insights.saved_insights WHERE short_id = v_id;
    END IF;
    IF v_row.id IS NULL OR (v_row.deleted AND NOT p_include_deleted) THEN
        RETURN NULL;
    END IF;
    RETURN v_row;
END $$;

-- A pagination URL as DRF builds it: this path, the query parameters sorted, p_set replaced and
-- p_remove removed.
CREATE FUNCTION api._page_url(p_set jsonb, p_remove text DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(api._header('x-pgi-base'), '') || coalesce(api._header('x-pgi-path'), '/') ||
           coalesce('?' || string_agg(format('%s=%s', key,
                                             replace(replace(replace(replace(value, '%', '%25'), '&', '%26'),
                                                                     ' ', '%20'), '#', '%23')),
                                      '&' ORDER BY key), '')
      FROM jsonb_each_text((api._query() - coalesce(p_remove, '')) || p_set)
$$;

-- A page of DRF's LimitOffsetPagination: {count, next, previous, results}; `next` and `previous`
-- are this request's URL with limit/offset moved, and the first page's `previous` drops `offset`.
CREATE FUNCTION api._limit_offset_page(p_count bigint, p_limit integer, p_offset integer, p_results jsonb)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'count', p_count,
        'next', CASE WHEN p_offset + p_limit < p_count
                     THEN api._page_url(jsonb_build_object('limit', p_limit, 'offset', p_offset + p_limit)) END,
        'previous', CASE WHEN p_offset <= 0 THEN NULL
                         WHEN p_offset - p_limit <= 0 THEN api._page_url(jsonb_build_object('limit', p_limit), 'offset')
                         ELSE api._page_url(jsonb_build_object('limit', p_limit, 'offset', p_offset - p_limit)) END,
        'results', p_results)
$$;

-- GET of a resource with soft delete and names (actions, cohorts): its live rows newest first,
-- ?search= a case-insensitive substring of the name, ?limit/?offset a DRF page; each row rendered
-- by the serializer api.<p_serializer>(row). Table and serializer are identifiers of this file's
-- callers (never user input); the user's values are bound parameters.
CREATE FUNCTION api._live_page(p_table text, p_serializer text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_limit integer := api._int_param(v_query, 'limit', 100, 1, 1000);
    v_offset integer := api._int_param(v_query, 'offset', 0, 0, 2147483647);
    v_search text := nullif(v_query->>'search', '');
    v_live text := 'NOT x.deleted AND ($1 IS NULL OR strpos(lower(coalesce(x.name, '''')), lower($1)) > 0)';
    v_count bigint;
    v_results jsonb;
BEGIN
    EXECUTE format('SELECT count(*) FROM insights.%I x WHERE %s', p_table, v_live) INTO v_count USING v_search;
    EXECUTE format('SELECT coalesce(jsonb_agg(api.%I(p) ORDER BY p.id DESC), ''[]'')
                      FROM (SELECT x.* FROM insights.%I x WHERE %s ORDER BY x.id DESC LIMIT $2 OFFSET $3) p',
                   p_serializer, p_table, v_live)
       INTO v_results USING v_search, v_limit, v_offset;
    RETURN api._limit_offset_page(v_count, v_limit, v_offset, v_results);
END $$;

---------------------------------------------------------------------------------------------------
-- Results and the query cache (docs/api.md#refresh-modes-and-cache)

-- The engine of a query node kind: 'funnel', 'trend', 'retention', 'stickiness', 'lifecycle',
-- 'path', or NULL (one list for saved insights and /query/, api._query_kind in 70_query.sql).
CREATE FUNCTION api._node_engine(p_kind text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_kind
        WHEN 'FunnelsQuery' THEN 'funnel'
        WHEN 'TrendsQuery' THEN 'trend'
        WHEN 'RetentionQuery' THEN 'retention'
        WHEN 'StickinessQuery' THEN 'stickiness'
        WHEN 'LifecycleQuery' THEN 'lifecycle'
        WHEN 'PathsQuery' THEN 'path'
    END
$$;

-- Which engine computes an insight: 'funnel', 'trend', 'retention', 'stickiness', 'lifecycle',
-- 'path', or NULL when none of ours does (SQL, or an empty insight): those get `result: null`.
CREATE FUNCTION api._insight_kind(p_filters jsonb, p_query jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN jsonb_typeof(p_query) = 'object' THEN
            api._node_engine(CASE WHEN p_query->>'kind' = 'InsightVizNode' THEN p_query->'source'->>'kind'
                                  ELSE p_query->>'kind' END)
        WHEN jsonb_typeof(p_filters) = 'object' THEN
            CASE upper(coalesce(nullif(p_filters->>'insight', ''), 'TRENDS'))
                WHEN 'FUNNELS' THEN 'funnel'
                WHEN 'RETENTION' THEN 'retention'
                WHEN 'STICKINESS' THEN 'stickiness'
                WHEN 'LIFECYCLE' THEN 'lifecycle'
                WHEN 'PATHS' THEN 'path'
                WHEN 'TRENDS' THEN CASE WHEN NOT (p_filters ? 'events' OR p_filters ? 'actions') THEN NULL
                                        WHEN p_filters->>'shown_as' = 'Stickiness' THEN 'stickiness'
                                        WHEN p_filters->>'shown_as' = 'Lifecycle' THEN 'lifecycle'
                                        ELSE 'trend' END
            END
    END
$$;

-- The query an insight's result is computed from (`query` wins over legacy `filters`).
CREATE FUNCTION api._insight_source(p_filters jsonb, p_query jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p_query) = 'object' THEN p_query ELSE p_filters END
$$;

-- The result part of an insight's serializer under a refresh mode
-- (docs/api.md#refresh-modes-and-cache): result, is_cached,
-- last_refresh, cache_target_age, next_allowed_client_refresh, timezone, query_status.
-- The refresh modes, the cache (insights.query_cache, keyed by project + kind + normalized query)
-- and the async runs (insights.query_tasks, run by the background worker) are api._cached_compute's
-- (70_query.sql, created after this file: plpgsql resolves it at call time), so a saved insight
-- and the same query sent to /query/ share one cache entry.
CREATE FUNCTION api._insight_result(p_insight insights.saved_insights, p_mode text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_kind text := api._insight_kind(p_insight.filters, p_insight.query);
    v_tz text := (api._project()).timezone;
    v_out jsonb;
BEGIN
    IF v_kind IS NULL THEN
        RETURN jsonb_build_object('result', NULL, 'is_cached', false, 'last_refresh', NULL,
                                  'cache_target_age', NULL, 'next_allowed_client_refresh', NULL,
                                  'timezone', v_tz, 'query_status', NULL);
    END IF;
    v_out := api._cached_compute(v_kind, api._insight_source(p_insight.filters, p_insight.query), p_mode);
    RETURN jsonb_build_object(
        'result', v_out->'result',
        'is_cached', v_out->'is_cached',
        'last_refresh', v_out->'last_refresh',
        'cache_target_age', CASE WHEN v_out->>'last_refresh' IS NOT NULL THEN v_out->'cache_target_age' END,
        'next_allowed_client_refresh',
            CASE WHEN v_out->>'last_refresh' IS NOT NULL THEN v_out->'next_allowed_client_refresh' END,
        'timezone', coalesce(v_out->>'timezone', v_tz),
        'query_status', v_out->'query_status');
END $$;

-- PostHog's `refresh` parameter → execution mode (execution_mode_from_refresh): the mode names,
-- true → force_blocking, anything else (false, missing, unknown) → force_cache.
CREATE FUNCTION api._refresh_mode(p_query jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_query->>'refresh' IN ('blocking', 'force_blocking', 'force_cache', 'async', 'lazy_async',
                                     'force_async', 'async_except_on_cache_miss') THEN p_query->>'refresh'
        WHEN lower(p_query->>'refresh') IN ('true', '1') THEN 'force_blocking'
        ELSE 'force_cache'
    END
$$;

---------------------------------------------------------------------------------------------------
-- Serializers (docs/api.md#serializer)

-- dashboards / dashboard_tiles of an insight: live tiles on live dashboards.
CREATE FUNCTION api._insight_tiles(p_insight_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', t.id, 'dashboard_id', t.dashboard_id,
                                                 'deleted', t.deleted) ORDER BY t.id), '[]')
      FROM insights.dashboard_tiles t JOIN insights.dashboards d ON d.id = t.dashboard_id
     WHERE t.insight_id = p_insight_id AND NOT t.deleted AND NOT d.deleted
$$;

-- The basic serializer (list with basic=true, my_last_viewed): no results.
CREATE FUNCTION api._insight_basic_json(i insights.saved_insights) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', i.id, 'short_id', i.short_id, 'name', i.name, 'derived_name', i.derived_name,
        'filters', CASE WHEN i.query IS NOT NULL THEN '{}'::jsonb ELSE i.filters END,
        'query', i.query,
        'dashboards', (SELECT coalesce(jsonb_agg(DISTINCT t->'dashboard_id'), '[]')
                         FROM jsonb_array_elements(tiles) t),
        'dashboard_tiles', tiles,
        'description', i.description,
        'last_refresh', NULL, 'refreshing', false, 'saved', i.saved,
        'tags', to_jsonb(i.tags), 'updated_at', api._iso(i.updated_at),
        'created_by', api._user_json(i.created_by), 'created_at', api._iso(i.created_at),
        'last_modified_at', api._iso(i.last_modified_at), 'favorited', i.favorited,
        'user_access_level', 'editor')
      FROM (SELECT api._insight_tiles(i.id) AS tiles) t
$$;

-- The full serializer, with the result part for a refresh mode.
CREATE FUNCTION api._insight_json(i insights.saved_insights, p_mode text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_result jsonb := api._insight_result(i, p_mode);
BEGIN
    RETURN (api._insight_basic_json(i) - 'refreshing') || jsonb_build_object(
        'order', i."order", 'deleted', i.deleted,
        'last_refresh', v_result->'last_refresh',
        'cache_target_age', v_result->'cache_target_age',
        'next_allowed_client_refresh', v_result->'next_allowed_client_refresh',
        'result', v_result->'result', 'hasMore', NULL, 'columns', NULL,
        'last_modified_by', api._user_json(i.last_modified_by),
        'is_sample', false,
        -- Access control is not modelled: every project member may edit (PostHog's
        -- "everyone in the project can edit" 21 and "can edit" 37).
        'effective_restriction_level', 21, 'effective_privilege_level', 37,
        'timezone', v_result->'timezone', 'is_cached', v_result->'is_cached',
        'query_status', v_result->'query_status', 'hogql', NULL, 'types', NULL,
        'alerts', '[]'::jsonb,
        'last_viewed_at', (SELECT api._iso(v.last_viewed_at) FROM insights.insight_views v
                            WHERE v.insight_id = i.id AND v.user_id = insights.request_user_id()));
END $$;

---------------------------------------------------------------------------------------------------
-- Writes: body → row, dashboards, activity (docs/api.md#activity-log)

-- Applies a create/update body to an insight row (only the fields present), validating each as
-- PostHog's serializer does. Read-only and unknown fields are ignored, as DRF does.
CREATE FUNCTION api._insight_apply_body(i insights.saved_insights, p_body jsonb) RETURNS insights.saved_insights
LANGUAGE plpgsql AS $$
BEGIN
    IF p_body ? 'name' THEN i.name := api._text_field(p_body, 'name', true); END IF;
    IF p_body ? 'derived_name' THEN i.derived_name := api._text_field(p_body, 'derived_name', true); END IF;
    IF p_body ? 'description' THEN i.description := api._text_field(p_body, 'description', false); END IF;
    IF p_body ? 'filters' THEN i.filters := coalesce(api._object_field(p_body, 'filters'), '{}'); END IF;
    IF p_body ? 'query' THEN i.query := api._object_field(p_body, 'query'); END IF;
    IF p_body ? 'order' THEN
        IF jsonb_typeof(p_body->'order') = 'null' THEN
            i."order" := NULL;
        ELSIF (p_body->>'order') ~ '^\s*-?\d{1,9}\s*$' AND jsonb_typeof(p_body->'order') IN ('number', 'string') THEN
            i."order" := (p_body->>'order')::integer;
        ELSE
            PERFORM api._field_error('order', 'A valid integer is required.');
        END IF;
    END IF;
    IF p_body ? 'deleted' THEN i.deleted := api._bool_field(p_body, 'deleted'); END IF;
    IF p_body ? 'saved' THEN i.saved := api._bool_field(p_body, 'saved'); END IF;
    IF p_body ? 'favorited' THEN i.favorited := api._bool_field(p_body, 'favorited'); END IF;
    IF p_body ? 'tags' THEN i.tags := api._tags_field(p_body); END IF;
    IF p_body ? '_create_in_folder' AND jsonb_typeof(p_body->'_create_in_folder') NOT IN ('string', 'null') THEN
        PERFORM api._field_error('_create_in_folder', 'Not a valid string.');
    END IF;
    RETURN i;
END $$;

-- Writes `dashboards` (the deprecated id list): a tile per listed dashboard, other tiles soft-
-- deleted. Each id must be a live dashboard of the project (RLS hides the others).
CREATE FUNCTION api._insight_set_dashboards(p_insight_id bigint, p_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    FOREACH v_id IN ARRAY p_ids LOOP
        IF NOT EXISTS (SELECT 1 FROM insights.dashboards WHERE id = v_id AND NOT deleted) THEN
            PERFORM api._field_error('dashboards', format('Invalid pk "%s" - object does not exist.', v_id),
                                     'does_not_exist');
        END IF;
        INSERT INTO insights.dashboard_tiles (dashboard_id, insight_id) VALUES (v_id, p_insight_id)
        ON CONFLICT (dashboard_id, insight_id) DO UPDATE SET deleted = false;
    END LOOP;
    UPDATE insights.dashboard_tiles SET deleted = true
     WHERE insight_id = p_insight_id AND NOT deleted AND NOT (dashboard_id = ANY (p_ids));
END $$;

-- The changes list of an "updated" activity: one entry per changed field.
CREATE FUNCTION api._insight_changes(p_before jsonb, p_after jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('type', 'Insight', 'action', 'changed', 'field', f,
                                                 'before', p_before->f, 'after', p_after->f) ORDER BY n), '[]')
      FROM unnest(ARRAY['name', 'derived_name', 'description', 'filters', 'query', 'tags', 'dashboards',
                        'favorited', 'deleted', 'order']) WITH ORDINALITY AS u(f, n)
     WHERE p_before->f IS DISTINCT FROM p_after->f
$$;

-- One activity entry for an insight (PostHog's log_activity with scope "Insight").
CREATE FUNCTION api._insight_log(i insights.saved_insights, p_activity text, p_changes jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO insights.activity_log (project_id, user_id, scope, item_id, activity, detail)
    VALUES (i.project_id, insights.request_user_id(), 'Insight', i.id::text, p_activity,
            jsonb_build_object('id', i.id::text, 'name', coalesce(i.name, i.derived_name),
                               'short_id', i.short_id, 'type', NULL, 'trigger', NULL, 'merge', NULL,
                               'changes', p_changes))
$$;

-- The fields activity compares, as the serializer shows them.
CREATE FUNCTION api._insight_audit_json(i insights.saved_insights) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('name', i.name, 'derived_name', i.derived_name, 'description', i.description,
                              'filters', i.filters, 'query', i.query, 'tags', to_jsonb(i.tags),
                              'favorited', i.favorited, 'deleted', i.deleted, 'order', i."order",
                              'dashboards', (SELECT coalesce(jsonb_agg(t.dashboard_id ORDER BY t.dashboard_id), '[]')
                                               FROM insights.dashboard_tiles t
                                              WHERE t.insight_id = i.id AND NOT t.deleted))
$$;

---------------------------------------------------------------------------------------------------
-- Endpoints

-- GET insights/: list (insight:read). POST insights/: create (insight:write), 201.
-- The dispatcher renders the JSON body as JSON or, with ?format=csv, CSV.
CREATE FUNCTION api.h_insights(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_method text := api._method();
    v_query jsonb;
    v_limit integer;
    v_offset integer;
    v_basic boolean;
    v_mode text;
    v_created_by bigint;
    v_kind text;
    v_order text;
    v_tz text;
    v_mod_from timestamptz;
    v_mod_to timestamptz;
    v_created_from timestamptz;
    v_created_to timestamptz;
    v_viewed_from timestamptz;
    v_viewed_to timestamptz;
    v_tags text[];
    v_dashboards text[];
    v_count bigint;
    v_ids bigint[];
    v_results jsonb := '[]';
    v_row insights.saved_insights;
BEGIN
    v_query := api._query();

    IF v_method = 'POST' THEN
        v_row.project_id := insights.request_project_id();
        v_row.filters := '{}';
        v_row.description := '';
        v_row.tags := '{}';
        v_row.deleted := false;
        v_row.saved := false;
        v_row.favorited := false;
        v_row := api._insight_apply_body(v_row, p_body);
        v_ids := CASE WHEN p_body ? 'dashboards' THEN api._id_list_field(p_body, 'dashboards') END;
        LOOP
            v_row.short_id := api._new_short_id();
            EXIT WHEN NOT EXISTS (SELECT 1 FROM insights.saved_insights WHERE short_id = v_row.short_id);
        END LOOP;
        INSERT INTO insights.saved_insights
               (project_id, short_id, name, derived_name, description, filters, query, "order",
                deleted, saved, favorited, tags, created_by, last_modified_by)
        VALUES (v_row.project_id, v_row.short_id, v_row.name, v_row.derived_name, v_row.description,
                v_row.filters, v_row.query, v_row."order", v_row.deleted, v_row.saved, v_row.favorited,
                v_row.tags, insights.request_user_id(), insights.request_user_id())
        RETURNING * INTO v_row;
        IF v_ids IS NOT NULL THEN
            PERFORM api._insight_set_dashboards(v_row.id, v_ids);
        END IF;
        -- PostHog records a view for the creator and a "created" activity.
        INSERT INTO insights.insight_views (project_id, user_id, insight_id)
        VALUES (v_row.project_id, insights.request_user_id(), v_row.id);
        PERFORM api._insight_log(v_row, 'created', NULL);
        PERFORM set_config('response.status', '201', true);
        RETURN api._insight_json(v_row, 'force_cache');
    END IF;

    v_limit := api._int_param(v_query, 'limit', 100, 1, 1000);
    v_offset := api._int_param(v_query, 'offset', 0, 0, 2147483647);
    v_created_by := api._int_param(v_query, 'created_by', NULL, 0, 2147483647);
    v_basic := lower(coalesce(v_query->>'basic', '')) IN ('true', '1');
    v_mode := api._refresh_mode(v_query);
    v_kind := upper(nullif(v_query->>'insight', ''));
    -- Date filters: date_from/date_to on last_modified_at, created_date_*, last_viewed_date_*
    -- (the request user's views).
    v_tz := (api._project()).timezone;
    v_mod_from := api._date_param(v_query, 'date_from', v_tz);
    v_mod_to := api._date_param(v_query, 'date_to', v_tz);
    v_created_from := api._date_param(v_query, 'created_date_from', v_tz);
    v_created_to := api._date_param(v_query, 'created_date_to', v_tz);
    v_viewed_from := api._date_param(v_query, 'last_viewed_date_from', v_tz);
    v_viewed_to := api._date_param(v_query, 'last_viewed_date_to', v_tz);
    v_order := nullif(v_query->>'order', '');
    IF v_order IS NOT NULL AND v_order NOT IN ('name', 'created_at', 'last_modified_at', 'updated_at', 'id', 'order',
                                               '-name', '-created_at', '-last_modified_at', '-updated_at', '-id',
                                               '-order') THEN
        PERFORM api._field_error('order', format('Cannot order by "%s".', v_order));
    END IF;
    -- tags / dashboards: a JSON list (as PostHog's frontend sends them) or a single value.
    v_tags := api._list_param(v_query, 'tags');
    v_dashboards := api._list_param(v_query, 'dashboards');
    IF v_dashboards IS NOT NULL AND EXISTS (SELECT 1 FROM unnest(v_dashboards) d WHERE d !~ '^\d{1,18}$') THEN
        PERFORM api._field_error('dashboards', 'A valid integer is required.');
    END IF;

    WITH matching AS (
        SELECT i.* FROM insights.saved_insights i
         WHERE NOT i.deleted
           AND (v_query->>'short_id' IS NULL OR i.short_id = v_query->>'short_id')
           AND (v_created_by IS NULL OR i.created_by = v_created_by)
           AND (lower(v_query->>'user') IS DISTINCT FROM 'true' OR i.created_by = insights.request_user_id())
           -- saved=true also lists insights that sit on a dashboard, as PostHog does.
           AND (lower(v_query->>'saved') IS NULL OR lower(v_query->>'saved') NOT IN ('true', 'false')
                OR (lower(v_query->>'saved') = 'true' AND (i.saved OR EXISTS (
                        SELECT 1 FROM insights.dashboard_tiles t JOIN insights.dashboards d ON d.id = t.dashboard_id
                         WHERE t.insight_id = i.id AND NOT t.deleted AND NOT d.deleted)))
                OR (lower(v_query->>'saved') = 'false' AND NOT i.saved))
           AND (v_tags IS NULL OR i.tags && v_tags)
           AND (v_mod_from IS NULL OR i.last_modified_at > v_mod_from)
           AND (v_mod_to IS NULL OR i.last_modified_at < v_mod_to)
           AND (v_created_from IS NULL OR i.created_at > v_created_from)
           AND (v_created_to IS NULL OR i.created_at < v_created_to)
           AND (v_viewed_from IS NULL AND v_viewed_to IS NULL OR EXISTS (
                    SELECT 1 FROM insights.insight_views v
                     WHERE v.insight_id = i.id AND v.user_id = insights.request_user_id()
                       AND (v_viewed_from IS NULL OR v.last_viewed_at > v_viewed_from)
                       AND (v_viewed_to IS NULL OR v.last_viewed_at < v_viewed_to)))
           AND (v_dashboards IS NULL OR NOT EXISTS (
                    SELECT 1 FROM unnest(v_dashboards) AS want(id)
                     WHERE NOT EXISTS (SELECT 1 FROM insights.dashboard_tiles t
                                        WHERE t.insight_id = i.id AND t.dashboard_id = want.id::bigint AND NOT t.deleted)))
           AND (lower(v_query->>'favorited') IS DISTINCT FROM 'true' OR i.favorited)
           AND (v_kind IS NULL OR v_kind = upper(coalesce(
                    CASE WHEN i.query->>'kind' = 'InsightVizNode'
                         THEN replace(upper(i.query->'source'->>'kind'), 'QUERY', '')
                         WHEN i.query->>'kind' = 'HogQLQuery' THEN 'SQL'
                         WHEN i.query IS NOT NULL THEN 'JSON' END,
                    nullif(i.filters->>'insight', ''), 'TRENDS')))
           -- search: case-insensitive substring (icontains), no LIKE wildcards from the user.
           AND (coalesce(v_query->>'search', '') = ''
                OR strpos(lower(i.name), lower(v_query->>'search')) > 0
                OR strpos(lower(i.derived_name), lower(v_query->>'search')) > 0
                OR strpos(lower(i.description), lower(v_query->>'search')) > 0
                OR EXISTS (SELECT 1 FROM unnest(i.tags) tag WHERE strpos(lower(tag), lower(v_query->>'search')) > 0))
    )
    SELECT (SELECT count(*) FROM matching),
           (SELECT array_agg(m.id ORDER BY m.ord)
              FROM (SELECT id, row_number() OVER (ORDER BY
                               -- `order`: one of these fields, '-' for descending; else the default.
                               CASE WHEN v_order = 'name' THEN name END,
                               CASE WHEN v_order = '-name' THEN name END DESC,
                               CASE WHEN v_order = 'created_at' THEN created_at END,
                               CASE WHEN v_order = '-created_at' THEN created_at END DESC,
                               CASE WHEN v_order = 'last_modified_at' THEN last_modified_at END,
                               CASE WHEN v_order = '-last_modified_at' THEN last_modified_at END DESC,
                               CASE WHEN v_order = 'updated_at' THEN updated_at END,
                               CASE WHEN v_order = '-updated_at' THEN updated_at END DESC,
                               CASE WHEN v_order = 'id' THEN id END,
                               CASE WHEN v_order = '-id' THEN id END DESC,
                               CASE WHEN v_order = '-order' THEN "order" END DESC NULLS LAST,
                               "order" NULLS LAST, last_modified_at DESC, id DESC) AS ord
                      FROM matching ORDER BY ord LIMIT v_limit OFFSET v_offset) m)
      INTO v_count, v_ids;

    FOR v_row IN SELECT i.* FROM unnest(coalesce(v_ids, '{}')) WITH ORDINALITY AS u(id, n)
                   JOIN insights.saved_insights i ON i.id = u.id ORDER BY u.n LOOP
        v_results := v_results || jsonb_build_array(
            CASE WHEN v_basic THEN api._insight_basic_json(v_row) ELSE api._insight_json(v_row, v_mode) END);
    END LOOP;
    RETURN api._limit_offset_page(v_count, v_limit, v_offset, v_results);
END $$;

-- The insight an enabled sharing configuration opens (of project p_project when given), with
-- that project set for row-level security; NULL for an unknown, disabled or foreign token or a
-- deleted insight. SECURITY DEFINER: the token is the credential, so the lookup precedes RLS.
-- Used by `?sharing_access_token=` (below) and the keyless /shared/<token>.json (80_web.sql).
CREATE FUNCTION api._shared_insight_id(p_token text, p_project bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    v_share insights.sharing_configurations;
BEGIN
    SELECT s.* INTO v_share FROM insights.sharing_configurations s
      JOIN insights.saved_insights i ON i.id = s.insight_id
     WHERE s.access_token = p_token AND s.enabled AND NOT i.deleted
       AND (p_project IS NULL OR s.project_id = p_project);
    IF v_share.id IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('pgi.project_id', v_share.project_id::text, true);
    RETURN v_share.insight_id;
END $$;

-- `?sharing_access_token=`: the shared insight of the path's project (NULL for a foreign token).
CREATE FUNCTION api._sharing_authenticate(p_token text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_project text := api._header('x-pgi-project');
BEGIN
    IF v_project !~ '^\d{1,18}$' THEN
        RETURN NULL;
    END IF;
    RETURN api._shared_insight_id(p_token, v_project::bigint);
END $$;

-- GET insights/:id/ (insight:read), PATCH/PUT (insight:write; `deleted` soft-deletes and
-- restores), DELETE → 405 after the insight:write check, as PostHog's ForbidDestroyModel.
-- The dispatcher renders the JSON body as JSON or, with ?format=csv, CSV.
CREATE FUNCTION api.h_insight(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_method text := api._method();
    v_query jsonb;
    v_row insights.saved_insights;
    v_new insights.saved_insights;
    v_before jsonb;
    v_changes jsonb;
    v_ids bigint[];
    v_material boolean;
    v_shared bigint;
BEGIN
    v_query := api._query();
    v_shared := nullif(current_setting('pgi.sharing_insight_id', true), '')::bigint;
    IF v_shared IS NOT NULL THEN
        -- A shared insight (the dispatcher checked the token): it opens this one insight,
        -- read-only, and viewers cannot force a calculation (PostHog remaps the refresh modes).
        v_row := api._insight_by_path(false);
        IF v_row.id IS DISTINCT FROM v_shared THEN
            RETURN api._not_found();
        END IF;
        RETURN api._insight_json(v_row, CASE api._refresh_mode(v_query)
                                            WHEN 'force_cache' THEN 'lazy_async'
                                            WHEN 'force_blocking' THEN 'blocking'
                                            WHEN 'force_async' THEN 'async'
                                            ELSE api._refresh_mode(v_query) END);
    END IF;
    -- DELETE is listed in the route so that the insight:write check comes first (PostHog's
    -- ForbidDestroyModel answers 405 only then).
    IF v_method = 'DELETE' THEN
        RETURN api._method_not_allowed();
    END IF;

    IF v_method IN ('GET', 'HEAD') THEN
        -- from_dashboard: dashboards carry no filter overrides here, so it only has to be an id.
        PERFORM api._int_param(v_query, 'from_dashboard', NULL, 0, 2147483647);
        v_row := api._insight_by_path(false);
        IF v_row.id IS NULL THEN
            RETURN api._not_found();
        END IF;
        RETURN api._insight_json(v_row, api._refresh_mode(v_query));
    END IF;

    -- PATCH/PUT. Restoring ({"deleted": false}) is the one update that finds deleted insights.
    v_row := api._insight_by_path(coalesce(p_body->'deleted' IN ('false'::jsonb, '"false"'::jsonb), false));
    IF v_row.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    SELECT * INTO v_row FROM insights.saved_insights WHERE id = v_row.id FOR UPDATE;
    v_before := api._insight_audit_json(v_row);
    v_new := api._insight_apply_body(v_row, p_body);
    v_ids := CASE WHEN p_body ? 'dashboards' THEN api._id_list_field(p_body, 'dashboards') END;
    -- PostHog bumps last_modified_* only for material changes; any update through the API saves.
    v_material := p_body ?| ARRAY['name', 'derived_name', 'description', 'filters', 'query'];
    UPDATE insights.saved_insights
       SET name = v_new.name, derived_name = v_new.derived_name, description = v_new.description,
           filters = v_new.filters, query = v_new.query, "order" = v_new."order",
           deleted = v_new.deleted, saved = CASE WHEN p_body ? 'saved' THEN v_new.saved ELSE true END,
           favorited = v_new.favorited, tags = v_new.tags, updated_at = now(),
           last_modified_at = CASE WHEN v_material THEN now() ELSE last_modified_at END,
           last_modified_by = CASE WHEN v_material THEN insights.request_user_id() ELSE last_modified_by END
     WHERE id = v_row.id
    RETURNING * INTO v_new;
    IF v_new.deleted AND NOT v_row.deleted THEN
        -- Soft delete also soft-deletes the insight's dashboard tiles.
        UPDATE insights.dashboard_tiles SET deleted = true WHERE insight_id = v_new.id AND NOT deleted;
    ELSIF v_ids IS NOT NULL THEN
        PERFORM api._insight_set_dashboards(v_new.id, v_ids);
    END IF;

    v_changes := api._insight_changes(v_before, api._insight_audit_json(v_new));
    IF v_new.deleted AND NOT v_row.deleted THEN
        PERFORM api._insight_log(v_new, 'deleted', v_changes);
    ELSIF v_row.deleted AND NOT v_new.deleted THEN
        PERFORM api._insight_log(v_new, 'restored', v_changes);
    ELSIF jsonb_array_length(v_changes) > 0 THEN
        -- PostHog skips "updated" entries without changes.
        PERFORM api._insight_log(v_new, 'updated', v_changes);
    END IF;
    RETURN api._insight_json(v_new, api._refresh_mode(v_query));
END $$;

-- A page of the activity log of one scope ('Insight', 'Person'; one item or all):
-- {"results","next","previous","total_count"}, newest first, page-based (limit ≥ 1, default 10;
-- page ≥ 1, default 1).
CREATE FUNCTION api._activity_page(p_scope text, p_item_id text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_limit integer := api._int_param(v_query, 'limit', 10, 1, 1000);
    v_page integer := api._int_param(v_query, 'page', 1, 1, 2147483647);
    v_total bigint;
    v_results jsonb;
BEGIN
    SELECT count(*) INTO v_total FROM insights.activity_log a
     WHERE a.scope = p_scope AND (p_item_id IS NULL OR a.item_id = p_item_id);
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', a.id, 'user', api._user_json(a.user_id), 'unread', false,
               'is_system', a.is_system, 'was_impersonated', false, 'activity', a.activity,
               'scope', a.scope, 'item_id', a.item_id, 'detail', a.detail,
               'created_at', api._iso(a.created_at)) ORDER BY a.created_at DESC, a.id), '[]')
      INTO v_results
      FROM (SELECT * FROM insights.activity_log a
             WHERE a.scope = p_scope AND (p_item_id IS NULL OR a.item_id = p_item_id)
             ORDER BY a.created_at DESC, a.id
             LIMIT v_limit OFFSET (v_page - 1)::bigint * v_limit) a;
    RETURN json_build_object(
        'results', v_results,
        'next', CASE WHEN v_page::bigint * v_limit < v_total
                     THEN api._page_url(jsonb_build_object('limit', v_limit, 'page', v_page + 1)) END,
        'previous', CASE WHEN v_page > 1
                         THEN api._page_url(jsonb_build_object('limit', v_limit, 'page', v_page - 1)) END,
        'total_count', v_total);
END $$;

-- GET insights/activity/ and insights/:id/activity/ (activity_log:read).
CREATE FUNCTION api.h_insight_activity(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_row insights.saved_insights;
BEGIN
    IF api._header('x-pgi-id') IS NULL OR api._header('x-pgi-id') = '' THEN
        RETURN api._activity_page('Insight', NULL);
    END IF;
    v_row := api._insight_by_path(false);
    IF v_row.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    RETURN api._activity_page('Insight', v_row.id::text);
END $$;

-- Records that the request's user viewed these insights now (ids outside the project are not
-- visible through RLS and are ignored).
CREATE FUNCTION api._insights_mark_viewed(p_ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO insights.insight_views (project_id, user_id, insight_id, last_viewed_at)
    SELECT i.project_id, insights.request_user_id(), i.id, now()
      FROM insights.saved_insights i WHERE i.id = ANY (p_ids)
    ON CONFLICT (user_id, insight_id) DO UPDATE SET last_viewed_at = excluded.last_viewed_at
$$;

-- POST insights/viewed/ {"insight_ids": [...]} and POST insights/:id/viewed/ (insight:read) → 201.
CREATE FUNCTION api.h_insight_viewed(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_row insights.saved_insights;
    v_ids bigint[];
BEGIN
    IF coalesce(api._header('x-pgi-id'), '') <> '' THEN
        v_row := api._insight_by_path(false);
        IF v_row.id IS NULL THEN
            RETURN api._not_found();
        END IF;
        v_ids := ARRAY[v_row.id];
    ELSE
        IF NOT p_body ? 'insight_ids' THEN
            PERFORM api._field_error('insight_ids', 'This field is required.', 'required');
        END IF;
        v_ids := api._id_list_field(p_body, 'insight_ids');
        IF cardinality(v_ids) > 2500 THEN
            PERFORM api._field_error('insight_ids', 'You can only mark up to 2500 insights as viewed at once.');
        END IF;
    END IF;
    PERFORM api._insights_mark_viewed(v_ids);
    PERFORM set_config('response.status', '201', true);
    RETURN NULL;
END $$;

-- GET insights/my_last_viewed/: the user's 5 most recently viewed live insights, basic serializer.
-- PostHog declares no API-key scope for this action (session only); here it needs insight:read.
CREATE FUNCTION api.h_insights_my_last_viewed(p_body jsonb) RETURNS json
LANGUAGE sql AS $$
    SELECT coalesce(json_agg(api._insight_basic_json(i) ORDER BY v.last_viewed_at DESC, i.id DESC), '[]')
      FROM (SELECT * FROM insights.insight_views
             WHERE user_id = insights.request_user_id()
               AND EXISTS (SELECT 1 FROM insights.saved_insights s WHERE s.id = insight_id AND NOT s.deleted)
             ORDER BY last_viewed_at DESC, insight_id DESC LIMIT 5) v
      JOIN insights.saved_insights i ON i.id = v.insight_id
$$;

-- GET/PATCH insights/:id/sharing/ (sharing_configuration:read / :write). The configuration is
-- created lazily, disabled, with a secrets.token_urlsafe(22)-like token (30 url-safe characters).
CREATE FUNCTION api.h_insight_sharing(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_method text := api._method();
    v_row insights.saved_insights;
    v_share insights.sharing_configurations;
BEGIN
    v_row := api._insight_by_path(false);
    IF v_row.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    SELECT * INTO v_share FROM insights.sharing_configurations WHERE insight_id = v_row.id
     ORDER BY id LIMIT 1 FOR UPDATE;
    IF v_share.id IS NULL THEN
        INSERT INTO insights.sharing_configurations (project_id, insight_id, enabled, access_token)
        VALUES (v_row.project_id, v_row.id, false,
                rtrim(translate(encode(substring(sha256(uuid_send(gen_random_uuid()) ||
                                                        uuid_send(gen_random_uuid())) FROM 1 FOR 22),
                                       'base64'), '+/', '-_'), '='))
        RETURNING * INTO v_share;
    END IF;
    IF v_method IN ('PATCH', 'PUT') THEN
        IF p_body ? 'enabled' THEN
            v_share.enabled := api._bool_field(p_body, 'enabled');
        END IF;
        IF p_body ? 'settings' THEN
            IF jsonb_typeof(p_body->'settings') NOT IN ('object', 'null') THEN
                PERFORM api._field_error('settings', 'Value must be valid JSON.');
            END IF;
            v_share.settings := coalesce(nullif(p_body->'settings', 'null'::jsonb), '{}');
        END IF;
        UPDATE insights.sharing_configurations SET enabled = v_share.enabled, settings = v_share.settings
         WHERE id = v_share.id RETURNING * INTO v_share;
    END IF;
    RETURN json_build_object('created_at', api._iso(v_share.created_at), 'enabled', v_share.enabled,
                             'access_token', v_share.access_token, 'settings', v_share.settings);
END $$;

-- POST insights/cancel/ {"client_query_id"} (insight:read) → 201. The id is a query_status id
-- (an async run of insights.query_tasks); a queued or running run of this project is cancelled
-- through insights.cancel_query_task. Any other id is accepted and ignored, as PostHog does.
CREATE FUNCTION api.h_insights_cancel(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_id text;
BEGIN
    v_id := p_body->>'client_query_id';
    IF coalesce(v_id, '') = '' THEN
        PERFORM api._field_error('client_query_id', 'This field is required.', 'required');
    END IF;
    IF v_id ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
        PERFORM insights.cancel_query_task(insights.request_project_id(), v_id::uuid);
    END IF;
    PERFORM set_config('response.status', '201', true);
    RETURN NULL;
END $$;

-- POST insights/timing/ (insight:read): PostHog only forwards client timings to its metrics;
-- there is nothing to record here, so it answers {} with 200.
CREATE FUNCTION api.h_insights_timing(p_body jsonb) RETURNS json
LANGUAGE sql AS $$ SELECT '{}'::json $$;
