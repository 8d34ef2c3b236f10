-- The `api` schema PostgREST exposes: PostHog request in, PostHog response out.
--
-- nginx (nginx/routes.conf, the routing table) maps each PostHog path to one function here and
-- passes the request through headers PostgREST does not interpret:
--   x-pgi-method         the client's HTTP method (nginx always POSTs to PostgREST)
--   x-pgi-query          the raw query string (PostHog's limit/offset/refresh must not reach
--                        PostgREST as its own parameters)
--   x-pgi-project        the :project_id / :environment_id path segment
--   x-pgi-id             an object id path segment, where the route has one
--   x-pgi-authorization  the client's Authorization header (PostgREST would treat a Bearer token
--                        as a JWT and fail without a secret)
--   x-pgi-base           scheme://host of the request, for absolute `next` URLs
--   x-pgi-path           the request path
-- The body arrives as raw bytes (application/octet-stream), decoded by the extension.
--
-- Errors follow PostHog (drf-exceptions-hog): {"type","code","detail","attr"} with a 4xx status.
-- Every function here is safe to re-create: this file is applied on every start.

DROP SCHEMA IF EXISTS api CASCADE;
CREATE SCHEMA api;
GRANT USAGE ON SCHEMA api TO pgi_api;

---------------------------------------------------------------------------------------------------
-- Request helpers

CREATE FUNCTION api._header(p_name text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('request.headers', true), '')::json ->> lower(p_name)
$$;

-- The query string as a JSON object of decoded values.
CREATE FUNCTION api._query() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT insights.parse_query_string(coalesce(api._header('x-pgi-query'), ''))
$$;

