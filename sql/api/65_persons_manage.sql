-- Persons management (issue 15 item 4), under /api/projects/:id/ and /api/environments/:id/:
--   persons/activity/, persons/:id/activity/      activity log of persons (activity_log:read)
--   persons/cohorts/?person_id=                   the cohorts containing a person (person:read + cohort:read)
--   persons/bulk_delete/                          delete up to 1000 persons and/or their events (person:write)
--   persons/reset_person_distinct_id/             detach a distinct id from its person (person:write)
--   persons/:id/ PATCH | DELETE                   change properties; delete (person:write)
--   persons/:id/update_property/, delete_property/, split/   (person:write)
-- The list filters (search, properties, distinct_id, email, format=csv) are api.h_persons's
-- (30_persons.sql). Writes run as pgi_api under row-level security (the policies keep every row
-- inside the request's project), in the request's one transaction: any error rolls all back.
-- The person-days rollup follows event deletes and moves through its triggers, materialised
-- property columns are generated columns, so both stay exact; cached insight results of the
-- project are dropped when events are deleted or moved.

GRANT INSERT, UPDATE, DELETE ON insights.persons, insights.person_distinct_ids TO pgi_api;
GRANT DELETE, UPDATE (person_id) ON insights.events TO pgi_api;
GRANT DELETE ON insights.query_cache TO pgi_api;

-- The person of the path's :id (numeric id or uuid), or NULL (also for another project's person:
-- row-level security hides it).
CREATE FUNCTION api._person_by_ref(p_ref text) RETURNS insights.persons
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v insights.persons;
BEGIN
    IF p_ref ~ '^\d{1,18}$' THEN
        SELECT * INTO v FROM insights.persons WHERE id = p_ref::bigint;
    ELSIF p_ref ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        SELECT * INTO v FROM insights.persons WHERE uuid = p_ref::uuid;
    END IF;
    RETURN v;
END $$;

-- One activity entry of a person by the request's user.
CREATE FUNCTION api._person_log(p insights.persons, p_activity text, p_changes jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO insights.activity_log (project_id, user_id, scope, item_id, activity, detail)
    VALUES (p.project_id, insights.request_user_id(), 'Person', p.id::text, p_activity,
            jsonb_build_object('id', p.id::text, 'name', p.uuid::text, 'short_id', NULL, 'type', NULL,
                               'trigger', NULL, 'merge', NULL, 'changes', p_changes))
$$;

-- Person property changes as PostHog's activity changes.
CREATE FUNCTION api._person_changes(p_before jsonb, p_after jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('type', 'Person', 'action', 'changed', 'field', k,
                                                 'before', p_before->k, 'after', p_after->k) ORDER BY k), '[]')
      FROM (SELECT jsonb_object_keys(p_before) AS k UNION SELECT jsonb_object_keys(p_after)) keys
     WHERE p_before->k IS DISTINCT FROM p_after->k
$$;

-- Sets a person's properties and logs what changed. Returns the updated row.
CREATE FUNCTION api._person_set_properties(p insights.persons, p_properties jsonb) RETURNS insights.persons
LANGUAGE plpgsql AS $$
DECLARE
    v insights.persons;
BEGIN
    IF p.properties = p_properties THEN
        RETURN p;
    END IF;
    UPDATE insights.persons SET properties = p_properties, version = version + 1
     WHERE id = p.id RETURNING * INTO v;
    PERFORM api._person_log(v, 'updated', api._person_changes(p.properties, p_properties));
    RETURN v;
END $$;

---------------------------------------------------------------------------------------------------
-- Deleting persons and events

-- Deletes the given persons' events captured before this request (not later ones), and, unless
-- p_keep_person, the persons themselves (their distinct ids and static cohort memberships go by
-- cascade), logging each deletion. Returns the number of persons touched.
CREATE FUNCTION api._delete_persons(p_ids bigint[], p_delete_events boolean, p_keep_person boolean)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    SELECT count(*) INTO v_n FROM insights.persons WHERE id = ANY (p_ids);
    IF p_delete_events THEN
        DELETE FROM insights.events
         WHERE project_id = insights.request_project_id() AND person_id = ANY (p_ids)
           AND created_at <= now();
        DELETE FROM insights.query_cache WHERE project_id = insights.request_project_id();
    END IF;
    IF NOT p_keep_person THEN
        PERFORM api._person_log(p, 'deleted', NULL)
           FROM insights.persons p WHERE p.id = ANY (p_ids);
        DELETE FROM insights.persons WHERE id = ANY (p_ids);
    END IF;
    RETURN v_n;
