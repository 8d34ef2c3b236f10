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
                      CASE WHEN api._header('x-pgi-route') = 'persons' AND api._method() = 'POST'
                           -- PostHog's PersonViewSet says why persons are not created here.
                           THEN 'Creating persons via this API is not allowed. Please create persons by sending an $identify event.'
                           ELSE format('Method "%s" not allowed.', api._method()) END)
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
    ELSIF p_state = '22P02' AND (p_message LIKE 'JSON parse error%' OR p_message LIKE 'Multipart form parse error%') THEN
        RETURN api._error(400, 'invalid_request', 'parse_error', p_message);
    ELSIF left(p_state, 2) IN ('22', '23') THEN
        RETURN api._error(400, 'validation_error', 'invalid_input', p_message, v_attr);
    ELSIF p_state = '28000' THEN
        RETURN api._error(401, 'authentication_error', 'authentication_failed', p_message);
    ELSIF p_state = '42501' THEN
        RETURN api._error(403, 'authentication_error', 'permission_denied', p_message);
    ELSIF p_state = '57014' AND p_message LIKE '%statement timeout%' THEN
        -- PostHog's ClickHouseQueryTimeOut.
        RETURN api._error(504, 'server_error', 'error',
                          'Query has hit the max execution time before completing. See our docs for how to improve your query performance. You may need to materialize.');
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
    RETURN api._throttle(v_row.id, v_object);
END $$;

---------------------------------------------------------------------------------------------------
-- Rate limits (docs/api.md#rate-limits): PostHog's per personal API key throttles. Routes that
-- run queries (insights, query, persons) get PostHog's ClickHouse rates, 240/minute and
-- 1200/hour; every other authenticated route 480/minute and 4800/hour. A DBA changes them with
-- the setting pgi.throttle_rates (e.g. ALTER DATABASE insights SET pgi.throttle_rates =
-- 'query_burst=100/minute,burst=off'); capture is never throttled, as in PostHog.
--
-- Each authenticated request appends a row to an unlogged log and counts the key's rows in the
-- windows: inserts never wait for each other, so concurrent requests of one key stay concurrent
-- (a counter row would serialise them until each request's transaction ends). A request that
-- fails with an error rolls its row back, so only answered requests count. The windows slide,
-- as DRF's SimpleRateThrottle does.
CREATE UNLOGGED TABLE api._throttle_log (
    key_id  bigint NOT NULL,
    class   text NOT NULL,
    at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ON api._throttle_log (key_id, class, at);

-- The setting pgi.throttle_rates: the value stored for the API role or the database (ALTER ROLE
-- pgi_api / ALTER DATABASE … SET), read from the catalogue at every request. Only the catalogue:
-- a pooled PostgREST connection copied the stored value when it connected, and that copy cannot
-- be told from a SET (custom settings are not in pg_settings), so reading the session's value
-- would miss a later ALTER … SET / RESET until PostgREST reconnects.
CREATE FUNCTION api._throttle_setting() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT substr(c, length('pgi.throttle_rates=') + 1)
                       FROM pg_db_role_setting s, unnest(s.setconfig) c
                      WHERE c LIKE 'pgi.throttle\_rates=%'
                        AND s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = 'pgi_api'))
                        AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
                      ORDER BY s.setrole DESC, s.setdatabase DESC LIMIT 1),
                    '')
$$;

-- (class, requests, seconds) of every rate in force: PostHog's, then the setting's overrides.
CREATE FUNCTION api._throttle_rates() RETURNS TABLE (class text, requests integer, seconds integer)
LANGUAGE sql STABLE AS $$
    WITH defaults(class, rate) AS (VALUES ('query_burst', '240/minute'), ('query_sustained', '1200/hour'),
                                          ('burst', '480/minute'), ('sustained', '4800/hour')),
         overrides AS (
             SELECT split_part(item, '=', 1) AS class, split_part(item, '=', 2) AS rate
               FROM unnest(string_to_array(replace(api._throttle_setting(), ' ', ''), ',')) item
              WHERE item LIKE '%=%'),
         rates AS (
             SELECT d.class, coalesce(o.rate, d.rate) AS rate FROM defaults d LEFT JOIN overrides o USING (class))
    SELECT class, split_part(rate, '/', 1)::integer,
           CASE split_part(rate, '/', 2) WHEN 'second' THEN 1 WHEN 'minute' THEN 60 WHEN 'hour' THEN 3600 WHEN 'day' THEN 86400 END
      FROM rates WHERE rate ~ '^\d+/(second|minute|hour|day)$'
