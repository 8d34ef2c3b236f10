-- /api/projects/:id/ and /api/environments/:id/: the project's settings (PostHog's team
-- serializer, api/team.py). GET needs project:read; PATCH and PUT project:write.
--
-- Writable: name, timezone, week_start_day, test_account_filters,
-- test_account_filters_default_checked, path_cleaning_filters, person_display_name_properties,
-- data_attributes. Everything else in the body is ignored, as DRF ignores read-only and unknown
-- fields. A timezone change rebuilds the project's person-days rollup in the same transaction
-- (trigger person_days_timezone, sql/rollups.sql), and a change of timezone, week start,
-- test-account filters or path cleaning drops the project's cached insight results (trigger
-- projects_settings_changed, sql/activity.sql): every answer after the PATCH uses the new settings.

GRANT UPDATE (name, timezone, week_start_day, test_account_filters, test_account_filters_default_checked,
              path_cleaning_filters, person_display_name_properties, data_attributes, updated_at)
   ON insights.projects TO pgi_api;

-- The serializer: the writable settings plus PostHog's read-only fields that mean something here.
CREATE FUNCTION api._project_json(p insights.projects) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', p.id,
        'uuid', p.uuid,
        'organization', NULL,
        'project_id', p.id,
        'api_token', p.api_token,
        'name', p.name,
        'created_at', api._iso(p.created_at),
        'updated_at', api._iso(p.updated_at),
        'timezone', p.timezone,
        'week_start_day', p.week_start_day,
        'test_account_filters', p.test_account_filters,
        'test_account_filters_default_checked', p.test_account_filters_default_checked,
        'path_cleaning_filters', p.path_cleaning_filters,
        'person_display_name_properties', p.person_display_name_properties,
        'data_attributes', p.data_attributes,
        'is_demo', false,
        'anonymize_ips', false,
        'app_urls', '[]'::jsonb,
        'ingested_event', EXISTS (SELECT 1 FROM insights.events e WHERE e.project_id = p.id),
        'completed_snippet_onboarding', EXISTS (SELECT 1 FROM insights.events e WHERE e.project_id = p.id),
        'has_group_types', EXISTS (SELECT 1 FROM insights.group_type_mappings g WHERE g.project_id = p.id),
        'effective_membership_level', (SELECT m.level FROM insights.project_members m
                                        WHERE m.project_id = p.id AND m.user_id = insights.request_user_id()),
        'access_control', false,
        'primary_dashboard', NULL,
        'live_events_columns', NULL,
        'default_modifiers', jsonb_build_object('personsOnEventsMode', 'person_id_override_properties_joined'),
        'person_on_events_querying_enabled', true)
$$;

