-- Bookkeeping triggers of project settings and persons (issue 15).
--
-- 1. Cached insight results depend on the project's timezone, week start, test-account filters
--    and path cleaning rules: a change to any of them drops the project's cached results, so the
--    next request computes with the new settings (the person-days rollup is rebuilt by its own
--    timezone trigger, sql/rollups.sql).
-- 2. Persons' activity log (scope 'Person' in insights.activity_log): ingestion records each new
--    person ('created', one statement-level insert per batch, so the cost is one small row per
--    new person) and each merge ('merged', in insights.merge_persons); the persons API records
--    property changes, distinct id resets, splits and deletions itself. Ingestion's $set/$unset
--    are not logged (PostHog does not log them either, and they are the hot path).

CREATE FUNCTION insights._projects_settings_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM insights.query_cache WHERE project_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER projects_settings_changed
    AFTER UPDATE OF timezone, week_start_day, test_account_filters, path_cleaning_filters ON insights.projects
    FOR EACH ROW
    WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone
          OR OLD.week_start_day IS DISTINCT FROM NEW.week_start_day
          OR OLD.test_account_filters IS DISTINCT FROM NEW.test_account_filters
          OR OLD.path_cleaning_filters IS DISTINCT FROM NEW.path_cleaning_filters)
    EXECUTE FUNCTION insights._projects_settings_changed();

-- One activity entry of a person, in PostHog's shape (ActivityLog with scope "Person": the
-- detail's name is the person's uuid, changes/merge/trigger as PostHog's Detail).
CREATE FUNCTION insights.log_person_activity(p_project bigint, p_person_id bigint, p_uuid uuid,
                                             p_activity text, p_changes jsonb DEFAULT NULL,
                                             p_merge jsonb DEFAULT NULL, p_user bigint DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO insights.activity_log (project_id, user_id, is_system, scope, item_id, activity, detail)
    VALUES (p_project, p_user, p_user IS NULL, 'Person', p_person_id::text, p_activity,
            jsonb_build_object('id', p_person_id::text, 'name', p_uuid::text, 'short_id', NULL,
                               'type', NULL, 'trigger', NULL, 'merge', p_merge, 'changes', p_changes))
$$;
REVOKE EXECUTE ON FUNCTION insights.log_person_activity(bigint, bigint, uuid, text, jsonb, jsonb, bigint) FROM PUBLIC;

CREATE FUNCTION insights._persons_created() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO insights.activity_log (project_id, user_id, is_system, scope, item_id, activity, detail)
    SELECT n.project_id, nullif(current_setting('pgi.user_id', true), '')::bigint,
           coalesce(current_setting('pgi.user_id', true), '') = '', 'Person', n.id::text, 'created',
           jsonb_build_object('id', n.id::text, 'name', n.uuid::text, 'short_id', NULL, 'type', NULL,
                              'trigger', NULL, 'merge', NULL, 'changes', NULL)
      FROM new_rows n;
    RETURN NULL;
END $$;
CREATE TRIGGER persons_created AFTER INSERT ON insights.persons
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION insights._persons_created();