$$;

-- NULL when the request may go on; PostHog's 429 body (and Retry-After) when a rate is used up.
CREATE FUNCTION api._throttle(p_key_id bigint, p_object text) RETURNS json
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    v_prefix text := CASE WHEN p_object IN ('insight', 'query', 'person') THEN 'query_' ELSE '' END;
    v_rate record;
    v_free_in integer;
    v_wait integer := 0;
BEGIN
    FOR v_rate IN SELECT * FROM api._throttle_rates() r WHERE r.class IN (v_prefix || 'burst', v_prefix || 'sustained') LOOP
        -- A full window frees a place when its oldest request leaves it.
        SELECT CASE WHEN count(*) >= v_rate.requests
                    THEN ceil(extract(epoch FROM min(at) + make_interval(secs => v_rate.seconds) - clock_timestamp()))::integer END
          INTO v_free_in
          FROM (SELECT at FROM api._throttle_log
                 WHERE key_id = p_key_id AND class = v_prefix
                   AND at > clock_timestamp() - make_interval(secs => v_rate.seconds)
                 ORDER BY at DESC LIMIT v_rate.requests) recent;
        v_wait := greatest(v_wait, coalesce(v_free_in, 0));
    END LOOP;
    IF coalesce(v_wait, 0) > 0 THEN
        PERFORM set_config('pgi.retry_after', v_wait::text, true);
        RETURN api._error(429, 'throttled_error', 'throttled',
                          format('Request was throttled. Expected available in %s second%s.', v_wait,
                                 CASE WHEN v_wait = 1 THEN '' ELSE 's' END));
    END IF;
    INSERT INTO api._throttle_log (key_id, class) VALUES (p_key_id, v_prefix);
    -- Now and then, forget what no window can still count.
    IF random() < 0.01 THEN
        DELETE FROM api._throttle_log WHERE at < clock_timestamp() - interval '1 day';
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


---------------------------------------------------------------------------------------------------
-- Multipart bodies (file uploads: the `csv` of a static cohort, sql/api/82_cohorts.sql)

