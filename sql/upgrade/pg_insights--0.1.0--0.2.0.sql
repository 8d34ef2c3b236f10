-- pg_insights 0.1.0 → 0.2.0: the columnar projection of insights.events (sql/segments.sql,
-- docs/segments.md), insights.explain and the aggregate insights._actor_entries.

-- Segments: a columnar projection of insights.events (docs/segments.md).
--
-- One row per (project, UTC day) holds that day's events sorted by time as compressed columns
-- (src/segments.rs encodes them): timestamps, persons, and one dictionary-id column per
-- dictionary column (`event` and every materialised property) in insights.event_segment_columns.
-- The engines read clean segments instead of the heap where a query allows it
-- (`pg_insights.use_segments`), and the heap for every other day, so an answer is the heap's.
--
-- Exact at every commit: a write to a day that may have a segment marks it dirty in the same
-- transaction (statement-level triggers below), and readers use clean segments only. The
-- background worker (insights.seal_segments) builds a day once it is closed: at least two UTC
-- days old, and no transaction still running that began before the day's end (such a writer
-- could still add events to it without marking it, as the insert trigger only marks days that
-- were closed when the writer's transaction began). Building locks the day's row first, so a
-- writer's mark waits for the build and lands after it, or the build waits for the writer.
-- Person merges rewrite events.person_id (an UPDATE): the days they touch are rebuilt, there is
-- no read-time override map. Days are UTC days, so a project's timezone never dirties them.
CREATE TABLE insights.event_segments (
    project_id  bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    day         date NOT NULL,
    -- A dirty segment (or a day marked before its first build) is never read.
    dirty       boolean NOT NULL DEFAULT true,
    events      integer NOT NULL DEFAULT 0,
    -- Dictionary columns present (`event` and the materialised columns at build time).
    columns     text[] NOT NULL DEFAULT '{}',
    ts          bytea,  -- Unix microseconds, sorted, zigzag varint deltas
    persons     bytea,  -- the day's distinct person ids, sorted, i64 little endian
    person_ix   bytea,  -- per event: u32 index into persons
    heap_bytes  bigint NOT NULL DEFAULT 0,  -- the day's rows in the heap (pg_column_size sum)
    built_at    timestamptz,
    PRIMARY KEY (project_id, day)
);
COMMENT ON TABLE insights.event_segments IS
  'Columnar projection of insights.events, one row per (project, UTC day); built by the background worker (insights.seal_segments), read by the engines when pg_insights.use_segments is on.';

CREATE TABLE insights.event_segment_columns (
    project_id   bigint NOT NULL,
    day          date NOT NULL,
    column_name  text NOT NULL,
    ids          bytea NOT NULL,  -- per event: u32 id in insights.segment_dict (0 = NULL)
    PRIMARY KEY (project_id, day, column_name),
    FOREIGN KEY (project_id, day) REFERENCES insights.event_segments ON DELETE CASCADE
);

-- The builder's queue: dirty rows (writers mark them; seal_segments reads them first).
CREATE INDEX event_segments_dirty ON insights.event_segments (project_id, day) WHERE dirty;

-- Per project and column, every value ever sealed gets a small id (1, 2, …).
CREATE TABLE insights.segment_dict (
    project_id   bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    column_name  text NOT NULL,
    id           integer NOT NULL CHECK (id > 0),
    value        text NOT NULL,
    PRIMARY KEY (project_id, column_name, id),
    UNIQUE (project_id, column_name, value)
);

-- Per project, the last day the worker has looked at for new segments.
CREATE TABLE insights.segment_progress (
    project_id      bigint PRIMARY KEY REFERENCES insights.projects ON DELETE CASCADE,
    sealed_through  date NOT NULL
);

