-- Person-days: a rollup of insights.events with one row per (project, person, day in the
-- project's timezone) on which the person did anything, and how many events that was.
--
-- Why: retention over "All events" needs every person's first event over all history and every
-- day they came back, which is one pass over every event of the project (10M index entries in
-- the benchmark). Those are 1.2M person-days there, so the retention engine reads this table
-- instead whenever the answer cannot differ: both entities are "All events" without
-- properties, no global or test-account filter, persons (not groups), periods of whole days
-- (Day, Week, Month) and no breakdown (core/src/retention.rs, `rollup_eligible`). Setting
-- `pg_insights.use_rollups = off` makes every query read the events (an A/B switch for tests
-- and benchmarks).
--
-- The rollup is exact at every commit: statement-level triggers with transition tables fold
-- each INSERT, UPDATE (person merges rewrite person_id), DELETE and TRUNCATE on insights.events
-- into it in the same transaction, and changing a project's timezone rebuilds that project's
-- rows. Bulk loads may disable the triggers (`ALTER TABLE insights.events DISABLE TRIGGER
-- USER`) and call insights.rebuild_person_days(project_id) afterwards, which is much faster
-- than maintaining the rollup row by row.
CREATE TABLE insights.person_days (
    project_id  bigint NOT NULL,
    person_id   bigint NOT NULL,
    day         date NOT NULL,
    events      bigint NOT NULL,
    PRIMARY KEY (project_id, person_id, day)
);
COMMENT ON TABLE insights.person_days IS
  'Rollup of insights.events: events per (project, person, day in the project timezone). Maintained by triggers; rebuild with insights.rebuild_person_days(project_id).';

-- New events: upserted in key order, so two concurrent ingestions lock shared rows in the same
-- order (no deadlock).
CREATE FUNCTION insights._person_days_on_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO insights.person_days AS d (project_id, person_id, day, events)
    SELECT n.project_id, n.person_id, (n."timestamp" AT TIME ZONE p.timezone)::date, count(*)
      FROM new_rows n JOIN insights.projects p ON p.id = n.project_id
     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (project_id, person_id, day) DO UPDATE SET events = d.events + excluded.events;
    RETURN NULL;
END $$;

-- Updated or deleted events: the net change per key (old rows -1, new rows +1) is added, then the
-- keys left without events are removed.
CREATE FUNCTION insights._person_days_on_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO insights.person_days AS d (project_id, person_id, day, events)
        SELECT project_id, person_id, day, sum(c) FROM (
            SELECT n.project_id, n.person_id, (n."timestamp" AT TIME ZONE p.timezone)::date AS day, 1 AS c
              FROM new_rows n JOIN insights.projects p ON p.id = n.project_id
            UNION ALL
            SELECT o.project_id, o.person_id, (o."timestamp" AT TIME ZONE p.timezone)::date, -1
              FROM old_rows o JOIN insights.projects p ON p.id = o.project_id) u
         GROUP BY 1, 2, 3 HAVING sum(c) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (project_id, person_id, day) DO UPDATE SET events = d.events + excluded.events;
    ELSE
        UPDATE insights.person_days d SET events = d.events - x.c
          FROM (SELECT o.project_id, o.person_id, (o."timestamp" AT TIME ZONE p.timezone)::date AS day,
                       count(*) AS c
                  FROM old_rows o JOIN insights.projects p ON p.id = o.project_id
                 GROUP BY 1, 2, 3) x
         WHERE d.project_id = x.project_id AND d.person_id = x.person_id AND d.day = x.day;
    END IF;
    DELETE FROM insights.person_days d
     USING (SELECT DISTINCT o.project_id, o.person_id, (o."timestamp" AT TIME ZONE p.timezone)::date AS day
              FROM old_rows o JOIN insights.projects p ON p.id = o.project_id) x
     WHERE d.project_id = x.project_id AND d.person_id = x.person_id AND d.day = x.day
       AND d.events <= 0;
    RETURN NULL;
END $$;

CREATE FUNCTION insights._person_days_on_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    TRUNCATE insights.person_days;
    RETURN NULL;
END $$;

CREATE TRIGGER person_days_insert AFTER INSERT ON insights.events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION insights._person_days_on_insert();
CREATE TRIGGER person_days_update AFTER UPDATE ON insights.events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION insights._person_days_on_change();
CREATE TRIGGER person_days_delete AFTER DELETE ON insights.events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION insights._person_days_on_change();
CREATE TRIGGER person_days_truncate AFTER TRUNCATE ON insights.events
    FOR EACH STATEMENT EXECUTE FUNCTION insights._person_days_on_truncate();

-- Recomputes one project's rows from its events (after a bulk load with the triggers disabled,
-- or a timezone change). Returns the number of person-days.
CREATE FUNCTION insights.rebuild_person_days(p_project_id bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM insights.person_days WHERE project_id = p_project_id;
    INSERT INTO insights.person_days (project_id, person_id, day, events)
    SELECT e.project_id, e.person_id, (e."timestamp" AT TIME ZONE p.timezone)::date, count(*)
      FROM insights.events e JOIN insights.projects p ON p.id = e.project_id
     WHERE e.project_id = p_project_id
     GROUP BY 1, 2, 3;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
COMMENT ON FUNCTION insights.rebuild_person_days(bigint) IS
  'Recompute the person-days rollup of one project from insights.events (after a bulk load with the events triggers disabled). Returns the number of rows.';

-- A project's days are local days: a new timezone moves them.
CREATE FUNCTION insights._person_days_on_timezone() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM insights.rebuild_person_days(NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER person_days_timezone AFTER UPDATE OF timezone ON insights.projects
    FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION insights._person_days_on_timezone();

-- A deleted project's events go by cascade, after its row: their trigger can no longer find the
-- project's timezone, so its person-days are removed here.
CREATE FUNCTION insights._person_days_on_project_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM insights.person_days WHERE project_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER person_days_project_delete AFTER DELETE ON insights.projects
    FOR EACH ROW EXECUTE FUNCTION insights._person_days_on_project_delete();
