-- /api/projects/:project_id/persons/ (and /api/environments/:id/persons/): PostHog's person list
-- and retrieve. Scope person:read.

-- PostHog's person serializer (§8.1 of the semantics digest).
CREATE FUNCTION api._person_json(p insights.persons) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', p.id,
        'uuid', p.uuid,
        'name', coalesce(p.properties->>'email', p.properties->>'name', ids.first_id, p.uuid::text),
        'distinct_ids', coalesce(ids.all_ids, '[]'::jsonb),
        'properties', p.properties,
        'created_at', to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'is_identified', p.is_identified,
        'last_seen_at', NULL)
      FROM (SELECT jsonb_agg(d.distinct_id ORDER BY d.distinct_id) AS all_ids,
                   min(d.distinct_id) AS first_id
              FROM insights.person_distinct_ids d WHERE d.person_id = p.id) AS ids
$$;

-- GET persons/ with limit/offset, distinct_id, email and search filters.
CREATE FUNCTION api.persons(bytea) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_body jsonb;
    v_query jsonb := api._query();
    v_denied json;
    v_limit integer;
    v_offset integer;
    v_results jsonb;
    v_count integer;
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    IF api._method() NOT IN ('GET', 'HEAD') THEN
        IF api._method() = 'POST' THEN
            RETURN api._error(405, 'invalid_request', 'method_not_allowed',
                              'Creating persons via this API is not allowed. Please create persons by sending an $identify event.');
        END IF;
        RETURN api._method_not_allowed();
    END IF;
    BEGIN
        v_body := insights.decode_api_body($1);
        v_denied := api._authenticate('person:read', v_body);
        IF v_denied IS NOT NULL THEN
            RETURN v_denied;
        END IF;
        v_limit := api._int_param(v_query, 'limit', 100, 1, 1000);
        v_offset := api._int_param(v_query, 'offset', 0, 0, 2147483647);

        SELECT coalesce(jsonb_agg(api._person_json(pp) ORDER BY pp.created_at DESC, pp.id DESC), '[]'),
               count(*)
          INTO v_results, v_count
          FROM (SELECT p.id FROM insights.persons p
                 WHERE (v_query->>'distinct_id' IS NULL OR EXISTS (
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
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL;
        RETURN api._error_from_sql(v_state, v_message, v_detail);
    END;
    RETURN json_build_object(
        'results', CASE WHEN v_count > v_limit THEN v_results - v_limit ELSE v_results END,
        'next', CASE WHEN v_count > v_limit
                     THEN api._url_with(jsonb_build_object('limit', v_limit, 'offset', v_offset + v_limit)) END,
        'previous', CASE WHEN v_offset > 0
                         THEN api._url_with(jsonb_build_object('limit', v_limit,
                                                               'offset', greatest(v_offset - v_limit, 0))) END);
END $$;
GRANT EXECUTE ON FUNCTION api.persons(bytea) TO pgi_api;

-- GET persons/:id/ by numeric id or uuid.
CREATE FUNCTION api.person(bytea) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_id text := api._header('x-pgi-id');
    v_denied json;
    v_person insights.persons;
BEGIN
    IF api._method() NOT IN ('GET', 'HEAD') THEN
        RETURN api._method_not_allowed();
    END IF;
    v_denied := api._authenticate('person:read', '{}');
    IF v_denied IS NOT NULL THEN
        RETURN v_denied;
    END IF;
    IF v_id ~ '^\d{1,18}$' THEN
        SELECT * INTO v_person FROM insights.persons WHERE id = v_id::bigint;
    ELSIF v_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        SELECT * INTO v_person FROM insights.persons WHERE uuid = v_id::uuid;
    END IF;
    IF v_person.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    RETURN api._person_json(v_person);
END $$;
GRANT EXECUTE ON FUNCTION api.person(bytea) TO pgi_api;
