-- Ingestion with PostHog person semantics.
--
-- insights.capture_batch(project, events jsonb[, sent_at]) stores one batch in one transaction:
-- every event is validated before anything is written, so a bad event rejects the whole batch
-- (SQLSTATE 22023/22007, with the event's index in the message) and nothing is half-written.
--
-- Person processing follows PostHog:
--   * a new distinct id gets a new person whose created_at is its first event's timestamp;
--   * $identify (properties.$anon_distinct_id) links the anonymous id to the identified one and
--     merges the anonymous person into the identified person when it is not identified itself;
--   * $create_alias (properties.alias) links two ids the same way;
--   * $set / $set_once / $unset (top level or inside properties) update person properties in event
--     order; $groupidentify upserts a group and its $group_set properties;
--   * a merge rewrites events.person_id, so past funnels and counts see one person.
-- A re-sent event (same uuid in the same project) is skipped, person updates included.
-- Batches of one project are serialised with an advisory lock: merges and person creation then
-- never race, and batches of different projects still run in parallel.

-- Events of the batch being ingested (per session; emptied at commit).
CREATE FUNCTION insights._batch_table() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('pg_temp._pgi_batch') IS NULL THEN
        CREATE TEMP TABLE _pgi_batch (
            idx           integer PRIMARY KEY,
            uuid          uuid NOT NULL,
            event         text NOT NULL,
            distinct_id   text NOT NULL,
            ts            timestamptz NOT NULL,
            properties    jsonb NOT NULL,
            set_props     jsonb,
            set_once      jsonb,
            unset_keys    text[],
            groups        jsonb,
            elements      text NOT NULL,
            session_id    text,
            is_new        boolean NOT NULL DEFAULT true
        ) ON COMMIT DELETE ROWS;
        CREATE INDEX ON _pgi_batch (distinct_id, idx);
    END IF;
END $$;

-- A JSON number that fits an integer, else NULL (a chain's nth-child may be any digits).
CREATE FUNCTION insights._int_or_null(v jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number' AND v::text ~ '^-?\d{1,9}$' THEN v::text::integer END
$$;

-- The person that owns a distinct id, or NULL.
CREATE FUNCTION insights._person_of(p_project bigint, p_distinct_id text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT person_id FROM insights.person_distinct_ids
    WHERE project_id = p_project AND distinct_id = p_distinct_id
$$;

-- Get or create the person of a distinct id (created_at = the event's time).
CREATE FUNCTION insights._ensure_person(p_project bigint, p_distinct_id text, p_ts timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_person bigint := insights._person_of(p_project, p_distinct_id);
BEGIN
    IF v_person IS NULL THEN
        INSERT INTO insights.persons (project_id, created_at) VALUES (p_project, p_ts)
        RETURNING id INTO v_person;
        INSERT INTO insights.person_distinct_ids (project_id, distinct_id, person_id)
        VALUES (p_project, p_distinct_id, v_person);
    END IF;
    RETURN v_person;
END $$;

-- Merge person `p_from` into `p_into`: ids, events, cohorts and properties move; `p_from` goes.
-- Properties already on the surviving person win, as in PostHog.
CREATE FUNCTION insights.merge_persons(p_project bigint, p_from bigint, p_into bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_from = p_into THEN
        RETURN;
    END IF;
    UPDATE insights.person_distinct_ids SET person_id = p_into
     WHERE project_id = p_project AND person_id = p_from;
    UPDATE insights.events SET person_id = p_into
     WHERE project_id = p_project AND person_id = p_from;
    INSERT INTO insights.cohort_people (cohort_id, person_id)
    SELECT cohort_id, p_into FROM insights.cohort_people WHERE person_id = p_from
    ON CONFLICT DO NOTHING;
    UPDATE insights.persons AS t
       SET properties = f.properties || t.properties,
           created_at = least(t.created_at, f.created_at),
           is_identified = t.is_identified OR f.is_identified,
           version = t.version + 1
      FROM insights.persons AS f
     WHERE t.id = p_into AND f.id = p_from AND t.project_id = p_project AND f.project_id = p_project;
    -- The surviving person's activity log records the merge (PostHog's Detail.merge shape).
    INSERT INTO insights.activity_log (project_id, is_system, scope, item_id, activity, detail)
    SELECT p_project, true, 'Person', t.id::text, 'merged',
           jsonb_build_object('id', t.id::text, 'name', t.uuid::text, 'short_id', NULL, 'type', NULL,
                              'trigger', NULL, 'changes', NULL,
                              'merge', jsonb_build_object('type', 'Person',
                                                          'source', jsonb_build_array(jsonb_build_object('id', f.id, 'uuid', f.uuid)),
                                                          'target', jsonb_build_object('id', t.id, 'uuid', t.uuid)))
      FROM insights.persons t, insights.persons f
     WHERE t.id = p_into AND f.id = p_from;
    DELETE FROM insights.persons WHERE id = p_from AND project_id = p_project;
END $$;

-- Link two distinct ids into one person ($identify, $create_alias). `p_main` is the id that
-- survives. When both already have persons, the other person is merged in only if it is not
-- identified (or `p_force`, for $merge_dangerously).
CREATE FUNCTION insights._link_ids(p_project bigint, p_main text, p_other text, p_ts timestamptz,
                                   p_force boolean, p_identify boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_main bigint := insights._person_of(p_project, p_main);
    v_other bigint := insights._person_of(p_project, p_other);
BEGIN
    IF v_main IS NULL AND v_other IS NULL THEN
        v_main := insights._ensure_person(p_project, p_main, p_ts);
        INSERT INTO insights.person_distinct_ids (project_id, distinct_id, person_id)
        VALUES (p_project, p_other, v_main);
    ELSIF v_main IS NULL THEN
        v_main := v_other;
        INSERT INTO insights.person_distinct_ids (project_id, distinct_id, person_id)
        VALUES (p_project, p_main, v_main);
    ELSIF v_other IS NULL THEN
        INSERT INTO insights.person_distinct_ids (project_id, distinct_id, person_id)
        VALUES (p_project, p_other, v_main);
    ELSIF v_main <> v_other THEN
        IF p_force OR NOT (SELECT is_identified FROM insights.persons WHERE id = v_other) THEN
            PERFORM insights.merge_persons(p_project, v_other, v_main);
        END IF;
    END IF;
    IF p_identify THEN
        UPDATE insights.persons SET is_identified = true WHERE id = v_main AND NOT is_identified;
    END IF;
    RETURN v_main;
END $$;

-- The group type index of a group type, assigned on first sight (PostHog allows five: 0..4).
CREATE FUNCTION insights._group_type_index(p_project bigint, p_group_type text) RETURNS smallint
LANGUAGE plpgsql AS $$
DECLARE
    v_idx smallint;
BEGIN
    SELECT group_type_index INTO v_idx FROM insights.group_type_mappings
     WHERE project_id = p_project AND group_type = p_group_type;
    IF v_idx IS NULL THEN
        SELECT min(i) INTO v_idx FROM generate_series(0, 4) AS i
         WHERE i NOT IN (SELECT group_type_index FROM insights.group_type_mappings
                          WHERE project_id = p_project);
        IF v_idx IS NOT NULL THEN
            INSERT INTO insights.group_type_mappings (project_id, group_type_index, group_type)
            VALUES (p_project, v_idx, p_group_type);
        END IF;
    END IF;
    RETURN v_idx;  -- NULL once all five are taken: such groups are not tracked, as in PostHog
END $$;

CREATE FUNCTION insights._batch_error(p_idx integer, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event %: %', p_idx, p_message
        USING ERRCODE = 'invalid_parameter_value',
              DETAIL = 'field: batch',
              HINT = 'Each event needs "event" and "distinct_id"; nothing of this batch was stored.';
END $$;

-- Store a batch of PostHog events for a project. Returns the number of new events stored.
--
-- Generic plans (plan_cache_mode): the statements below all look rows up by (project, key) through
-- an index. With custom plans the planner reads the project's own statistics, and a project that
-- is newer than the last ANALYZE is estimated at one row, so the duplicate-uuid check and the
-- distinct-id joins read the whole project per batch and each batch gets slower than the last
-- (bench/results/notes_profiles_10000000.md: 5.6k → 16.8k events/s for 200 batches into a new
-- project of the 10M database). The generic plans use the indexes whatever the statistics say.
-- long: nine ordered phases (numbered below) over one batch's temp tables in one transaction, so a bad event stores nothing; split only with an upgrade script (extension SQL).
CREATE FUNCTION insights.capture_batch(p_project bigint, p_events jsonb, p_sent_at timestamptz DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    r record;
    v_person bigint;
    v_stored integer;
    v_group_map jsonb;
    v_last_identity integer;
BEGIN
    IF jsonb_typeof(p_events) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'the batch must be a JSON array of events'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'field: batch';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM insights.projects WHERE id = p_project) THEN
        RAISE EXCEPTION 'project % does not exist', p_project
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'field: project_id';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('pg_insights.capture'), p_project::integer);
    PERFORM insights._batch_table();
    TRUNCATE pg_temp._pgi_batch;

    -- 1. Validate everything before writing anything.
    FOR r IN
        SELECT i::integer AS idx, e FROM jsonb_array_elements(p_events) WITH ORDINALITY AS x(e, i)
        WHERE jsonb_typeof(e) <> 'object'
           OR coalesce(e->>'event', '') = ''
           OR coalesce(e->>'distinct_id', e->'properties'->>'distinct_id', e->>'$distinct_id', '') = ''
           OR (e ? 'properties' AND jsonb_typeof(e->'properties') NOT IN ('object', 'null'))
           OR (e ? 'uuid' AND jsonb_typeof(e->'uuid') <> 'null'
               AND e->>'uuid' !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$')
           OR (e ? 'timestamp' AND jsonb_typeof(e->'timestamp') NOT IN ('string', 'null'))
        ORDER BY 1 LIMIT 1
    LOOP
        PERFORM insights._batch_error(r.idx - 1, CASE
            WHEN jsonb_typeof(r.e) <> 'object' THEN 'not a JSON object'
            WHEN coalesce(r.e->>'event', '') = '' THEN 'missing "event"'
            WHEN coalesce(r.e->>'distinct_id', r.e->'properties'->>'distinct_id',
                          r.e->>'$distinct_id', '') = '' THEN 'missing "distinct_id"'
            WHEN r.e ? 'properties' AND jsonb_typeof(r.e->'properties') NOT IN ('object', 'null')
                THEN '"properties" must be an object'
            WHEN r.e ? 'timestamp' AND jsonb_typeof(r.e->'timestamp') NOT IN ('string', 'null')
                THEN '"timestamp" must be an ISO 8601 string'
            ELSE '"uuid" is not a UUID' END);
    END LOOP;

    -- 2. Normalise. A bad timestamp string fails the cast here (22007), before any write.
    INSERT INTO pg_temp._pgi_batch (idx, uuid, event, distinct_id, ts, properties, set_props,
                                    set_once, unset_keys, groups, elements, session_id)
    SELECT i, coalesce((e->>'uuid')::uuid, gen_random_uuid()), e->>'event',
           coalesce(e->>'distinct_id', e->'properties'->>'distinct_id', e->>'$distinct_id'),
           CASE
               -- PostHog corrects client clock skew: timestamp is taken relative to sent_at.
               WHEN e->>'timestamp' IS NOT NULL AND p_sent_at IS NOT NULL
                   THEN now() + ((e->>'timestamp')::timestamptz - p_sent_at)
               WHEN e->>'timestamp' IS NOT NULL THEN (e->>'timestamp')::timestamptz
               WHEN jsonb_typeof(e->'offset') = 'number'
                   THEN now() - make_interval(secs => (e->>'offset')::float8 / 1000)
               ELSE now()
           END,
           props,
           CASE WHEN jsonb_typeof(coalesce(e->'$set', props->'$set')) = 'object'
                THEN coalesce(e->'$set', props->'$set') END,
           CASE WHEN jsonb_typeof(coalesce(e->'$set_once', props->'$set_once')) = 'object'
                THEN coalesce(e->'$set_once', props->'$set_once') END,
           CASE jsonb_typeof(coalesce(e->'$unset', props->'$unset'))
                WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(coalesce(e->'$unset', props->'$unset')))
                WHEN 'object' THEN ARRAY(SELECT jsonb_object_keys(coalesce(e->'$unset', props->'$unset')))
           END,
           CASE WHEN jsonb_typeof(props->'$groups') = 'object' THEN props->'$groups' END,
           coalesce(props->>'$elements_chain',
                    CASE WHEN jsonb_typeof(props->'$elements') = 'array'
                         THEN insights.elements_chain_render(props->'$elements') END, ''),
           props->>'$session_id'
    FROM (SELECT i::integer AS i, e,
                 CASE WHEN jsonb_typeof(e->'properties') = 'object' THEN e->'properties'
                      ELSE '{}'::jsonb END AS props
            FROM jsonb_array_elements(p_events) WITH ORDINALITY AS x(e, i)) AS src;

    -- 3. Re-sent events (same uuid, already stored or repeated in this batch) are skipped whole.
    -- Set-based (a correlated self-lookup per row made this quadratic in the batch size).
    UPDATE pg_temp._pgi_batch b SET is_new = false
      FROM (SELECT d.idx FROM (SELECT o.idx, row_number() OVER (PARTITION BY o.uuid ORDER BY o.idx) AS n
                                 FROM pg_temp._pgi_batch o) AS d
             WHERE d.n > 1
            UNION
            SELECT o.idx FROM pg_temp._pgi_batch o
              JOIN insights.events ev ON ev.project_id = p_project AND ev.uuid = o.uuid) AS dup
     WHERE b.idx = dup.idx;

    -- 4. Identity and property events, in order (rare next to plain events, so a loop is fine).
    -- Identity depends on order: a distinct id first seen before an $identify in this batch must
    -- already have its own person when the $identify is processed. So the first event of each
    -- distinct id before the last identity event takes part in the ordered pass too.
    SELECT max(idx) INTO v_last_identity FROM pg_temp._pgi_batch
     WHERE is_new AND event IN ('$identify', '$create_alias', '$merge_dangerously');
    FOR r IN
        SELECT b.* FROM pg_temp._pgi_batch b
         WHERE b.is_new
           AND (b.event IN ('$identify', '$create_alias', '$merge_dangerously', '$groupidentify')
                OR b.set_props IS NOT NULL OR b.set_once IS NOT NULL OR b.unset_keys IS NOT NULL
                OR (b.idx < v_last_identity
                    AND b.idx = (SELECT min(o.idx) FROM pg_temp._pgi_batch o
                                  WHERE o.distinct_id = b.distinct_id AND o.is_new)))
         ORDER BY b.idx
    LOOP
        IF r.event = '$identify' AND coalesce(r.properties->>'$anon_distinct_id', '') NOT IN ('', r.distinct_id) THEN
            v_person := insights._link_ids(p_project, r.distinct_id, r.properties->>'$anon_distinct_id', r.ts, false, true);
        ELSIF r.event IN ('$create_alias', '$merge_dangerously')
              AND coalesce(r.properties->>'alias', '') NOT IN ('', r.distinct_id) THEN
            v_person := insights._link_ids(p_project, r.distinct_id, r.properties->>'alias', r.ts,
                                           r.event = '$merge_dangerously', false);
        ELSE
            v_person := insights._ensure_person(p_project, r.distinct_id, r.ts);
            IF r.event = '$identify' THEN
                UPDATE insights.persons SET is_identified = true WHERE id = v_person AND NOT is_identified;
            END IF;
        END IF;

        IF r.set_props IS NOT NULL OR r.set_once IS NOT NULL OR r.unset_keys IS NOT NULL THEN
            UPDATE insights.persons
               SET properties = (coalesce(r.set_once, '{}') || properties || coalesce(r.set_props, '{}'))
                                - coalesce(r.unset_keys, '{}'),
                   version = version + 1
             WHERE id = v_person;
        END IF;

        IF r.event = '$groupidentify' AND coalesce(r.properties->>'$group_type', '') <> ''
           AND coalesce(r.properties->>'$group_key', '') <> '' THEN
            INSERT INTO insights.groups AS g (project_id, group_type_index, group_key, properties, created_at)
            SELECT p_project, gi, r.properties->>'$group_key',
                   CASE WHEN jsonb_typeof(r.properties->'$group_set') = 'object'
                        THEN r.properties->'$group_set' ELSE '{}' END, r.ts
              FROM insights._group_type_index(p_project, r.properties->>'$group_type') AS gi
             WHERE gi IS NOT NULL
            ON CONFLICT (project_id, group_type_index, group_key) DO UPDATE
               SET properties = g.properties || EXCLUDED.properties,
                   created_at = least(g.created_at, EXCLUDED.created_at);
        END IF;
    END LOOP;

    -- 5. Every other new distinct id gets its own person, created at its first event.
    WITH fresh AS (
        SELECT b.distinct_id, min(b.ts) AS first_ts, gen_random_uuid() AS person_uuid
          FROM pg_temp._pgi_batch b
         WHERE b.is_new
           AND NOT EXISTS (SELECT 1 FROM insights.person_distinct_ids d
                            WHERE d.project_id = p_project AND d.distinct_id = b.distinct_id)
         GROUP BY b.distinct_id
    ), made AS (
        INSERT INTO insights.persons (project_id, uuid, created_at)
        SELECT p_project, person_uuid, first_ts FROM fresh
        RETURNING id, uuid
    )
    INSERT INTO insights.person_distinct_ids (project_id, distinct_id, person_id)
    SELECT p_project, f.distinct_id, m.id FROM fresh f JOIN made m ON m.uuid = f.person_uuid;

    -- 6. Group keys: $groups {type: key} → group_N columns, creating type mappings on first sight.
    PERFORM insights._group_type_index(p_project, t)
       FROM (SELECT DISTINCT jsonb_object_keys(groups) AS t FROM pg_temp._pgi_batch
              WHERE is_new AND groups IS NOT NULL) AS types;
    SELECT coalesce(jsonb_object_agg(group_type, group_type_index), '{}') INTO v_group_map
      FROM insights.group_type_mappings WHERE project_id = p_project;

    -- 7. The events themselves, with their (final) person.
    INSERT INTO insights.events (project_id, uuid, event, distinct_id, person_id, "timestamp",
                                 properties, elements_chain, session_id,
                                 group_0, group_1, group_2, group_3, group_4)
    SELECT p_project, b.uuid, b.event, b.distinct_id, d.person_id, b.ts, b.properties, b.elements,
           b.session_id,
           CASE WHEN b.groups IS NULL THEN '' ELSE coalesce(insights._group_key(b.groups, v_group_map, 0), '') END,
           CASE WHEN b.groups IS NULL THEN '' ELSE coalesce(insights._group_key(b.groups, v_group_map, 1), '') END,
           CASE WHEN b.groups IS NULL THEN '' ELSE coalesce(insights._group_key(b.groups, v_group_map, 2), '') END,
           CASE WHEN b.groups IS NULL THEN '' ELSE coalesce(insights._group_key(b.groups, v_group_map, 3), '') END,
           CASE WHEN b.groups IS NULL THEN '' ELSE coalesce(insights._group_key(b.groups, v_group_map, 4), '') END
      FROM pg_temp._pgi_batch b
      JOIN insights.person_distinct_ids d ON d.project_id = p_project AND d.distinct_id = b.distinct_id
     WHERE b.is_new
     ORDER BY b.idx
    ON CONFLICT (project_id, uuid) DO NOTHING;
    GET DIAGNOSTICS v_stored = ROW_COUNT;

    -- 8. A person is created at its first event, even when an earlier event arrives later.
    UPDATE insights.persons p SET created_at = f.first_ts
      FROM (SELECT d.person_id, min(b.ts) AS first_ts
              FROM pg_temp._pgi_batch b
              JOIN insights.person_distinct_ids d
                ON d.project_id = p_project AND d.distinct_id = b.distinct_id
             WHERE b.is_new GROUP BY d.person_id) AS f
     WHERE p.id = f.person_id AND f.first_ts < p.created_at;

    -- 9. The chain store: each new chain once per project under PostHog's chain hash, with its
    -- parsed elements. The parser never raises, so a malformed chain is stored as given.
    WITH stored AS (
        INSERT INTO insights.element_chains (project_id, hash, chain)
        SELECT p_project, insights.elements_chain_hash(c.chain), c.chain
          FROM (SELECT DISTINCT b.elements AS chain FROM pg_temp._pgi_batch b
                 WHERE b.is_new AND b.elements <> '') AS c
        ON CONFLICT DO NOTHING
        RETURNING hash, chain
    )
    INSERT INTO insights.elements (project_id, chain_hash, "order", tag_name, text, href, attr_id,
                                   attr_class, nth_child, nth_of_type, attributes)
    SELECT p_project, s.hash, (el->>'order')::integer, el->>'tag_name', el->>'text', el->>'href',
           el->>'attr_id',
           CASE WHEN jsonb_typeof(el->'attr_class') = 'array'
                THEN ARRAY(SELECT jsonb_array_elements_text(el->'attr_class')) END,
           insights._int_or_null(el->'nth_child'), insights._int_or_null(el->'nth_of_type'),
           el->'attributes'
      FROM stored s, jsonb_array_elements(insights.elements_chain_parse(s.chain)) AS el;

    RETURN v_stored;
END $$;

-- The key of group type index `p_idx` in an event's $groups, via the project's type mapping.
CREATE FUNCTION insights._group_key(p_groups jsonb, p_map jsonb, p_idx integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT g.value FROM jsonb_each_text(p_groups) AS g
     WHERE (p_map->>g.key)::integer = p_idx LIMIT 1
$$;

-- Ingest by project token, as the capture endpoints do. Unknown token: SQLSTATE 28000.
CREATE FUNCTION insights.capture(p_token text, p_events jsonb, p_sent_at timestamptz DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_project bigint;
BEGIN
    SELECT id INTO v_project FROM insights.projects WHERE api_token = p_token;
    IF v_project IS NULL THEN
        RAISE EXCEPTION 'Project API key invalid. You can find your project API key in your project settings.'
            USING ERRCODE = 'invalid_authorization_specification', DETAIL = 'field: api_key';
    END IF;
    RETURN insights.capture_batch(v_project, p_events, p_sent_at);
END $$;
