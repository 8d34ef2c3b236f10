-- /api/projects/:project_id/actions/… (and /api/environments/:id/actions/…): PostHog's actions
-- resource (docs/api.md#actions-and-cohorts): list (paginated, `search`), create, retrieve,
-- PATCH/PUT, soft delete with `deleted: true`; DELETE is 405 after the action:write check, as
-- PostHog's ForbidDestroyModel.
--
-- An action is a named OR of steps stored as jsonb in insights.actions.steps; the engines compile
-- the steps at query time (core/src/compile/properties.rs, `compile_entity`), so an insight that
-- references an action id uses its current definition at once, and a deleted action is "not found"
-- there (a 400 naming the series, never a 500).
--
-- Runs as pgi_api: row-level security keeps every statement inside the request's project.
-- User values travel as plpgsql variables only (bound parameters).

---------------------------------------------------------------------------------------------------
-- Steps

-- PostHog's ActionStepJSON fields, in the order its serializer returns them.
CREATE FUNCTION api._action_step_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['event', 'properties', 'selector', 'tag_name', 'text', 'text_matching',
                 'href', 'href_matching', 'url', 'url_matching']
$$;

-- One step of a request body → its stored form: every field of the serializer (absent → null),
-- validated as DRF does (CharField, ChoiceField, ListField of dicts); other keys (id, name,
-- isNew, selection) are dropped. A regex pattern must compile: the engines match with Postgres
-- regular expressions, so a bad one is a 400 here rather than at query time.
CREATE FUNCTION api._action_step(p_step jsonb, p_attr text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_out jsonb := '{}';
    v_key text;
    v jsonb;
    v_item jsonb;
    v_n integer := 0;
BEGIN
    IF jsonb_typeof(p_step) IS DISTINCT FROM 'object' THEN
        PERFORM api._field_error(p_attr, format('Invalid data. Expected a dictionary, but got %s.',
                                                CASE jsonb_typeof(p_step) WHEN 'array' THEN 'list'
                                                     WHEN 'string' THEN 'str' WHEN 'number' THEN 'int'
                                                     WHEN 'boolean' THEN 'bool' ELSE 'NoneType' END), 'invalid');
    END IF;
    FOREACH v_key IN ARRAY api._action_step_keys() LOOP
        v := p_step->v_key;
        IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
            v_out := v_out || jsonb_build_object(v_key, NULL);
        ELSIF v_key LIKE '%_matching' THEN
            IF jsonb_typeof(v) <> 'string' OR NOT (v #>> '{}') = ANY (ARRAY['contains', 'regex', 'exact']) THEN
                PERFORM api._field_error(p_attr || '__' || v_key,
                                         format('"%s" is not a valid choice.', v #>> '{}'), 'invalid_choice');
            END IF;
            v_out := v_out || jsonb_build_object(v_key, v);
        ELSIF v_key = 'properties' THEN
            IF jsonb_typeof(v) <> 'array' THEN
                PERFORM api._list_field(p_step, 'properties');
            END IF;
            FOR v_item IN SELECT x FROM jsonb_array_elements(v) AS x LOOP
                IF jsonb_typeof(v_item) <> 'object' THEN
                    PERFORM api._field_error(format('%s__properties__%s', p_attr, v_n),
                                             'Expected a dictionary of items but got type "'
                                             || CASE jsonb_typeof(v_item) WHEN 'array' THEN 'list'
                                                     WHEN 'string' THEN 'str' WHEN 'number' THEN 'int'
                                                     WHEN 'boolean' THEN 'bool' ELSE 'NoneType' END || '".',
                                             'not_a_dict');
                END IF;
                v_n := v_n + 1;
            END LOOP;
            v_out := v_out || jsonb_build_object(v_key, v);
        ELSE
            IF jsonb_typeof(v) NOT IN ('string', 'number') THEN
                PERFORM api._field_error(p_attr || '__' || v_key, 'Not a valid string.');
            END IF;
            -- DRF's CharField turns a number into its text.
            v_out := v_out || jsonb_build_object(v_key, v #>> '{}');
        END IF;
    END LOOP;
    -- The patterns the engine runs as regular expressions.
    FOREACH v_key IN ARRAY ARRAY['url', 'href', 'text'] LOOP
        IF v_out->>(v_key || '_matching') = 'regex' AND coalesce(v_out->>v_key, '') <> '' THEN
            BEGIN
                PERFORM '' ~ (v_out->>v_key);
            EXCEPTION WHEN invalid_regular_expression THEN
                PERFORM api._field_error(p_attr || '__' || v_key,
                                         format('Invalid regular expression: %s', v_out->>v_key));
            END;
        END IF;
    END LOOP;
    RETURN v_out;
END $$;

-- The `steps` field: a list of steps.
CREATE FUNCTION api._action_steps(p_body jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_steps jsonb := api._list_field(p_body, 'steps');
    v_out jsonb := '[]';
    v_step jsonb;
    v_n integer := 0;
BEGIN
    FOR v_step IN SELECT x FROM jsonb_array_elements(v_steps) AS x LOOP
        v_out := v_out || jsonb_build_array(api._action_step(v_step, format('steps__%s', v_n)));
        v_n := v_n + 1;
    END LOOP;
    -- Then as the engines compile them (CSS selectors, step property filters), so an action that
    -- is stored can always be used by an insight.
    PERFORM insights._check_action_steps(insights.request_project_id(), v_out::text);
    RETURN v_out;
END $$;

---------------------------------------------------------------------------------------------------
-- Serializer and writes

-- PostHog's ActionSerializer. The definition is applied at query time, so it is never
-- "calculating" and last_calculated_at is the time it last changed.
CREATE FUNCTION api._action_json(a insights.actions) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', a.id, 'name', a.name, 'description', a.description, 'tags', to_jsonb(a.tags),
        'post_to_slack', a.post_to_slack, 'slack_message_format', a.slack_message_format,
        'steps', a.steps, 'created_at', api._iso(a.created_at),
        'created_by', api._user_json(a.created_by), 'deleted', a.deleted,
        'is_calculating', false, 'last_calculated_at', api._iso(a.updated_at),
        'team_id', a.project_id, 'is_action', true, 'bytecode_error', NULL,
        'pinned_at', api._iso(a.pinned_at), 'creation_context', NULL, 'user_access_level', 'editor')
$$;

-- Applies a create/update body to an action row (only the fields present). Read-only and
-- unknown fields are ignored, as DRF does.
CREATE FUNCTION api._action_apply_body(a insights.actions, p_body jsonb) RETURNS insights.actions
LANGUAGE plpgsql AS $$
DECLARE
    v_other bigint;
BEGIN
    IF p_body ? 'name' THEN a.name := api._text_field(p_body, 'name', true); END IF;
    IF p_body ? 'description' THEN
        a.description := coalesce(api._text_field(p_body, 'description', true), '');
    END IF;
    IF p_body ? 'steps' THEN a.steps := api._action_steps(p_body); END IF;
    IF p_body ? 'deleted' THEN a.deleted := api._bool_field(p_body, 'deleted'); END IF;
    IF p_body ? 'post_to_slack' THEN a.post_to_slack := api._bool_field(p_body, 'post_to_slack'); END IF;
    IF p_body ? 'slack_message_format' THEN
        a.slack_message_format := coalesce(api._text_field(p_body, 'slack_message_format', true), '');
    END IF;
    IF p_body ? 'pinned_at' THEN
        IF jsonb_typeof(p_body->'pinned_at') = 'null' OR p_body->>'pinned_at' = '' THEN
            a.pinned_at := NULL;
        ELSIF jsonb_typeof(p_body->'pinned_at') = 'string'
              AND (p_body->>'pinned_at') ~ '^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$' THEN
            BEGIN
                a.pinned_at := (p_body->>'pinned_at')::timestamptz;
            EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
                PERFORM api._field_error('pinned_at', 'Datetime has wrong format.');
            END;
        ELSE
            PERFORM api._field_error('pinned_at', 'Datetime has wrong format.');
        END IF;
    END IF;
    IF p_body ? 'tags' THEN a.tags := api._tags_field(p_body); END IF;
    -- PostHog's ActionSerializer.validate: a live action's name is unique in the project.
    IF NOT a.deleted AND a.name IS NOT NULL THEN
        SELECT id INTO v_other FROM insights.actions
         WHERE name = a.name AND NOT deleted AND id IS DISTINCT FROM a.id ORDER BY id LIMIT 1;
        IF v_other IS NOT NULL THEN
            PERFORM api._field_error('name', format('This project already has an action with this name, ID %s', v_other),
                                     'unique');
        END IF;
    END IF;
    RETURN a;
END $$;

-- An action by the :id path segment (deleted ones too: PostHog hides them from the list only, so
-- a deleted action can be read and restored). RLS restricts it to the request's project.
CREATE FUNCTION api._action_by_path() RETURNS insights.actions
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id text := api._header('x-pgi-id');
    v_row insights.actions;
BEGIN
    IF v_id ~ '^\d{1,18}$' THEN
        SELECT * INTO v_row FROM insights.actions WHERE id = v_id::bigint;
    END IF;
    RETURN v_row;
END $$;

---------------------------------------------------------------------------------------------------
-- Endpoints

-- GET actions/: live actions, newest first (?search= matches the name, case-insensitively;
-- ?limit/?offset page it). POST actions/: create (action:write), 201.
CREATE FUNCTION api.h_actions(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_row insights.actions;
BEGIN
    IF api._method() = 'POST' THEN
        v_row.project_id := insights.request_project_id();
        v_row.description := '';
        v_row.steps := '[]';
        v_row.deleted := false;
        v_row.tags := '{}';
        v_row.post_to_slack := false;
        v_row.slack_message_format := '';
        v_row := api._action_apply_body(v_row, p_body);
        INSERT INTO insights.actions (project_id, name, description, steps, deleted, created_by, tags,
                                      post_to_slack, slack_message_format, pinned_at)
        VALUES (v_row.project_id, v_row.name, v_row.description, v_row.steps, v_row.deleted,
                insights.request_user_id(), v_row.tags, v_row.post_to_slack, v_row.slack_message_format,
                v_row.pinned_at)
        RETURNING * INTO v_row;
        PERFORM set_config('response.status', '201', true);
        RETURN api._action_json(v_row);
    END IF;
    RETURN api._live_page('actions', '_action_json');
END $$;

-- GET actions/:id/ (action:read); PATCH/PUT (action:write; `deleted: true` is the soft delete);
-- DELETE → 405 once the key has action:write, as PostHog's ForbidDestroyModel.
CREATE FUNCTION api.h_action(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_method text := api._method();
    v_row insights.actions;
BEGIN
    IF v_method = 'DELETE' THEN
        RETURN api._method_not_allowed();
    END IF;
    v_row := api._action_by_path();
    IF v_row.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    IF v_method IN ('PATCH', 'PUT') THEN
        v_row := api._action_apply_body(v_row, p_body);
        UPDATE insights.actions
           SET name = v_row.name, description = v_row.description, steps = v_row.steps,
               deleted = v_row.deleted, tags = v_row.tags, post_to_slack = v_row.post_to_slack,
               slack_message_format = v_row.slack_message_format, pinned_at = v_row.pinned_at,
               updated_at = now()
         WHERE id = v_row.id
        RETURNING * INTO v_row;
    END IF;
    RETURN api._action_json(v_row);
END $$;