END $$;

-- A boolean option from the body, else the query string (PostHog's delete_events, keep_person).
CREATE FUNCTION api._bool_option(p_body jsonb, p_name text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF p_body ? p_name THEN
        RETURN api._bool_field(p_body, p_name);
    ELSIF api._query() ? p_name THEN
        RETURN api._bool_field(api._query(), p_name);
    END IF;
    RETURN false;
END $$;

-- An id list option: a JSON list, or (query string) a JSON-encoded or comma-separated list.
CREATE FUNCTION api._id_list(p_body jsonb, p_name text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := coalesce(p_body->p_name, api._query()->p_name);
BEGIN
    IF jsonb_typeof(v) = 'string' THEN
        v := CASE WHEN v #>> '{}' ~ '^\s*\[' THEN (v #>> '{}')::jsonb
                  ELSE to_jsonb(string_to_array(v #>> '{}', ',')) END;
    END IF;
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    ELSIF jsonb_typeof(v) <> 'array' OR EXISTS (SELECT 1 FROM jsonb_array_elements(v) x
                                                  WHERE jsonb_typeof(x) NOT IN ('string', 'number')) THEN
        PERFORM api._field_error(p_name, 'Expected a list of ids.', 'not_a_list');
    ELSIF jsonb_array_length(v) > 1000 THEN
        PERFORM api._field_error(p_name, 'You can only pass 1000 ids at a time.', 'max_length');
    END IF;
    RETURN ARRAY(SELECT x #>> '{}' FROM jsonb_array_elements(v) x);
END $$;

-- POST persons/bulk_delete/ {"ids": [...]} (person ids or uuids) or {"distinct_ids": [...]},
-- delete_events, keep_person (body or query string) → 202, no body. Unknown ids are skipped.
CREATE FUNCTION api.h_persons_bulk_delete(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_ids text[] := api._id_list(p_body, 'ids');
    v_dids text[] := api._id_list(p_body, 'distinct_ids');
    v_persons bigint[];
BEGIN
    IF coalesce(cardinality(v_ids), 0) = 0 AND coalesce(cardinality(v_dids), 0) = 0 THEN
        PERFORM api._field_error('ids', 'You need to specify either ids or distinct_ids', 'required');
    END IF;
    IF cardinality(v_ids) > 0 THEN
        v_persons := ARRAY(SELECT (api._person_by_ref(r)).id FROM unnest(v_ids) r);
    ELSE
        v_persons := ARRAY(SELECT DISTINCT d.person_id FROM insights.person_distinct_ids d
                            WHERE d.distinct_id = ANY (v_dids));
    END IF;
    v_persons := array_remove(v_persons, NULL);
    PERFORM api._delete_persons(v_persons, api._bool_option(p_body, 'delete_events'),
                                api._bool_option(p_body, 'keep_person'));
    PERFORM set_config('response.status', '202', true);
    RETURN NULL;
END $$;

-- POST persons/reset_person_distinct_id/ {"distinct_id": "…"} → 202: the distinct id no longer
-- belongs to its person, so its next event makes a new person. Its past events stay with the old
-- person (they happened as that person).
CREATE FUNCTION api.h_persons_reset_distinct_id(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_did text := CASE WHEN jsonb_typeof(p_body->'distinct_id') = 'string' THEN p_body->>'distinct_id' END;
    v_person insights.persons;
    v_before jsonb;
BEGIN
    IF coalesce(v_did, '') = '' THEN
        PERFORM api._field_error('distinct_id', 'distinct_id is required', 'required');
    END IF;
    SELECT p.* INTO v_person FROM insights.persons p
      JOIN insights.person_distinct_ids d ON d.person_id = p.id AND d.distinct_id = v_did;
    IF v_person.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    SELECT jsonb_agg(distinct_id ORDER BY distinct_id) INTO v_before
      FROM insights.person_distinct_ids WHERE person_id = v_person.id;
    DELETE FROM insights.person_distinct_ids WHERE distinct_id = v_did AND person_id = v_person.id;
    PERFORM api._person_log(v_person, 'distinct_id_reset', jsonb_build_array(jsonb_build_object(
        'type', 'Person', 'action', 'changed', 'field', 'distinct_ids', 'before', v_before,
        'after', coalesce(v_before - v_did, '[]'))));
    PERFORM set_config('response.status', '202', true);
    RETURN NULL;
END $$;

---------------------------------------------------------------------------------------------------
-- One person: PATCH, DELETE (api.h_person, 30_persons.sql, sends them here), properties, split

-- PATCH persons/:id/ {"properties": {...}}: the given keys are set (as $set), others kept.
CREATE FUNCTION api._person_patch(p insights.persons, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    IF p_body ? 'properties' AND jsonb_typeof(p_body->'properties') <> 'object' THEN
        PERFORM api._field_error('properties', 'Expected a dictionary of items.', 'not_a_dict');
    END IF;
    IF p_body ? 'properties' THEN
        p := api._person_set_properties(p, p.properties || (p_body->'properties'));
    END IF;
    RETURN api._person_json(p)::json;
END $$;

-- DELETE persons/:id/?delete_events=true → 202.
CREATE FUNCTION api._person_delete(p insights.persons, p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM api._delete_persons(ARRAY[p.id], api._bool_option(p_body, 'delete_events'), false);
    PERFORM set_config('response.status', '202', true);
    RETURN NULL;
END $$;

-- POST persons/:id/update_property/ {"key", "value"} → 202.
CREATE FUNCTION api.h_person_update_property(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    p insights.persons := api._person_by_ref(api._header('x-pgi-id'));
BEGIN
    IF p.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    IF jsonb_typeof(p_body->'key') IS DISTINCT FROM 'string' OR p_body->>'key' = '' THEN
        PERFORM api._field_error('key', 'This field is required.', 'required');
    END IF;
    IF NOT p_body ? 'value' THEN
        PERFORM api._field_error('value', 'This field is required.', 'required');
    END IF;
    PERFORM api._person_set_properties(p, p.properties || jsonb_build_object(p_body->>'key', p_body->'value'));
    PERFORM set_config('response.status', '202', true);
    RETURN NULL;
END $$;

-- POST persons/:id/delete_property/ {"$unset": "key"} → 201.
CREATE FUNCTION api.h_person_delete_property(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    p insights.persons := api._person_by_ref(api._header('x-pgi-id'));
BEGIN
    IF p.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    IF jsonb_typeof(p_body->'$unset') IS DISTINCT FROM 'string' THEN
        PERFORM api._field_error('$unset', 'This field is required.', 'required');
    END IF;
    PERFORM api._person_set_properties(p, p.properties - (p_body->>'$unset'));
    PERFORM set_config('response.status', '201', true);
    RETURN NULL;
END $$;

-- POST persons/:id/split/ {"main_distinct_id"?} → 201 {"success": true}. Every distinct id but the
-- main one gets a new person (no properties, created at its first event) and takes its events
-- along; without main_distinct_id the first distinct id stays and the person's properties are
-- cleared, as PostHog's split_person.
CREATE FUNCTION api.h_person_split(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    p insights.persons := api._person_by_ref(api._header('x-pgi-id'));
    v_ids text[];
    v_main text;
    v_did text;
    v_new bigint;
BEGIN
    IF p.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    v_ids := ARRAY(SELECT distinct_id FROM insights.person_distinct_ids WHERE person_id = p.id ORDER BY distinct_id);
    v_main := CASE WHEN jsonb_typeof(p_body->'main_distinct_id') = 'string' THEN p_body->>'main_distinct_id' END;
    IF v_main IS NOT NULL AND NOT v_main = ANY (v_ids) THEN
        PERFORM api._field_error('main_distinct_id', 'main_distinct_id is not a distinct id of this person.');
    END IF;
    IF v_main IS NULL AND cardinality(v_ids) > 1 THEN
        v_main := v_ids[1];
        UPDATE insights.persons SET properties = '{}', version = version + 1 WHERE id = p.id;
    END IF;
    FOREACH v_did IN ARRAY v_ids LOOP
        CONTINUE WHEN v_did = v_main;
        INSERT INTO insights.persons (project_id, created_at)
        VALUES (p.project_id, coalesce((SELECT min("timestamp") FROM insights.events
                                         WHERE project_id = p.project_id AND person_id = p.id
                                           AND distinct_id = v_did), now()))
        RETURNING id INTO v_new;
        UPDATE insights.person_distinct_ids SET person_id = v_new WHERE person_id = p.id AND distinct_id = v_did;
        UPDATE insights.events SET person_id = v_new
         WHERE project_id = p.project_id AND person_id = p.id AND distinct_id = v_did;
    END LOOP;
    IF cardinality(v_ids) > 1 THEN
        -- The person is now as old as its first remaining event (lifecycle's "new" reads it).
        UPDATE insights.persons SET created_at = coalesce(
                   (SELECT min("timestamp") FROM insights.events WHERE project_id = p.project_id AND person_id = p.id),
                   created_at)
         WHERE id = p.id;
        DELETE FROM insights.query_cache WHERE project_id = p.project_id;
        PERFORM api._person_log(p, 'split_person', jsonb_build_array(jsonb_build_object(
            'type', 'Person', 'action', 'split', 'field', NULL, 'before', NULL,
            'after', jsonb_build_object('distinct_ids', to_jsonb(v_ids)))));
    END IF;
    PERFORM set_config('response.status', '201', true);
    RETURN json_build_object('success', true);
END $$;

---------------------------------------------------------------------------------------------------
-- Activity and cohorts

-- GET persons/activity/ and persons/:id/activity/ (the log survives the person's deletion).
CREATE FUNCTION api.h_persons_activity(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_ref text := api._header('x-pgi-id');
    p insights.persons;
BEGIN
    IF coalesce(v_ref, '') = '' THEN
        RETURN api._activity_page('Person', NULL);
    END IF;
    p := api._person_by_ref(v_ref);
    IF p.id IS NOT NULL THEN
        RETURN api._activity_page('Person', p.id::text);
    ELSIF v_ref ~ '^\d{1,18}$' AND EXISTS (SELECT 1 FROM insights.activity_log
                                             WHERE scope = 'Person' AND item_id = v_ref) THEN
        RETURN api._activity_page('Person', v_ref);
    END IF;
    RETURN api._not_found();
END $$;
CREATE FUNCTION api.h_person_activity(p_body jsonb) RETURNS json
LANGUAGE sql AS $$ SELECT api.h_persons_activity(p_body) $$;

-- GET persons/cohorts/?person_id= (id or uuid) → {"results": [cohort, ...]} by id.
CREATE FUNCTION api.h_persons_cohorts(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_auth json := api._authenticate('cohort:read', p_body);  -- PostHog needs both scopes here
    v_ref text := api._query()->>'person_id';
    p insights.persons;
BEGIN
    IF v_auth IS NOT NULL THEN
        RETURN v_auth;
    END IF;
    IF coalesce(v_ref, '') = '' THEN
        PERFORM api._field_error('person_id', 'This field is required.', 'required');
    END IF;
    p := api._person_by_ref(v_ref);
    IF p.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    -- Cohort membership as insights evaluate it (insights.person_cohort_ids, src/cohorts.rs).
    RETURN json_build_object('results', coalesce((
        SELECT jsonb_agg(api._cohort_json(c) ORDER BY c.id)
          FROM insights.cohorts c
         WHERE c.id IN (SELECT insights.person_cohort_ids(p.project_id, p.id))), '[]'));
END $$;

-- persons/?properties=[...]: the persons matching PostHog person property (and cohort) filters,
-- by the engine's filter compiler over the persons' events (a filter without a type is a person
-- filter, as on PostHog's persons list). Persons without events never match.
CREATE FUNCTION api._persons_matching(p_properties jsonb) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := p_properties;
    v_msg text;
    v_detail text;
    v_hint text;
BEGIN
    IF jsonb_typeof(v) = 'string' THEN
        BEGIN
            v := (v #>> '{}')::jsonb;
        EXCEPTION WHEN invalid_text_representation THEN
            PERFORM api._field_error('properties', 'Properties are unparsable!', 'invalid');
        END;
    END IF;
    IF jsonb_typeof(v) = 'array' THEN
        v := (SELECT coalesce(jsonb_agg(CASE WHEN jsonb_typeof(x) = 'object' AND NOT x ? 'type'
                                             THEN x || '{"type": "person"}' ELSE x END ORDER BY n), '[]')
                FROM jsonb_array_elements(v) WITH ORDINALITY a(x, n));
    END IF;
    RETURN ARRAY(SELECT a::bigint FROM insights.trend_actors(insights.request_project_id(), jsonb_build_object(
        'insight', 'TRENDS', 'events', jsonb_build_array(jsonb_build_object('id', NULL)),
        'date_from', 'all', 'properties', v)) a);
EXCEPTION WHEN invalid_parameter_value THEN
    -- The engine names the field inside its filter (properties__properties__0__…): name it as
    -- the query parameter's (properties__0__…).
    GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    RAISE EXCEPTION '%', v_msg USING ERRCODE = 'invalid_parameter_value',
        DETAIL = regexp_replace(coalesce(v_detail, ''), '^field: properties__properties(__|\M)', 'field: properties\1'),
        HINT = coalesce(v_hint, '');
END $$;