-- lz4 decompresses several times faster than pglz at a similar ratio on these columns
-- (docs/segments.md#storage).
ALTER TABLE insights.event_segments ALTER COLUMN ts SET COMPRESSION lz4,
    ALTER COLUMN persons SET COMPRESSION lz4, ALTER COLUMN person_ix SET COMPRESSION lz4;
ALTER TABLE insights.event_segment_columns ALTER COLUMN ids SET COMPRESSION lz4;

-- New events: only days already closed when the transaction began can have a segment (or get
-- one while this transaction runs: the builder waits for such transactions). Rows are marked in
-- key order, so concurrent writers and the builder lock shared rows in one order.
CREATE FUNCTION insights._segments_on_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO insights.event_segments AS s (project_id, day, dirty)
    SELECT DISTINCT n.project_id, (n."timestamp" AT TIME ZONE 'UTC')::date, true
      FROM new_rows n
     WHERE n."timestamp" < date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
     ORDER BY 1, 2
    ON CONFLICT (project_id, day) DO UPDATE SET dirty = true;
    RETURN NULL;
END $$;

-- Updated (merges rewrite person_id) or deleted events: every day they were or are in.
CREATE FUNCTION insights._segments_on_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO insights.event_segments AS s (project_id, day, dirty)
        SELECT k.project_id, k.day, true FROM (
            SELECT project_id, ("timestamp" AT TIME ZONE 'UTC')::date AS day FROM old_rows
            UNION
            SELECT project_id, ("timestamp" AT TIME ZONE 'UTC')::date FROM new_rows) k
         WHERE EXISTS (SELECT 1 FROM insights.projects p WHERE p.id = k.project_id)
         ORDER BY 1, 2
        ON CONFLICT (project_id, day) DO UPDATE SET dirty = true;
    ELSE
        INSERT INTO insights.event_segments AS s (project_id, day, dirty)
        -- A deleted project's events go by cascade after its row (and its segments with it).
        SELECT DISTINCT o.project_id, (o."timestamp" AT TIME ZONE 'UTC')::date, true FROM old_rows o
         WHERE EXISTS (SELECT 1 FROM insights.projects p WHERE p.id = o.project_id)
         ORDER BY 1, 2
        ON CONFLICT (project_id, day) DO UPDATE SET dirty = true;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION insights._segments_on_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM insights.event_segments;
    DELETE FROM insights.segment_progress;
    RETURN NULL;
END $$;

CREATE TRIGGER segments_insert AFTER INSERT ON insights.events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION insights._segments_on_insert();
CREATE TRIGGER segments_update AFTER UPDATE ON insights.events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION insights._segments_on_change();
CREATE TRIGGER segments_delete AFTER DELETE ON insights.events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION insights._segments_on_change();
CREATE TRIGGER segments_truncate AFTER TRUNCATE ON insights.events
    FOR EACH STATEMENT EXECUTE FUNCTION insights._segments_on_truncate();

-- A dropped materialised column: its segment columns and values go (a later column of the same
-- name may hold another property).
CREATE FUNCTION insights._segments_on_dematerialize() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM insights.event_segment_columns WHERE column_name = OLD.column_name;
    DELETE FROM insights.segment_dict WHERE column_name = OLD.column_name;
    UPDATE insights.event_segments SET columns = array_remove(columns, OLD.column_name)
     WHERE OLD.column_name = ANY (columns);
    RETURN NULL;
END $$;
CREATE TRIGGER segments_dematerialize AFTER DELETE ON insights.materialized_properties
    FOR EACH ROW EXECUTE FUNCTION insights._segments_on_dematerialize();

-- Builds one day's segment now (the worker calls it through insights.seal_segments; tests and
-- bulk loads may call it directly). Returns the number of events. The row lock comes first:
-- the build's snapshot, taken after it, sees every writer that marked the day.
CREATE FUNCTION insights.seal_segment(p_project_id bigint, p_day date) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- One builder per project at a time: builds extend the project's dictionaries.
    PERFORM pg_advisory_xact_lock(hashtextextended('pg_insights.segments', p_project_id));
    INSERT INTO insights.event_segments AS s (project_id, day, dirty) VALUES (p_project_id, p_day, true)
    ON CONFLICT (project_id, day) DO UPDATE SET dirty = true;
    RETURN insights._segment_build(p_project_id, p_day);
END $$;
COMMENT ON FUNCTION insights.seal_segment(bigint, date) IS
  'Build (or rebuild) the columnar segment of one project and UTC day from insights.events. Returns the number of events.';

-- The days a build may seal: at least two UTC days old, and older than every running
-- transaction (a writer that began before a day ended does not mark it).
CREATE FUNCTION insights._segments_horizon() RETURNS date
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_prepared_xacts) THEN '-infinity'::date
           ELSE least((clock_timestamp() AT TIME ZONE 'UTC')::date - 2,
                      (SELECT (min(a.xact_start) AT TIME ZONE 'UTC')::date - 1
                         FROM pg_stat_activity a
                        WHERE a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
                          AND a.backend_type IN ('client backend', 'background worker')))
           END
$$;

