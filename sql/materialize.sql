-- Materialised event properties, as PostHog's `mat_$browser` columns: a hot property key gets a
-- stored generated column `properties ->> key` on insights.events and a covering index, and the
-- engines read the column wherever they need the property's text (filters, breakdowns). A DAU
-- trend broken down by `$browser` then runs as an index-only scan instead of reading and parsing
-- every event's jsonb.
--
-- Materialising rewrites insights.events (ADD COLUMN … STORED) and builds an index, under an
-- ACCESS EXCLUSIVE lock: minutes on a large table, and ingestion waits meanwhile. Each
-- materialised property makes ingestion a little slower (one more column and index entry per
-- event). Answers do not change: the column holds exactly `properties ->> key`.
CREATE TABLE insights.materialized_properties (
    property     text PRIMARY KEY CHECK (property <> '' AND length(property) <= 200),
    column_name  text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE insights.materialized_properties IS
  'Event properties with a stored column on insights.events (see insights.materialize_property).';

-- The column of a property key: `mat_` and the key with characters other than letters, digits,
-- `_` and `$` replaced by `_`, cut to fit an identifier; a suffix keeps names unique.
CREATE FUNCTION insights.materialize_property(p_property text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_base text;
    v_col  text;
    v_n    int := 1;
BEGIN
    IF p_property IS NULL OR p_property = '' OR length(p_property) > 200 THEN
        RAISE EXCEPTION 'invalid property key %', coalesce(quote_literal(p_property), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'field: property',
                  HINT = 'Pass an event property key of 1 to 200 characters, such as $browser.';
    END IF;
    SELECT column_name INTO v_col FROM insights.materialized_properties WHERE property = p_property;
    IF FOUND THEN
        RETURN v_col;  -- already materialised
    END IF;
    v_base := left('mat_' || regexp_replace(p_property, '[^A-Za-z0-9_$]', '_', 'g'), 55);
    v_col := v_base;
    WHILE EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = 'insights.events'::regclass AND attname = v_col AND NOT attisdropped) LOOP
        v_n := v_n + 1;
        v_col := v_base || '_' || v_n;
    END LOOP;
    EXECUTE format('ALTER TABLE insights.events ADD COLUMN %I text GENERATED ALWAYS AS (properties ->> %L) STORED',
                   v_col, p_property);
    -- Covering: a trend over a time range (any event, or filtered by event name) reads the person,
    -- the event and the value from the index alone.
    EXECUTE format('CREATE INDEX %I ON insights.events (project_id, "timestamp") INCLUDE (person_id, event, %I)',
                   'events_project_ts_' || v_col, v_col);
    INSERT INTO insights.materialized_properties (property, column_name) VALUES (p_property, v_col);
    RETURN v_col;
END $$;
COMMENT ON FUNCTION insights.materialize_property(text) IS
  'Materialise an event property: a stored column (properties ->> key) plus a covering index on insights.events, read by the engines instead of the jsonb. Rewrites the table. Returns the column name.';

CREATE FUNCTION insights.dematerialize_property(p_property text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_col text;
BEGIN
    DELETE FROM insights.materialized_properties WHERE property = p_property RETURNING column_name INTO v_col;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    EXECUTE format('ALTER TABLE insights.events DROP COLUMN IF EXISTS %I', v_col);  -- drops its index too
    RETURN true;
END $$;
COMMENT ON FUNCTION insights.dematerialize_property(text) IS
  'Drop a materialised event property''s column and index; the engines read the jsonb again. Returns false when it was not materialised.';
