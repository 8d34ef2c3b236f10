-- /api/projects/:project_id/cohorts/… (and /api/environments/:id/cohorts/…): PostHog's cohorts
-- resource (docs/api.md#cohorts): list/create, retrieve/PATCH/PUT, soft delete (`deleted: true`;
-- DELETE is 405 as PostHog's ForbidDestroyModel), the members page `:id/persons/` (JSON or
-- ?format=csv) and `:id/add_persons_to_static_cohort/`.
--
-- A cohort is either static (members stored in insights.cohort_people: from person ids, or from a
-- CSV upload of distinct ids or emails) or defined by `filters` / legacy `groups` (person
-- properties, behaviour, other cohorts), which every reader evaluates through the extension's
-- one compiler: insights.cohort_person_ids here, cohort filters in insights, and
-- insights.person_cohort_ids. A definition is checked by that compiler before it is stored
-- (insights._check_cohort_filters): a missing cohort, a reference back to the cohort itself, a
-- filter type that does not work on persons or a behavioural criterion that cannot be evaluated
-- exactly is a 400 naming the field. `count` and `last_calculation` are computed when the cohort
-- or its members change: in the request, or by the background worker for large projects.
--
-- Runs as pgi_api: row-level security keeps every statement inside the request's project.

---------------------------------------------------------------------------------------------------
-- Definitions and members