-- PostHog's timestamps: ISO 8601 in UTC with microseconds and a Z.
CREATE FUNCTION api._iso(p_ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION api._method() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT upper(coalesce(api._header('x-pgi-method'), 'GET'))
$$;

-- A PostHog error body, with the HTTP status set for PostgREST.
CREATE FUNCTION api._error(p_status integer, p_type text, p_code text, p_detail text,
                           p_attr text DEFAULT NULL) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('response.status', p_status::text, true);
    RETURN json_build_object('type', p_type, 'code', p_code, 'detail', p_detail, 'attr', p_attr);
END $$;

CREATE FUNCTION api._not_found() RETURNS json
LANGUAGE sql AS $$
    SELECT api._error(404, 'invalid_request', 'not_found', 'Not found.')
$$;

CREATE FUNCTION api._method_not_allowed() RETURNS json
LANGUAGE sql AS $$
    SELECT api._error(405, 'invalid_request', 'method_not_allowed',
                      format('Method "%s" not allowed.', api._method()))
$$;

-- Map a caught SQL error to PostHog's body. Client mistakes (class 22, 23) become 400 with the
-- field from the extension's `field: <attr>` DETAIL line; a 22023 raised by api._field_error also
-- carries DRF's error code in a `code: <code>` HINT line (max_length, null, not_a_list…), which
-- becomes the body's `code`. Anything else is a server error (500), logged with its SQLSTATE.
CREATE FUNCTION api._error_from_sql(p_state text, p_message text, p_detail text, p_hint text DEFAULT NULL)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    v_attr text := substring(coalesce(p_detail, '') FROM '^field: (\S+)');
    v_code text := substring(coalesce(p_hint, '') FROM '^code: (\S+)');
BEGIN
    IF p_state = '22023' AND v_code IS NOT NULL THEN
        RETURN api._error(400, 'validation_error',
                          CASE v_code WHEN 'invalid' THEN 'invalid_input' ELSE v_code END, p_message, v_attr);
    ELSIF p_state = '22P02' AND p_message LIKE 'JSON parse error%' THEN
        RETURN api._error(400, 'invalid_request', 'parse_error', p_message);
    ELSIF left(p_state, 2) IN ('22', '23') THEN
        RETURN api._error(400, 'validation_error', 'invalid_input', p_message, v_attr);
    ELSIF p_state = '28000' THEN
        RETURN api._error(401, 'authentication_error', 'authentication_failed', p_message);
    ELSIF p_state = '42501' THEN
        RETURN api._error(403, 'authentication_error', 'permission_denied', p_message);
    ELSIF p_state = '57014' THEN
        RETURN api._error(400, 'validation_error', 'query_cancelled', 'The query was cancelled.');
    END IF;
    RAISE WARNING 'pg_insights api error %: %', p_state, p_message;
    RETURN api._error(500, 'server_error', 'error', 'A server error occurred.');
END $$;

---------------------------------------------------------------------------------------------------
-- Authentication: personal API keys, scopes, projects.

-- Checks the request's personal API key for `p_scope` on the path's project. On success it sets
-- the transaction-local settings pgi.project_id / pgi.user_id, which row-level security reads,
-- and returns NULL; otherwise it returns PostHog's 401/403/404 body (and sets the status).
-- SECURITY DEFINER: it is the only code that reads insights.personal_api_keys.
CREATE FUNCTION api._authenticate(p_scope text, p_body jsonb DEFAULT '{}') RETURNS json
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    v_auth text := api._header('x-pgi-authorization');
    v_query jsonb := api._query();
    v_source text;
    v_key text;
    v_row insights.personal_api_keys;
    v_project_text text := api._header('x-pgi-project');
    v_project bigint;
    v_object text := split_part(p_scope, ':', 1);
BEGIN
    -- PostHog's order: Authorization header, then the JSON body, then the query string.
    IF v_auth ~* '^Bearer\s+\S' THEN
        v_key := regexp_replace(v_auth, '^Bearer\s+', '', 'i');
        v_source := 'Authorization header';
    ELSIF coalesce(p_body->>'personal_api_key', '') <> '' THEN
        v_key := p_body->>'personal_api_key';
        v_source := 'body';
    ELSIF coalesce(v_query->>'personal_api_key', '') <> '' THEN
        v_key := v_query->>'personal_api_key';
        v_source := 'query string';
    ELSE
        RETURN api._error(401, 'authentication_error', 'not_authenticated',
                          'Authentication credentials were not provided.');
    END IF;

    SELECT * INTO v_row FROM insights.personal_api_keys
     WHERE secure_value = insights.hash_api_key(v_key) AND revoked_at IS NULL;
    IF NOT FOUND THEN
        RETURN api._error(401, 'authentication_error', 'authentication_failed',
                          format('Personal API key found in request %s is invalid.', v_source));
    END IF;

    -- Scopes: NULL/empty = legacy full access, '*' = everything, write implies read.
    IF coalesce(cardinality(v_row.scopes), 0) > 0 AND NOT ('*' = ANY (v_row.scopes))
       AND NOT (p_scope = ANY (v_row.scopes))
       AND NOT (p_scope LIKE '%:read' AND v_object || ':write' = ANY (v_row.scopes)) THEN
        RETURN api._error(403, 'authentication_error', 'permission_denied',
                          format('API key missing required scope ''%s''', p_scope));
    END IF;

    IF v_project_text IS NOT NULL THEN
        IF v_project_text !~ '^\d{1,18}$' THEN
            RETURN api._not_found();
        END IF;
        v_project := v_project_text::bigint;
        IF v_row.scoped_teams IS NOT NULL AND NOT (v_project = ANY (v_row.scoped_teams)) THEN
            RETURN api._error(403, 'authentication_error', 'permission_denied',
                              format('API key does not have access to the requested project ''%s''', v_project));
        END IF;
        IF NOT EXISTS (SELECT 1 FROM insights.projects WHERE id = v_project) THEN
            RETURN api._not_found();
        END IF;
        IF NOT EXISTS (SELECT 1 FROM insights.project_members
                        WHERE project_id = v_project AND user_id = v_row.user_id) THEN
            RETURN api._error(403, 'authentication_error', 'permission_denied',
                              'You don''t have access to the project.');
        END IF;
        PERFORM set_config('pgi.project_id', v_project::text, true);
    END IF;
    PERFORM set_config('pgi.user_id', v_row.user_id::text, true);

    -- PostHog updates last_used_at at most about once an hour.
    IF v_row.last_used_at IS NULL OR v_row.last_used_at < now() - interval '1 hour' THEN
        UPDATE insights.personal_api_keys SET last_used_at = now() WHERE id = v_row.id;
    END IF;
    RETURN NULL;
END $$;

-- The project of the authenticated request, with its settings (RLS shows only that one).
CREATE FUNCTION api._project() RETURNS insights.projects
LANGUAGE sql STABLE AS $$
    SELECT * FROM insights.projects WHERE id = insights.request_project_id()
$$;

-- An absolute URL to this path with new query parameters merged in (pagination links).
CREATE FUNCTION api._url_with(p_changes jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(api._header('x-pgi-base'), '') || coalesce(api._header('x-pgi-path'), '/') || '?' ||
           string_agg(format('%s=%s', key, replace(replace(replace(value, '%', '%25'), '&', '%26'), ' ', '%20')), '&' ORDER BY key)
      FROM jsonb_each_text(api._query() || p_changes)
$$;

-- PostHog's integer query parameters (limit, offset, …): a bad value is a 400 naming the field.
CREATE FUNCTION api._int_param(p_query jsonb, p_name text, p_default integer, p_min integer, p_max integer)
RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v text := p_query->>p_name;
BEGIN
    IF v IS NULL OR v = '' THEN
        RETURN p_default;
    END IF;
    IF v !~ '^\s*-?\d{1,9}\s*$' OR v::integer < p_min THEN
        RAISE EXCEPTION 'A valid integer is required.' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'field: ' || p_name;
    END IF;
    RETURN least(v::integer, p_max);
END $$;

-- The filter of a compute request: the JSON body for POST, otherwise the query string, without
-- the transport parameters that are not part of the filter.
CREATE FUNCTION api._filter_from_request(p_body jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN api._method() = 'POST' AND p_body <> '{}'::jsonb THEN p_body ELSE api._query() END
           - 'personal_api_key' - 'format' - 'refresh' - 'client_query_id' - 'limit' - 'offset'
$$;

-- The legacy compute endpoints (/insights/funnel/, /insights/trend/, /insights/retention/,
-- /insights/funnel/correlation/): method
-- check, personal API key with insight:read, the filter from the request, the engine's PostHog
-- body; SQL errors become PostHog's error bodies.
CREATE FUNCTION api._insight_compute(p_body bytea, p_kind text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_body jsonb;
    v_denied json;
    v_filter jsonb;
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
        v_filter := api._filter_from_request(v_body);
        v_result := CASE p_kind
            WHEN 'funnel' THEN insights.funnel_json(insights.request_project_id(), v_filter)
            WHEN 'trend' THEN insights.trend_json(insights.request_project_id(), v_filter)
            WHEN 'retention' THEN insights.retention_json(insights.request_project_id(), v_filter)
            WHEN 'path' THEN insights.paths_json(insights.request_project_id(), v_filter)
            WHEN 'funnel_correlation' THEN insights.funnel_correlation_json(insights.request_project_id(), v_filter)
        END;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL;
        RETURN api._error_from_sql(v_state, v_message, v_detail);
    END;
    RETURN v_result::json;
END $$;

---------------------------------------------------------------------------------------------------
-- Capture: /batch/, /capture/, /e/, /i/v0/e/ (PostHog's ingestion paths)

-- Accepts what PostHog SDKs send: {"api_key", "batch": [...], "sent_at"}, a single event
-- {"event", "properties": {"token"}, "distinct_id"}, a bare list of events, gzip or form bodies.
-- Answers {"status": 1}; a wrong token is 401, a malformed payload 400, and then nothing is stored.
CREATE FUNCTION api.capture(bytea) RETURNS json
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    v_query jsonb := api._query();
    v_body jsonb;
    v_events jsonb;
    v_token text;
    v_sent_at timestamptz;
BEGIN
    BEGIN
        IF length($1) = 0 AND v_query ? 'data' THEN
            v_body := insights.decode_capture_body(convert_to(v_query->>'data', 'UTF8'));
        ELSE
            v_body := insights.decode_capture_body($1);
        END IF;
        v_events := CASE
            WHEN jsonb_typeof(v_body) = 'array' THEN v_body
            WHEN jsonb_typeof(v_body->'batch') = 'array' THEN v_body->'batch'
            WHEN jsonb_typeof(v_body->'data') = 'array' THEN v_body->'data'
            WHEN jsonb_typeof(v_body) = 'object' AND v_body ? 'event' THEN jsonb_build_array(v_body)
        END;
        IF v_events IS NULL THEN
            RETURN api._error(400, 'validation_error', 'invalid_payload',
                              'Malformed request data: expected "batch", an event or a list of events');
        END IF;
        v_token := coalesce(nullif(v_body->>'api_key', ''), nullif(v_body->>'token', ''),
                            nullif(v_query->>'api_key', ''), nullif(v_query->>'token', ''),
                            nullif(v_events->0->>'api_key', ''), nullif(v_events->0->>'token', ''),
                            nullif(v_events->0->'properties'->>'token', ''));
        IF v_token IS NULL THEN
            RETURN api._error(401, 'authentication_error', 'invalid_api_key',
                              'API key not provided. You can find your project API key in your project settings.');
        END IF;
        IF v_body->>'sent_at' ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}' THEN
            v_sent_at := (v_body->>'sent_at')::timestamptz;
        END IF;
        PERFORM insights.capture(v_token, v_events, v_sent_at);
    EXCEPTION
        WHEN invalid_authorization_specification THEN
            RETURN api._error(401, 'authentication_error', 'invalid_api_key', SQLERRM);
        WHEN data_exception THEN
            RETURN api._error(400, 'validation_error', 'invalid_payload', SQLERRM);
    END;
    RETURN json_build_object('status', 1);
END $$;
GRANT EXECUTE ON FUNCTION api.capture(bytea) TO pgi_api;

---------------------------------------------------------------------------------------------------
-- Fallback routes

-- Any path nginx does not know: PostHog's 404 body.
CREATE FUNCTION api.not_found(bytea) RETURNS json
LANGUAGE sql AS $$ SELECT api._not_found() $$;
GRANT EXECUTE ON FUNCTION api.not_found(bytea) TO pgi_api;
