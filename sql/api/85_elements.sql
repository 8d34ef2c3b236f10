-- /api/projects/:project_id/elements/ (and /api/environments/:id/elements/): PostHog's autocapture
-- elements API (docs/api.md#elements). Scopes element:read / element:write.
--   elements/            GET list (limit/offset, newest id last), POST create
--   elements/:id/        GET, PATCH/PUT, DELETE
--   elements/stats/      what gets clicked: events per element chain and event type
--   elements/values/     the most common values of one element field
-- Element rows come from the chain store (ingestion, insights.element_chains) or from POST.

-- PostHog's ElementSerializer, plus the row id (PostHog's serializer has none, which leaves a
-- client no way to address the row it created).
CREATE FUNCTION api._element_json(e insights.elements) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', e.id, 'text', e.text, 'tag_name', e.tag_name,
        'attr_class', CASE WHEN e.attr_class IS NOT NULL THEN to_jsonb(e.attr_class) END,
        'href', e.href, 'attr_id', e.attr_id, 'nth_child', e.nth_child,
        'nth_of_type', e.nth_of_type, 'attributes', e.attributes, 'order', e."order")
$$;

-- DRF's IntegerField(allow_null=True) over a Postgres integer column.
CREATE FUNCTION api._element_int(p_body jsonb, p_attr text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := p_body->p_attr;
    t text := btrim(p_body->>p_attr);
BEGIN
    IF jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    ELSIF jsonb_typeof(v) NOT IN ('string', 'number') OR t !~ '^-?\d{1,10}(\.0*)?$' THEN
        PERFORM api._field_error(p_attr, 'A valid integer is required.');
    ELSIF t::numeric NOT BETWEEN -2147483648 AND 2147483647 THEN
        PERFORM api._field_error(p_attr, 'Ensure this value is less than or equal to 2147483647.',
                                 'max_value');
    END IF;
    RETURN t::numeric::integer;
END $$;

-- The body's fields applied to an element (PATCH: only those present). Unknown fields are
-- ignored, as DRF does.
CREATE FUNCTION api._element_apply(e insights.elements, p_body jsonb) RETURNS insights.elements
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
BEGIN
    IF jsonb_typeof(p_body) <> 'object' THEN
        PERFORM api._field_error('non_field_errors', 'Invalid data. Expected a dictionary, but got list.');
    END IF;
    IF p_body ? 'text' THEN e.text := api._text_field(p_body, 'text', true, 10000); END IF;
    IF p_body ? 'tag_name' THEN e.tag_name := api._text_field(p_body, 'tag_name', true, 1000); END IF;
    IF p_body ? 'href' THEN e.href := api._text_field(p_body, 'href', true, 10000); END IF;
    IF p_body ? 'attr_id' THEN e.attr_id := api._text_field(p_body, 'attr_id', true, 10000); END IF;
    IF p_body ? 'nth_child' THEN e.nth_child := api._element_int(p_body, 'nth_child'); END IF;
    IF p_body ? 'nth_of_type' THEN e.nth_of_type := api._element_int(p_body, 'nth_of_type'); END IF;
    IF p_body ? 'order' THEN e."order" := api._element_int(p_body, 'order'); END IF;
    IF p_body ? 'attr_class' THEN
        v := p_body->'attr_class';
        IF jsonb_typeof(v) = 'null' THEN
            e.attr_class := NULL;
        ELSIF jsonb_typeof(v) <> 'array' THEN
            PERFORM api._field_error('attr_class', format('Expected a list of items but got type "%s".',
                                     CASE jsonb_typeof(v) WHEN 'string' THEN 'str' WHEN 'number' THEN 'int'
                                          WHEN 'boolean' THEN 'bool' ELSE 'dict' END), 'not_a_list');
        ELSIF EXISTS (SELECT 1 FROM jsonb_array_elements(v) x
                       WHERE jsonb_typeof(x) NOT IN ('string', 'number') OR length(x #>> '{}') > 200) THEN
            PERFORM api._field_error('attr_class', 'Each class must be a string of at most 200 characters.');
        ELSE
            e.attr_class := ARRAY(SELECT x #>> '{}' FROM jsonb_array_elements(v) x);
        END IF;
    END IF;
    IF p_body ? 'attributes' THEN
        v := p_body->'attributes';
        IF jsonb_typeof(v) = 'null' THEN
            PERFORM api._field_error('attributes', 'This field may not be null.', 'null');
        ELSIF jsonb_typeof(v) <> 'object' THEN
            PERFORM api._field_error('attributes', 'Value must be valid JSON.');
        END IF;
        e.attributes := v;
    END IF;
    RETURN e;
END $$;

-- GET elements/ (paginated, by id) and POST elements/ (201 with the element).
CREATE FUNCTION api.h_elements(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_limit integer;
    v_offset integer;
    v_row insights.elements;
    v_count bigint;
    v_results jsonb;
BEGIN
    IF api._method() = 'POST' THEN
        v_row.project_id := insights.request_project_id();
        v_row.attributes := '{}';
        v_row := api._element_apply(v_row, p_body);
        INSERT INTO insights.elements (project_id, "order", tag_name, text, href, attr_id, attr_class,
                                       nth_child, nth_of_type, attributes)
        VALUES (v_row.project_id, v_row."order", v_row.tag_name, v_row.text, v_row.href, v_row.attr_id,
                v_row.attr_class, v_row.nth_child, v_row.nth_of_type, v_row.attributes)
        RETURNING * INTO v_row;
        PERFORM set_config('response.status', '201', true);
        RETURN api._element_json(v_row);
    END IF;
    v_limit := api._int_param(v_query, 'limit', 100, 1, 1000);
    v_offset := api._int_param(v_query, 'offset', 0, 0, 2147483647);
    SELECT count(*) INTO v_count FROM insights.elements;
    SELECT coalesce(jsonb_agg(api._element_json(p) ORDER BY p.id), '[]') INTO v_results
      FROM (SELECT * FROM insights.elements ORDER BY id LIMIT v_limit OFFSET v_offset) p;
    RETURN json_build_object(
        'count', v_count,
        'next', CASE WHEN v_offset + v_limit < v_count
                     THEN api._url_with(jsonb_build_object('limit', v_limit, 'offset', v_offset + v_limit)) END,
        'previous', CASE WHEN v_offset > 0
                         THEN api._url_with(jsonb_build_object('limit', v_limit,
                                                               'offset', greatest(v_offset - v_limit, 0))) END,
        'results', v_results);
END $$;

-- GET / PATCH / PUT / DELETE elements/:id/ (RLS keeps other projects' rows out of sight: 404).
CREATE FUNCTION api.h_element(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_id text := api._header('x-pgi-id');
    v_row insights.elements;
BEGIN
    IF v_id ~ '^\d{1,18}$' THEN
        SELECT * INTO v_row FROM insights.elements WHERE id = v_id::bigint;
    END IF;
    IF v_row.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    CASE api._method()
        WHEN 'DELETE' THEN
            DELETE FROM insights.elements WHERE id = v_row.id;
            PERFORM set_config('response.status', '204', true);
            RETURN NULL;
        WHEN 'PATCH', 'PUT' THEN
            v_row := api._element_apply(v_row, p_body);
            UPDATE insights.elements
               SET "order" = v_row."order", tag_name = v_row.tag_name, text = v_row.text,
                   href = v_row.href, attr_id = v_row.attr_id, attr_class = v_row.attr_class,
                   nth_child = v_row.nth_child, nth_of_type = v_row.nth_of_type,
                   attributes = v_row.attributes
             WHERE id = v_row.id
            RETURNING * INTO v_row;
        ELSE
    END CASE;
    RETURN api._element_json(v_row);
END $$;

-- GET elements/stats/: events of the `include` types (repeatable; default $autocapture) per
-- element chain and type, most clicked first, paged by limit (default 100) / offset:
-- {"results": [{count, hash, type, elements}], "next", "previous"}, cacheable for 30 s as
-- PostHog sends it. date_from defaults to -7d; a date-only date_to includes that whole day.
CREATE FUNCTION api.h_elements_stats(p_body jsonb) RETURNS api."*/*"
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_tz text := (api._project()).timezone;
    v_include text[] := insights.query_param_all(coalesce(api._header('x-pgi-query'), ''), 'include');
    v_limit integer := api._int_param(v_query, 'limit', 100, 1, 10000);
    v_offset integer := api._int_param(v_query, 'offset', 0, 0, 2147483647);
    v_from timestamptz := coalesce(api._date_param(v_query, 'date_from', v_tz),
                                   api._date_param('{"d": "-7d"}', 'd', v_tz));
    v_to timestamptz := api._date_param(v_query, 'date_to', v_tz);
    v_props jsonb;
    v_items jsonb;
    v_sampling text := nullif(btrim(v_query->>'sampling_factor'), '');
BEGIN
    IF v_query->>'date_to' ~ '^\s*\d{4}-\d{2}-\d{2}\s*$' THEN
        v_to := v_to + interval '1 day';
    END IF;
    IF v_sampling IS NOT NULL AND (v_sampling !~ '^(0|1)?(\.\d+)?$' OR v_sampling::numeric NOT BETWEEN 0.000001 AND 1) THEN
        PERFORM api._field_error('sampling_factor', 'sampling_factor must be a number in (0, 1].');
    END IF;
    BEGIN
        v_props := coalesce(nullif(v_query->>'properties', '')::jsonb, '[]');
    EXCEPTION WHEN invalid_text_representation THEN
        PERFORM api._field_error('properties', 'Properties are unparsable!');
    END;
    v_items := insights._elements_stats(
        insights.request_project_id(),
        CASE WHEN cardinality(v_include) > 0 THEN v_include ELSE ARRAY['$autocapture'] END,
        v_props,
        CASE WHEN coalesce(v_query->>'filter_test_accounts', '') <> ''
             THEN api._bool_field(v_query, 'filter_test_accounts') ELSE false END,
        v_from, coalesce(v_to, now()), v_limit, v_offset);
    PERFORM set_config('response.headers', json_build_array(
        json_build_object('Content-Type', 'application/json; charset=utf-8'),
        json_build_object('Cache-Control', 'public, max-age=30'))::text, true);
    RETURN convert_to(json_build_object(
        'results', CASE WHEN jsonb_array_length(v_items) > v_limit THEN v_items - v_limit ELSE v_items END,
        'next', CASE WHEN jsonb_array_length(v_items) > v_limit
                     THEN api._url_with(jsonb_build_object('limit', v_limit, 'offset', v_offset + v_limit)) END,
        'previous', CASE WHEN v_offset > 0
                         THEN api._url_with(jsonb_build_object('limit', v_limit,
                                                               'offset', greatest(v_offset - v_limit, 0))) END
    )::text, 'UTF8');
END $$;

-- GET elements/values/?key=&value=: the 50 most common values of one element field in the
-- project's chains (the first match in each event's chain, as PostHog's extract()), counted per
-- event; `value` keeps those containing it (case-sensitive). `\"` is unescaped, as the chain
-- parser does (PostHog returns it escaped). A key outside the serializer's
-- fields answers [] (PostHog's whitelist); keys the chain does not spell that way (attr_class,
-- nth_child, …) find nothing, as in PostHog.
CREATE FUNCTION api.h_elements_values(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_key text := v_query->>'key';
    v_value text := nullif(v_query->>'value', '');
    v_select text;
    v_filter text;
    -- A literal inside a regex: every non-alphanumeric character escaped.
    v_escaped text := regexp_replace(coalesce(v_value, ''), '([^[:alnum:]])', '\\\1', 'g');
BEGIN
    IF v_key IS NULL OR v_key NOT IN ('text', 'tag_name', 'attr_class', 'href', 'attr_id', 'nth_child',
                                      'nth_of_type', 'attributes', 'order') THEN
        RETURN '[]'::json;
    END IF;
    IF v_key = 'tag_name' THEN
        v_select := '^([-_a-zA-Z0-9]*?)[.:]';
        v_filter := CASE WHEN v_value IS NULL THEN v_select
                         ELSE '^([-_a-zA-Z0-9]*?' || v_escaped || '[-_a-zA-Z0-9]*?)[.:]' END;
    ELSE
        v_select := '[:"]' || v_key || '="((?:[^"\\]|\\.)*)"';
        v_filter := CASE WHEN v_value IS NULL THEN v_select
                         ELSE '[:"]' || v_key || '="(?:[^"\\]|\\.)*' || v_escaped END;
    END IF;
    RETURN coalesce((
        SELECT json_agg(json_build_object('name', replace(v, '\"', '"')) ORDER BY n DESC, v)
          FROM (SELECT substring(e.elements_chain FROM v_select) AS v, count(*) AS n
                  FROM insights.events e
                 WHERE e.elements_chain <> '' AND e.elements_chain ~ v_filter
                   AND substring(e.elements_chain FROM v_select) IS NOT NULL
                 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50) s), '[]'::json);
END $$;