-- The stored definition of a create/update body: `filters` (`{"properties": …}`) wins over
-- legacy `groups`; nothing given → `{}` (every person, as an empty PostHog property group).
CREATE FUNCTION api._cohort_definition(p_body jsonb, p_old jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_filters jsonb;
    v_groups jsonb;
BEGIN
    IF NOT (p_body ? 'filters' OR p_body ? 'groups') THEN
        RETURN p_old;
    END IF;
    IF p_body ? 'filters' THEN
        v_filters := api._object_field(p_body, 'filters');
    END IF;
    IF p_body ? 'groups' THEN
        IF jsonb_typeof(p_body->'groups') = 'string' THEN
            -- A multipart or form body sends it JSON-encoded.
            BEGIN
                p_body := jsonb_set(p_body, '{groups}', (p_body->>'groups')::jsonb);
            EXCEPTION WHEN invalid_text_representation THEN
                PERFORM api._field_error('groups', 'Value must be valid JSON.');
            END;
        END IF;
        v_groups := api._list_field(p_body, 'groups');
    END IF;
    IF v_filters ? 'properties' AND jsonb_typeof(v_filters->'properties') <> 'null' THEN
        RETURN jsonb_build_object('properties', v_filters->'properties');
    ELSIF jsonb_array_length(coalesce(v_groups, '[]')) > 0 THEN
        RETURN jsonb_build_object('groups', v_groups);
    END IF;
    RETURN '{}';
END $$;

-- The first field of each CSV line (RFC 4180 quoting on one line), trimmed, blank lines
-- skipped, a first line that is a header (distinct_id, email, person_id, id) skipped. A line
-- whose first field cannot be read is returned with `bad` set.
CREATE FUNCTION api._csv_first_column(p_csv text)
RETURNS TABLE (line integer, value text, bad boolean)
LANGUAGE sql IMMUTABLE AS $$
    WITH lines AS (
        SELECT n::integer AS line, l
          -- A UTF-8 byte order mark (spreadsheet exports) is not part of the first value.
          FROM unnest(regexp_split_to_array(ltrim(coalesce(p_csv, ''), U&'\FEFF'), E'\r?\n')) WITH ORDINALITY u(l, n)
         WHERE btrim(l) <> ''
    ), fields AS (
        SELECT line,
               CASE WHEN btrim(l) ~ '^"' THEN
                        replace(substring(btrim(l) FROM '^"((?:[^"]|"")*)"\s*(?:,|$)'), '""', '"')
                    ELSE substring(l FROM '^([^,"]*)(?:,|$)') END AS value
          FROM lines
    )
    SELECT line, btrim(value), value IS NULL OR btrim(value) = ''
      FROM fields
     WHERE NOT (line = (SELECT min(line) FROM lines)
                AND lower(btrim(coalesce(value, ''))) IN ('distinct_id', 'distinct id', 'distinct_ids', 'email',
                                                          'person_id', 'id'))
     ORDER BY line
$$;

-- The persons a CSV upload names: each value is a distinct id, or else a person's `email`
-- property (PostHog matches both). Any row that is unreadable or names nobody is a 400 listing
-- the rows (nothing is stored); an upload without any value is a 400 too.
CREATE FUNCTION api._cohort_csv_persons(p_csv text) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_nbad bigint;
    v_bad text;
    v_ids bigint[];
BEGIN
    WITH rows AS (
        SELECT c.line, c.value, c.bad,
               CASE WHEN NOT c.bad THEN coalesce(
                   (SELECT array_agg(d.person_id) FROM insights.person_distinct_ids d WHERE d.distinct_id = c.value),
                   (SELECT array_agg(p.id) FROM insights.persons p WHERE p.properties->>'email' = c.value)) END AS person_ids
          FROM api._csv_first_column(p_csv) c
    )
    SELECT (SELECT count(*) FROM rows WHERE bad OR person_ids IS NULL),
           (SELECT string_agg(format('line %s (%s)', line, CASE WHEN bad THEN 'unreadable' ELSE left(value, 64) END),
                              ', ' ORDER BY line)
              FROM (SELECT * FROM rows WHERE bad OR person_ids IS NULL ORDER BY line LIMIT 10) b),
           (SELECT array_agg(DISTINCT x) FROM rows, unnest(person_ids) x)
      INTO v_nbad, v_bad, v_ids;
    IF v_nbad > 0 THEN
        PERFORM api._field_error('csv', format('%s row(s) of the CSV match no person: %s', v_nbad, v_bad));
    END IF;
    IF v_ids IS NULL THEN
        PERFORM api._field_error('csv', 'The CSV names no person: one distinct id or email per line.');
    END IF;
    RETURN v_ids;
END $$;

-- A list of person references (PostHog's person uuids, or numeric ids) → person ids; unknown
-- references are a 400 naming p_attr.
CREATE FUNCTION api._person_refs(p_body jsonb, p_attr text) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_ref jsonb;
    v_id bigint;
    v_ids bigint[] := '{}';
    v_missing text[] := '{}';
BEGIN
    FOR v_ref IN SELECT x FROM jsonb_array_elements(api._list_field(p_body, p_attr)) x LOOP
        v_id := NULL;
        IF jsonb_typeof(v_ref) IN ('string', 'number') AND (v_ref #>> '{}') ~ '^\d{1,18}$' THEN
            SELECT id INTO v_id FROM insights.persons WHERE id = (v_ref #>> '{}')::bigint;
        ELSIF jsonb_typeof(v_ref) = 'string'
              AND (v_ref #>> '{}') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            SELECT id INTO v_id FROM insights.persons WHERE uuid = (v_ref #>> '{}')::uuid;
        END IF;
        IF v_id IS NULL THEN
            v_missing := v_missing || left(v_ref #>> '{}', 64);
        ELSE
            v_ids := v_ids || v_id;
        END IF;
    END LOOP;
    IF cardinality(v_missing) > 0 THEN
        PERFORM api._field_error(p_attr, format('Persons not found: %s', array_to_string(v_missing[1:10], ', ')));
    END IF;
    RETURN v_ids;
END $$;

-- Adds persons to a static cohort (already-present members stay once).
CREATE FUNCTION api._cohort_add_members(p_cohort bigint, p_ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO insights.cohort_people (cohort_id, person_id)
    SELECT DISTINCT p_cohort, x FROM unnest(p_ids) x
    ON CONFLICT DO NOTHING
$$;

-- Projects with more persons than this (setting pgi.cohort_sync_limit, default 50000) count a
-- dynamic cohort in the background worker instead of in the request.
CREATE FUNCTION api._cohort_sync_limit() RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('pgi.cohort_sync_limit', true), '')::integer, 50000)
$$;

-- Recounts a live cohort's members now (static: the stored members; otherwise the evaluated
-- definition), as PostHog's calculation does, and records when. A dynamic cohort of a large
-- project is marked is_calculating instead; the background worker counts it
-- (insights.calculate_next_cohort).
CREATE FUNCTION api._cohort_recalculate(p_id bigint) RETURNS insights.cohorts
LANGUAGE plpgsql AS $$
DECLARE
    c insights.cohorts;
BEGIN
    SELECT * INTO c FROM insights.cohorts WHERE id = p_id;
    IF c.deleted THEN
        RETURN c;
    END IF;
    IF NOT c.is_static AND (SELECT count(*) FROM (SELECT 1 FROM insights.persons WHERE project_id = c.project_id
                                                   LIMIT api._cohort_sync_limit() + 1) x) > api._cohort_sync_limit() THEN
        UPDATE insights.cohorts SET is_calculating = true WHERE id = c.id RETURNING * INTO c;
        RETURN c;
    END IF;
    UPDATE insights.cohorts
       SET count = CASE WHEN c.is_static
                        THEN (SELECT count(*) FROM insights.cohort_people WHERE cohort_id = c.id)
                        ELSE (SELECT count(*) FROM insights.cohort_person_ids(c.project_id, c.id)) END,
           is_calculating = false, errors_calculating = 0, last_calculation = now()
     WHERE id = c.id
    RETURNING * INTO c;
    RETURN c;
END $$;

---------------------------------------------------------------------------------------------------
-- Serializer and writes

-- PostHog's CohortSerializer. `cohort_type` is derived: static, behavioral (a behavioural
-- criterion anywhere in the definition) or person_property.
CREATE FUNCTION api._cohort_json(c insights.cohorts) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', c.id, 'name', c.name, 'description', c.description,
        'groups', coalesce(c.filters->'groups', '[]'),
        'deleted', c.deleted,
        'filters', CASE WHEN c.filters ? 'properties' THEN jsonb_build_object('properties', c.filters->'properties') END,
        'query', NULL, 'version', c.version, 'pending_version', NULL,
        'is_calculating', c.is_calculating, 'created_by', api._user_json(c.created_by),
        'created_at', api._iso(c.created_at), 'last_calculation', api._iso(c.last_calculation),
        'errors_calculating', c.errors_calculating, 'last_error_at', NULL, 'count', c.count,
        'is_static', c.is_static,
        'cohort_type', CASE WHEN c.is_static THEN 'static'
                            WHEN c.filters::text ~ '"type": "behavioral"|"(event_id|action_id)": [^n]' THEN 'behavioral'
                            ELSE 'person_property' END,
        'experiment_set', '[]'::jsonb)
$$;

-- Applies a create/update body to a cohort row (only the fields present) and checks the
-- definition with the engines' compiler (as cohort c.id, so a reference back to it is refused).
CREATE FUNCTION api._cohort_apply_body(c insights.cohorts, p_body jsonb) RETURNS insights.cohorts
LANGUAGE plpgsql AS $$
DECLARE
    v_static boolean;
BEGIN
    IF p_body ? 'name' THEN c.name := coalesce(api._text_field(p_body, 'name', true), ''); END IF;
    IF p_body ? 'description' THEN
        c.description := coalesce(api._text_field(p_body, 'description', true), '');
    END IF;
    IF p_body ? 'deleted' THEN c.deleted := api._bool_field(p_body, 'deleted'); END IF;
    IF p_body ? 'is_static' THEN
        v_static := api._bool_field(p_body, 'is_static');
        IF c.id IS NOT NULL AND v_static IS DISTINCT FROM c.is_static THEN
            PERFORM api._field_error('is_static', 'A cohort cannot change between static and dynamic.');
        END IF;
        c.is_static := v_static;
    END IF;
    IF jsonb_typeof(p_body->'query') NOT IN ('null') THEN
        PERFORM api._field_error('query', 'Cohorts defined by a query are not supported: use filters or a static cohort.');
    END IF;
    c.filters := api._cohort_definition(p_body, c.filters);
    IF NOT c.deleted THEN
        PERFORM insights._check_cohort_filters(insights.request_project_id(), c.id, c.filters::text);
    END IF;
    RETURN c;
END $$;

-- A cohort by the :id path segment (deleted ones too, as PostHog: only the list hides them).
CREATE FUNCTION api._cohort_by_path() RETURNS insights.cohorts
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id text := api._header('x-pgi-id');
    v_row insights.cohorts;
BEGIN
    IF v_id ~ '^\d{1,18}$' THEN
        SELECT * INTO v_row FROM insights.cohorts WHERE id = v_id::bigint;
    END IF;
    RETURN v_row;
END $$;

-- The members named by a body: `_create_static_person_ids` (person uuids or ids) and the `csv`
-- upload (multipart). NULL when the body names none.
CREATE FUNCTION api._cohort_body_members(p_body jsonb) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
BEGIN
    IF p_body ? '_create_static_person_ids' AND jsonb_typeof(p_body->'_create_static_person_ids') <> 'null' THEN
        v_ids := api._person_refs(p_body, '_create_static_person_ids');
    END IF;
    IF p_body ? 'csv' THEN
        IF jsonb_typeof(p_body->'csv') <> 'string' THEN
            PERFORM api._field_error('csv', 'Upload the CSV as a multipart file field named csv.');
        END IF;
        v_ids := coalesce(v_ids, '{}') || api._cohort_csv_persons(p_body->>'csv');
    END IF;
    RETURN v_ids;
END $$;

---------------------------------------------------------------------------------------------------
-- Endpoints

-- GET cohorts/: live cohorts, newest first, paginated (?search= on the name). POST cohorts/:
-- create (cohort:write), 201; a static cohort takes its members from `_create_static_person_ids`
-- and/or a multipart `csv` upload.
CREATE FUNCTION api.h_cohorts(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_members bigint[];
    c insights.cohorts;
BEGIN
    IF api._method() = 'POST' THEN
        c.project_id := insights.request_project_id();
        c.name := '';
        c.description := '';
        c.is_static := false;
        c.filters := '{}';
        c.deleted := false;
        c := api._cohort_apply_body(c, p_body);
        v_members := api._cohort_body_members(p_body);
        IF v_members IS NOT NULL AND NOT c.is_static THEN
            PERFORM api._field_error('is_static', 'Only a static cohort takes a list of persons or a CSV.');
        END IF;
        INSERT INTO insights.cohorts (project_id, name, description, is_static, filters, deleted, created_by, version)
        VALUES (c.project_id, c.name, c.description, c.is_static, c.filters, c.deleted, insights.request_user_id(), 1)
        RETURNING * INTO c;
        PERFORM api._cohort_add_members(c.id, v_members);
        c := api._cohort_recalculate(c.id);
        PERFORM set_config('response.status', '201', true);
        RETURN api._cohort_json(c);
    END IF;
    RETURN api._live_page('cohorts', '_cohort_json');
END $$;

-- GET cohorts/:id/ (cohort:read); PATCH/PUT (cohort:write: fields, definition, `deleted`, and
-- for a static cohort a `csv` upload or `_create_static_person_ids` that add members);
-- DELETE → 405 once the key has cohort:write.
CREATE FUNCTION api.h_cohort(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_method text := api._method();
    v_before insights.cohorts;
    v_members bigint[];
    c insights.cohorts;
BEGIN
    IF v_method = 'DELETE' THEN
        RETURN api._method_not_allowed();
    END IF;
    c := api._cohort_by_path();
    IF c.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    IF v_method IN ('PATCH', 'PUT') THEN
        v_before := c;
        c := api._cohort_apply_body(c, p_body);
        v_members := api._cohort_body_members(p_body);
        IF v_members IS NOT NULL AND NOT c.is_static THEN
            PERFORM api._field_error('is_static', 'Only a static cohort takes a list of persons or a CSV.');
        END IF;
        UPDATE insights.cohorts
           SET name = c.name, description = c.description, filters = c.filters, deleted = c.deleted,
               version = CASE WHEN c.filters IS DISTINCT FROM v_before.filters OR v_members IS NOT NULL
                              THEN coalesce(version, 0) + 1 ELSE version END
         WHERE id = c.id;
        PERFORM api._cohort_add_members(c.id, v_members);
        IF c.filters IS DISTINCT FROM v_before.filters OR v_members IS NOT NULL
           OR (v_before.deleted AND NOT c.deleted) THEN
            PERFORM api._cohort_recalculate(c.id);
        END IF;
        SELECT * INTO c FROM insights.cohorts WHERE id = c.id;
    END IF;
    RETURN api._cohort_json(c);
END $$;

-- PATCH cohorts/:id/add_persons_to_static_cohort/ {"person_ids": [uuid or id, …]} (cohort:write).
CREATE FUNCTION api.h_cohort_add_persons(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    c insights.cohorts := api._cohort_by_path();
BEGIN
    IF c.id IS NULL OR c.deleted THEN
        RETURN api._not_found();
    END IF;
    IF NOT c.is_static THEN
        PERFORM api._field_error('person_ids', 'Can only add persons to a static cohort.');
    END IF;
    IF NOT p_body ? 'person_ids' THEN
        PERFORM api._field_error('person_ids', 'This field is required.', 'required');
    END IF;
    PERFORM api._cohort_add_members(c.id, api._person_refs(p_body, 'person_ids'));
    UPDATE insights.cohorts SET version = coalesce(version, 0) + 1 WHERE id = c.id;
    RETURN api._cohort_json(api._cohort_recalculate(c.id));
END $$;

-- PATCH cohorts/:id/remove_person_from_static_cohort/ {"person_id": uuid or id} (cohort:write).
CREATE FUNCTION api.h_cohort_remove_person(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    c insights.cohorts := api._cohort_by_path();
    v_ids bigint[];
BEGIN
    IF c.id IS NULL OR c.deleted THEN
        RETURN api._not_found();
    END IF;
    IF NOT c.is_static THEN
        PERFORM api._field_error('person_id', 'Can only remove persons from a static cohort.');
    END IF;
    IF jsonb_typeof(p_body->'person_id') IS NULL OR jsonb_typeof(p_body->'person_id') = 'null' THEN
        PERFORM api._field_error('person_id', 'This field is required.', 'required');
    END IF;
    v_ids := api._person_refs(jsonb_build_object('person_id', jsonb_build_array(p_body->'person_id')), 'person_id');
    DELETE FROM insights.cohort_people WHERE cohort_id = c.id AND person_id = ANY (v_ids);
    UPDATE insights.cohorts SET version = coalesce(version, 0) + 1 WHERE id = c.id;
    RETURN api._cohort_json(api._cohort_recalculate(c.id));
END $$;

-- GET cohorts/:id/persons/ (cohort:read): the members now, by person id, paginated (limit
-- default 100, offset); ?format=csv renders the page as CSV. A deleted cohort is 404.
CREATE FUNCTION api.h_cohort_persons(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_limit integer := api._int_param(v_query, 'limit', 100, 1, 10000);
    v_offset integer := api._int_param(v_query, 'offset', 0, 0, 2147483647);
    v_ids bigint[];
    v_count integer;
    v_results jsonb;
    c insights.cohorts := api._cohort_by_path();
BEGIN
    IF c.id IS NULL OR c.deleted THEN
        RETURN api._not_found();
    END IF;
    SELECT array_agg(m ORDER BY m) INTO v_ids FROM insights.cohort_person_ids(c.project_id, c.id) m;
    v_count := coalesce(cardinality(v_ids), 0);
    SELECT coalesce(jsonb_agg(api._person_json(p) ORDER BY u.n), '[]') INTO v_results
      FROM unnest(v_ids[v_offset + 1 : v_offset + v_limit]) WITH ORDINALITY u(id, n)
      JOIN insights.persons p ON p.id = u.id;
    RETURN json_build_object(
        'count', v_count,
        'next', CASE WHEN v_offset + v_limit < v_count
                     THEN api._page_url(jsonb_build_object('limit', v_limit, 'offset', v_offset + v_limit)) END,
        'previous', CASE WHEN v_offset <= 0 THEN NULL
                         ELSE api._page_url(jsonb_build_object('limit', v_limit, 'offset', greatest(v_offset - v_limit, 0))) END,
        'results', v_results);
END $$;