-- A JSON list of strings (DRF ListField(child=CharField)); `null` when p_nullable.
CREATE FUNCTION api._string_list_field(p_body jsonb, p_attr text, p_nullable boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := p_body->p_attr;
    v_bad integer;
BEGIN
    IF jsonb_typeof(v) = 'null' THEN
        IF NOT p_nullable THEN
            PERFORM api._field_error(p_attr, 'This field may not be null.', 'null');
        END IF;
        RETURN NULL;
    ELSIF jsonb_typeof(v) <> 'array' THEN
        PERFORM api._field_error(p_attr, format('Expected a list of items but got type "%s".',
                                                CASE jsonb_typeof(v) WHEN 'object' THEN 'dict' WHEN 'string' THEN 'str'
                                                     WHEN 'boolean' THEN 'bool' ELSE 'int' END), 'not_a_list');
    END IF;
    SELECT min(n) - 1 INTO v_bad FROM jsonb_array_elements(v) WITH ORDINALITY a(x, n)
     WHERE jsonb_typeof(x) <> 'string';
    IF v_bad IS NOT NULL THEN
        PERFORM api._field_error(p_attr || '__' || v_bad, 'Not a valid string.');
    END IF;
    RETURN v;
END $$;

-- A JSON list of filter objects (test_account_filters, path_cleaning_filters).
CREATE FUNCTION api._object_list_field(p_body jsonb, p_attr text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := p_body->p_attr;
    v_bad integer;
BEGIN
    IF jsonb_typeof(v) = 'null' THEN
        PERFORM api._field_error(p_attr, 'This field may not be null.', 'null');
    ELSIF jsonb_typeof(v) <> 'array' THEN
        PERFORM api._field_error(p_attr, 'Expected a list of items but got type "' || jsonb_typeof(v) || '".', 'not_a_list');
    END IF;
    SELECT min(n) - 1 INTO v_bad FROM jsonb_array_elements(v) WITH ORDINALITY a(x, n)
     WHERE jsonb_typeof(x) <> 'object';
    IF v_bad IS NOT NULL THEN
        PERFORM api._field_error(p_attr || '__' || v_bad, 'Expected a dictionary of items.', 'not_a_dict');
    END IF;
    RETURN v;
END $$;

-- Path cleaning rules: {regex, alias} strings, the regex valid for Postgres (the engine applies it).
CREATE FUNCTION api._check_path_cleaning(p_rules jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT x, n - 1 AS i FROM jsonb_array_elements(p_rules) WITH ORDINALITY a(x, n) LOOP
        IF jsonb_typeof(r.x->'regex') <> 'string' OR jsonb_typeof(r.x->'alias') NOT IN ('string')
           OR r.x->'alias' IS NULL THEN
            PERFORM api._field_error('path_cleaning_filters__' || r.i,
                                     'Each path cleaning rule needs a "regex" and an "alias" string.');
        END IF;
        BEGIN
            PERFORM '' ~ (r.x->>'regex');
        EXCEPTION WHEN invalid_regular_expression THEN
            PERFORM api._field_error('path_cleaning_filters__' || r.i || '__regex', 'Invalid regular expression.');
        END;
    END LOOP;
END $$;

-- PATCH/PUT: validates every given field first, then one UPDATE (nothing half-written).
CREATE FUNCTION api._project_update(p_body jsonb) RETURNS insights.projects
LANGUAGE plpgsql AS $$
DECLARE
    p insights.projects := api._project();
    v_tz text;
BEGIN
    IF jsonb_typeof(p_body) <> 'object' THEN
        RAISE EXCEPTION 'Invalid data. Expected a dictionary, but got %.', jsonb_typeof(p_body)
            USING ERRCODE = '22023', DETAIL = 'field: non_field_errors', HINT = 'code: invalid';
    END IF;
    IF p_body ? 'name' THEN
        p.name := api._text_field(p_body, 'name', false);
        IF btrim(p.name) = '' THEN
            PERFORM api._field_error('name', 'This field may not be blank.', 'blank');
        END IF;
        IF length(p.name) > 200 THEN
            PERFORM api._field_error('name', 'Ensure this field has no more than 200 characters.', 'max_length');
        END IF;
    END IF;
    IF p_body ? 'timezone' THEN
        v_tz := CASE WHEN jsonb_typeof(p_body->'timezone') = 'string' THEN p_body->>'timezone' END;
        -- PostHog's choices are the IANA zone names; Postgres knows the same database.
        IF v_tz IS NULL OR NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = v_tz) THEN
            PERFORM api._field_error('timezone', format('"%s" is not a valid choice.', coalesce(p_body->>'timezone', '')),
                                     'invalid_choice');
        END IF;
        p.timezone := v_tz;
    END IF;
    IF p_body ? 'week_start_day' THEN
        -- 0 = Sunday, 1 = Monday; null = the default (Sunday).
        IF jsonb_typeof(p_body->'week_start_day') = 'null' THEN
            p.week_start_day := 0;
        ELSIF p_body->>'week_start_day' IN ('0', '1') THEN
            p.week_start_day := (p_body->>'week_start_day')::smallint;
        ELSE
            PERFORM api._field_error('week_start_day', format('"%s" is not a valid choice.', p_body->>'week_start_day'),
                                     'invalid_choice');
        END IF;
    END IF;
    IF p_body ? 'test_account_filters' THEN
        p.test_account_filters := api._object_list_field(p_body, 'test_account_filters');
    END IF;
    IF p_body ? 'test_account_filters_default_checked' THEN
        p.test_account_filters_default_checked := api._bool_field(p_body, 'test_account_filters_default_checked');
    END IF;
    IF p_body ? 'path_cleaning_filters' THEN
        p.path_cleaning_filters := api._object_list_field(p_body, 'path_cleaning_filters');
        PERFORM api._check_path_cleaning(p.path_cleaning_filters);
    END IF;
    IF p_body ? 'person_display_name_properties' THEN
        p.person_display_name_properties := api._string_list_field(p_body, 'person_display_name_properties', true);
    END IF;
    IF p_body ? 'data_attributes' THEN
        p.data_attributes := api._string_list_field(p_body, 'data_attributes', false);
    END IF;
    UPDATE insights.projects t
       SET name = p.name, timezone = p.timezone, week_start_day = p.week_start_day,
           test_account_filters = p.test_account_filters,
           test_account_filters_default_checked = p.test_account_filters_default_checked,
           path_cleaning_filters = p.path_cleaning_filters,
           person_display_name_properties = p.person_display_name_properties,
           data_attributes = p.data_attributes, updated_at = now()
     WHERE t.id = p.id
    RETURNING * INTO p;
    RETURN p;
END $$;

-- GET | PATCH | PUT /api/projects/:id/ (PUT takes the same partial body as PATCH: every field
-- has a value already, so nothing is required).
CREATE FUNCTION api.h_project(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    IF api._method() IN ('PATCH', 'PUT') THEN
        RETURN api._project_json(api._project_update(p_body))::json;
    END IF;
    RETURN api._project_json(api._project())::json;
END $$;