-- A multipart/form-data body as a JSON object of its fields (strings; a file part gives its
-- content), or NULL when the body is not multipart (insights.decode_api_body takes it). nginx
-- does not forward the Content-Type, so the body is recognised by its shape: its first line is
-- the boundary delimiter (`--…`), followed by a form-data part header. Text must be UTF-8
-- (otherwise 22021, a 400); a malformed part is PostHog's parse_error.
CREATE FUNCTION api._multipart_body(p_body bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_text text;
    v_delim text;
    v_part text;
    v_name text;
    v_sep integer;
    v_out jsonb := '{}';
BEGIN
    IF p_body IS NULL OR length(p_body) < 4 OR substring(p_body FROM 1 FOR 2) <> '\x2d2d'::bytea THEN
        RETURN NULL;
    END IF;
    v_text := convert_from(p_body, 'UTF8');
    v_delim := substring(v_text FROM '^(--[^\r\n]{1,200})\r\n');
    IF v_delim IS NULL OR v_text !~* '^--[^\r\n]*\r\ncontent-disposition:\s*form-data' THEN
        RETURN NULL;
    END IF;
    -- Every part follows CRLF + delimiter; the last delimiter ends with `--`.
    FOREACH v_part IN ARRAY string_to_array(E'\r\n' || v_text, E'\r\n' || v_delim) LOOP
        CONTINUE WHEN v_part = '' OR left(v_part, 2) = '--';
        v_sep := strpos(v_part, E'\r\n\r\n');
        v_name := substring(left(v_part, greatest(v_sep, 1)) FROM '(?i)content-disposition:[^\r\n]*;\s*name="([^"]*)"');
        IF left(v_part, 2) <> E'\r\n' OR v_sep = 0 OR v_name IS NULL THEN
            RAISE EXCEPTION 'Multipart form parse error - a part without a form-data name'
                USING ERRCODE = 'invalid_text_representation';
        END IF;
        v_out := v_out || jsonb_build_object(v_name, substring(v_part FROM v_sep + 4));
    END LOOP;
    RETURN v_out;
END $$;


---------------------------------------------------------------------------------------------------
-- Renderers: ?format=json (default) | csv, as DRF's content negotiation.

-- PostgREST's "any media type" handler: a function returning this domain sends its bytes as
-- they are, with the Content-Type it sets in response.headers (JSON or CSV here).
CREATE DOMAIN api."*/*" AS bytea;

-- The requested format: 'json' when absent or empty, 'csv', or NULL for anything else (DRF answers
-- an unknown format with 404 "Not found." before the view runs: no authentication, no side effect).
CREATE FUNCTION api._format() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE lower(coalesce(nullif(api._query()->>'format', ''), 'json'))
        WHEN 'json' THEN 'json' WHEN 'csv' THEN 'csv' END
$$;

-- One CSV field (RFC 4180, Python's csv.QUOTE_MINIMAL): quoted when it holds a comma, a double
-- quote, CR or LF; double quotes doubled. Values as DRF's CSV renderer writes them: null → empty,
-- booleans True/False (Python's str), numbers and strings as they are.
CREATE FUNCTION api._csv_field(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v ~ '[",\r\n]' THEN '"' || replace(v, '"', '""') || '"' ELSE v END
      FROM (SELECT CASE jsonb_typeof(p)
                       WHEN 'null' THEN ''
                       WHEN 'boolean' THEN CASE WHEN p = 'true'::jsonb THEN 'True' ELSE 'False' END
                       WHEN 'string' THEN p #>> '{}'
                       ELSE coalesce(p #>> '{}', '') END AS v) f
$$;

-- A JSON value flattened into (dotted key, scalar) pairs, as djangorestframework-csv's flatten_item:
-- object members as `prefix.key`, list items as `prefix.<index>` (0-based), scalars at their path.
-- Empty objects and lists yield no column. A recursive CTE over jsonb_each / jsonb_array_elements.
CREATE FUNCTION api._json_flatten(p jsonb) RETURNS TABLE (key text, value jsonb)
LANGUAGE sql IMMUTABLE AS $$
    WITH RECURSIVE walk(key, value) AS (
        SELECT NULL::text, p
        UNION ALL
        SELECT coalesce(w.key || '.', '') || c.k, c.v
          FROM walk w,
               LATERAL (SELECT e.key AS k, e.value AS v FROM jsonb_each(w.value) e
                         WHERE jsonb_typeof(w.value) = 'object'
                        UNION ALL
                        SELECT (a.n - 1)::text, a.v FROM jsonb_array_elements(w.value) WITH ORDINALITY a(v, n)
                         WHERE jsonb_typeof(w.value) = 'array') c
    )
    SELECT coalesce(key, ''), value FROM walk WHERE jsonb_typeof(value) NOT IN ('object', 'array')
$$;

-- A JSON body as DRF's (paginated) CSV renderer writes it: the rows are the items of `results`
-- when the body is an object with a `results` list (a list page), the items of a bare list, or the
-- body itself (one row: a retrieve). Each row is flattened (api._json_flatten); the header is the
-- sorted union of the keys (code point order, as Python's sorted: "tags.10" before "tags.2");
-- a row without a key has an empty field. Lines end with CRLF. No rows → an empty body.
CREATE FUNCTION api._json_to_csv(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    WITH rows AS (
        SELECT r.n, r.item
          FROM jsonb_array_elements(CASE
                   WHEN jsonb_typeof(p) = 'array' THEN p
                   WHEN jsonb_typeof(p->'results') = 'array' THEN p->'results'
                   WHEN jsonb_typeof(p) = 'object' THEN jsonb_build_array(p)
                   ELSE '[]'::jsonb END) WITH ORDINALITY r(item, n)
    ), cells AS (
        SELECT r.n, f.key, f.value FROM rows r, LATERAL api._json_flatten(r.item) f
    ), header AS (
        SELECT array_agg(key ORDER BY key COLLATE "C") AS keys FROM (SELECT DISTINCT key FROM cells) k
    )
    SELECT CASE WHEN h.keys IS NULL THEN '' ELSE
           (SELECT string_agg(api._csv_field(to_jsonb(k)), ',' ORDER BY i) FROM unnest(h.keys) WITH ORDINALITY u(k, i))
           || E'\r\n' ||
           coalesce((SELECT string_agg(line, '' ORDER BY n)
                       FROM (SELECT r.n, (SELECT CASE
                                                   -- Python's csv quotes a lone empty field, so the line is not blank.
                                                   WHEN cardinality(h.keys) = 1 AND coalesce(max(api._csv_field(c.value)), '') = ''
                                                   THEN '""'
                                                   ELSE string_agg(coalesce(api._csv_field(c.value), ''), ',' ORDER BY u.i) END
                                            FROM unnest(h.keys) WITH ORDINALITY u(k, i)
                                            LEFT JOIN cells c ON c.n = r.n AND c.key = u.k) || E'\r\n' AS line
                               FROM rows r) l), '')
           END
      FROM header h
$$;

-- The response headers: the Content-Type, and Retry-After when the request was throttled.
CREATE FUNCTION api._set_headers(p_content_type text) RETURNS void
LANGUAGE sql AS $$
    SELECT set_config('response.headers',
        (jsonb_build_array(jsonb_build_object('Content-Type', p_content_type))
         || CASE WHEN coalesce(current_setting('pgi.retry_after', true), '') = '' THEN '[]'::jsonb
                 ELSE jsonb_build_array(jsonb_build_object('Retry-After', current_setting('pgi.retry_after', true))) END)::text,
        true)
$$;

-- Sends a JSON body as JSON whatever the format (errors, capture, unknown routes).
CREATE FUNCTION api._render_json(p_body json) RETURNS api."*/*"
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM api._set_headers('application/json; charset=utf-8');
    RETURN convert_to(coalesce(p_body::text, ''), 'UTF8');
END $$;

-- Sends a JSON body in the requested format (api._format() must not be NULL here): JSON as it
-- is; CSV for a success (status < 400); errors always stay PostHog's JSON bodies. A NULL body
-- (201/204 without content) stays empty.
CREATE FUNCTION api._render(p_body json) RETURNS api."*/*"
LANGUAGE plpgsql AS $$
DECLARE
    v_status integer := coalesce(nullif(current_setting('response.status', true), '')::integer, 200);
BEGIN
    IF api._format() = 'csv' AND v_status < 400 THEN
        PERFORM api._set_headers('text/csv; charset=utf-8');
        RETURN convert_to(CASE WHEN p_body IS NULL THEN '' ELSE api._json_to_csv(p_body::jsonb) END, 'UTF8');
    END IF;
    PERFORM api._set_headers('application/json; charset=utf-8');
    RETURN convert_to(coalesce(p_body::text, ''), 'UTF8');
END $$;


---------------------------------------------------------------------------------------------------
-- The dispatcher: every request of the routing table (nginx/routes.conf) enters here.
--
-- nginx maps the path to a route name (X-Pgi-Route) and always calls /rpc/dispatch. A route's
-- annotation `#: METHODS | scope | summary` becomes a row of api.routes (scripts/openapi.py
-- --routes-sql, applied by scripts/stack after these files), so the method check, the body
-- decoding, the key and scope check, the rendering and the one exception handler live here, and
-- an endpoint is a routing row plus a handler `api.h_<route>(p_body jsonb) RETURNS json` (or
-- `RETURNS api."*/*"` when it renders its own bytes, e.g. a CSV export). Routes with scope `-`
-- (capture) get the raw body, `api.h_<route>(bytea)`, and authenticate by themselves.
--
-- Scopes: `x:read` or `x:write` hold for every method; `x:read/write` means x:read for GET and
-- HEAD and x:write for the others (PostHog's rule for safe and unsafe methods).

CREATE TABLE api.routes (
    route    text PRIMARY KEY,
    methods  text[] NOT NULL,
    scope    text NOT NULL CHECK (scope ~ '^(-|[a-z_]+:(read|write|read/write))$')
);
GRANT SELECT ON api.routes TO pgi_api;

-- Routes that a sharing access token (?sharing_access_token=, GET only, no key) opens, as
-- PostHog's SharingAccessTokenAuthentication on these views; the handler narrows it to the one
-- shared object.
CREATE FUNCTION api._sharing_routes() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY['insight'] $$;

-- The scope a request needs on its route.
CREATE FUNCTION api._route_scope(p_scope text, p_method text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_scope NOT LIKE '%/write' THEN p_scope
                WHEN p_method IN ('GET', 'HEAD') THEN replace(p_scope, '/write', '')
                ELSE replace(p_scope, 'read/write', 'write') END
$$;

-- Authenticates the request for its route: the personal API key for the route's scope, or, on a
-- sharing route, a sharing access token without any key (then pgi.sharing_insight_id is set for
-- the handler). Returns NULL or the error body.
CREATE FUNCTION api._authenticate_route(p_route api.routes, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_shared bigint;
BEGIN
    IF p_route.route = ANY (api._sharing_routes()) AND api._method() IN ('GET', 'HEAD')
       AND coalesce(v_query->>'sharing_access_token', '') <> ''
       AND coalesce(api._header('x-pgi-authorization'), '') = ''
       AND coalesce(p_body->>'personal_api_key', v_query->>'personal_api_key', '') = '' THEN
        v_shared := api._sharing_authenticate(v_query->>'sharing_access_token');
        IF v_shared IS NULL THEN
            RETURN api._error(401, 'authentication_error', 'authentication_failed',
                              'Sharing access token is invalid.');
        END IF;
        PERFORM set_config('pgi.sharing_insight_id', v_shared::text, true);
        RETURN NULL;
    END IF;
    RETURN api._authenticate(api._route_scope(p_route.scope, api._method()), p_body);
END $$;

-- POST /rpc/dispatch (PostgREST): one request of any route. Order, as DRF: unknown route → 404;
-- unknown ?format= → 404; method not in the route → 405; then the key and scope (401/403/404
-- for the project); then the handler. Any SQL error inside is rolled back (nothing half-written)
-- and answered by api._error_from_sql.
CREATE FUNCTION api.dispatch(bytea) RETURNS api."*/*"
LANGUAGE plpgsql AS $$
DECLARE
    v_route api.routes;
    v_method text := api._method();
    v_handler regprocedure;
    v_body jsonb;
    v_json json;
    v_raw bytea;
    v_state text;
    v_message text;
    v_detail text;
    v_hint text;
BEGIN
    SELECT * INTO v_route FROM api.routes WHERE route = api._header('x-pgi-route');
    IF v_route.route IS NULL THEN
        RETURN api._render_json(api._not_found());
    END IF;
    IF v_route.scope = '-' THEN
        -- A raw-body handler may render its own bytes too (the SDK's remote config as JavaScript).
        IF (SELECT prorettype FROM pg_proc
             WHERE oid = to_regprocedure(format('api.%I(bytea)', 'h_' || v_route.route))) = 'api."*/*"'::regtype THEN
            EXECUTE format('SELECT api.%I($1)', 'h_' || v_route.route) INTO v_raw USING $1;
            RETURN v_raw;
        END IF;
        EXECUTE format('SELECT api.%I($1)', 'h_' || v_route.route) INTO v_json USING $1;
        RETURN api._render_json(v_json);
    END IF;
    BEGIN
        IF api._format() IS NULL THEN
            RETURN api._render_json(api._not_found());
        END IF;
        IF NOT (v_method = ANY (v_route.methods) OR (v_method = 'HEAD' AND 'GET' = ANY (v_route.methods))) THEN
            RETURN api._render_json(api._method_not_allowed());
        END IF;
        v_body := coalesce(api._multipart_body($1), insights.decode_api_body($1));
        v_json := api._authenticate_route(v_route, v_body);
        IF v_json IS NOT NULL THEN
            RETURN api._render_json(v_json);
        END IF;
        v_handler := to_regprocedure(format('api.%I(jsonb)', 'h_' || v_route.route));
        IF v_handler IS NULL THEN
            RAISE EXCEPTION 'route % has no handler api.h_%(jsonb)', v_route.route, v_route.route;
        END IF;
        IF (SELECT prorettype FROM pg_proc WHERE oid = v_handler) = 'api."*/*"'::regtype THEN
            EXECUTE format('SELECT api.%I($1)', 'h_' || v_route.route) INTO v_raw USING v_body;
            RETURN v_raw;
        END IF;
        EXECUTE format('SELECT api.%I($1)', 'h_' || v_route.route) INTO v_json USING v_body;
        RETURN api._render(v_json);
    EXCEPTION WHEN OTHERS OR query_canceled THEN  -- OTHERS alone does not catch a cancel or timeout
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
        RETURN api._render_json(api._error_from_sql(v_state, v_message, v_detail, v_hint));
    END;
END $$;
GRANT EXECUTE ON FUNCTION api.dispatch(bytea) TO pgi_api;