-- Seals up to p_limit days (one project, or all): dirty segments first, then each project's
-- new closed days. Each build runs in its own subtransaction: a failure is logged and skipped,
-- never half-written. Returns the number of segments built.
CREATE FUNCTION insights.seal_segments(p_project_id bigint DEFAULT NULL, p_limit integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_horizon date := insights._segments_horizon();
    v_columns text[] := insights._segment_columns();
    v_done    integer := 0;
    r         record;
    v_next    timestamptz;
    v_day     date;
BEGIN
    FOR r IN SELECT s.project_id, s.day FROM insights.event_segments s
              WHERE (p_project_id IS NULL OR s.project_id = p_project_id)
                AND (s.dirty AND s.day <= v_horizon OR NOT s.dirty AND NOT s.columns @> v_columns)
              ORDER BY 1, 2 LIMIT p_limit
    LOOP
        BEGIN
            PERFORM insights.seal_segment(r.project_id, r.day);
            v_done := v_done + 1;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'pg_insights: segment % of project % not built: %', r.day, r.project_id, SQLERRM;
        END;
    END LOOP;
    FOR r IN SELECT p.id AS project_id, g.sealed_through FROM insights.projects p
               LEFT JOIN insights.segment_progress g ON g.project_id = p.id
              WHERE (p_project_id IS NULL OR p.id = p_project_id)
                AND (g.sealed_through IS NULL OR g.sealed_through < v_horizon)
              ORDER BY 1
    LOOP
        v_day := coalesce(r.sealed_through + 1, '-infinity');
        LOOP
            EXIT WHEN v_done >= p_limit;
            SELECT min(e."timestamp") INTO v_next FROM insights.events e
             WHERE e.project_id = r.project_id AND e."timestamp" >= v_day::timestamp AT TIME ZONE 'UTC';
            IF v_next IS NULL OR (v_next AT TIME ZONE 'UTC')::date > v_horizon THEN
                v_day := v_horizon + 1;
                EXIT;
            END IF;
            v_day := (v_next AT TIME ZONE 'UTC')::date;
            IF NOT EXISTS (SELECT 1 FROM insights.event_segments s
                            WHERE s.project_id = r.project_id AND s.day = v_day AND NOT s.dirty) THEN
                BEGIN
                    PERFORM insights.seal_segment(r.project_id, v_day);
                    v_done := v_done + 1;
                EXCEPTION WHEN OTHERS THEN
                    RAISE WARNING 'pg_insights: segment % of project % not built: %', v_day, r.project_id, SQLERRM;
                END;
            END IF;
            v_day := v_day + 1;
        END LOOP;
        IF v_day - 1 > coalesce(r.sealed_through, '-infinity') AND v_day > '-infinity' THEN
            INSERT INTO insights.segment_progress AS g (project_id, sealed_through)
            VALUES (r.project_id, v_day - 1)
            ON CONFLICT (project_id) DO UPDATE SET sealed_through = greatest(g.sealed_through, excluded.sealed_through);
        END IF;
        EXIT WHEN v_done >= p_limit;
    END LOOP;
    RETURN v_done;
END $$;
COMMENT ON FUNCTION insights.seal_segments(bigint, integer) IS
  'Build up to p_limit columnar segments (dirty ones first, then new closed UTC days) of one project or all. The background worker calls it when idle. Returns the number built.';

-- The dictionary columns a segment built now holds.
CREATE FUNCTION insights._segment_columns() RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_agg(c ORDER BY c) FROM (SELECT 'event' AS c
                                         UNION ALL SELECT column_name FROM insights.materialized_properties) x
$$;

-- What the engines can read, and what it costs.
CREATE VIEW insights.segments AS
SELECT s.project_id, s.day,
       CASE WHEN s.dirty AND s.built_at IS NULL THEN 'pending'
            WHEN s.dirty THEN 'dirty' ELSE 'clean' END AS state,
       s.events, s.columns,
       coalesce(pg_column_size(s.ts), 0) + coalesce(pg_column_size(s.persons), 0)
         + coalesce(pg_column_size(s.person_ix), 0)
         + coalesce((SELECT sum(pg_column_size(c.ids)) FROM insights.event_segment_columns c
                      WHERE c.project_id = s.project_id AND c.day = s.day), 0) AS bytes,
       s.heap_bytes,
       round(s.heap_bytes::numeric / nullif(coalesce(pg_column_size(s.ts), 0) + coalesce(pg_column_size(s.persons), 0)
         + coalesce(pg_column_size(s.person_ix), 0)
         + coalesce((SELECT sum(pg_column_size(c.ids)) FROM insights.event_segment_columns c
                      WHERE c.project_id = s.project_id AND c.day = s.day), 0), 0), 1) AS compression_ratio,
       s.built_at
  FROM insights.event_segments s;
COMMENT ON VIEW insights.segments IS
  'Columnar segments: state (clean = read by the engines; dirty/pending = waiting for the worker), events, stored bytes, the heap bytes of the same rows and their ratio.';

-- src/segments.rs
CREATE FUNCTION insights."_segment_build"(
	"project_id" bigint,
	"day" date
) RETURNS INT
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', '_segment_build_wrapper';

CREATE FUNCTION insights."explain"(
	"project_id" bigint,
	"query" jsonb
) RETURNS TABLE (
	"series" INT,
	"compare" bool,
	"path" TEXT,
	"detail" TEXT
)
STRICT STABLE
LANGUAGE c
AS 'MODULE_PATHNAME', 'explain_wrapper';

-- src/engines/retention.rs: the heap part of stickiness and lifecycle answered from segments
CREATE AGGREGATE insights._actor_entries(actor int8, period int4) (
    SFUNC            = insights._actor_periods_sfunc,
    STYPE            = internal,
    COMBINEFUNC      = insights._actor_periods_combine,
    SERIALFUNC       = insights._actor_periods_serial,
    DESERIALFUNC     = insights._actor_periods_deserial,
    FINALFUNC        = insights._actor_periods_serial,
    FINALFUNC_MODIFY = READ_WRITE,
    PARALLEL         = SAFE
);
COMMENT ON AGGREGATE insights._actor_entries(int8, int4) IS
  'Internal: per actor the first period and the mask of periods 0..62, as one value (the entries in actor order); the heap part of a stickiness or lifecycle query answered from segments.';
