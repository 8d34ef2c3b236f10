-- pg_insights data model (schema `insights`, created by the extension).
--
-- Conventions: every project-owned table carries `project_id` first, so every index starts with it
-- and row-level security (sql/api/20_rls.sql) can keep an API request inside its project. Ids are
-- bigint identities; timestamps are timestamptz (stored UTC, bucketed in the project's timezone).

-- True when Postgres knows the zone name; used by a CHECK so a bad timezone never gets stored.
CREATE FUNCTION insights._is_valid_timezone(tz text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    PERFORM now() AT TIME ZONE tz;
    RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN false;
END $$;

-- Projects (PostHog "teams"): one product, one token, one timezone.
CREATE TABLE insights.projects (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid                  uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    name                  text NOT NULL CHECK (name <> ''),
    -- The project API token (`phc_…`) the SDKs send with events. Public by design, like PostHog's.
    api_token             text NOT NULL UNIQUE CHECK (api_token ~ '^phc_[A-Za-z0-9]{20,}$'),
    timezone              text NOT NULL DEFAULT 'UTC',
    -- 0 = weeks start on Sunday (PostHog's default), 1 = Monday.
    week_start_day        smallint NOT NULL DEFAULT 0 CHECK (week_start_day IN (0, 1)),
    -- PostHog's `test_account_filters`: a list of property filters ANDed in by filter_test_accounts.
    test_account_filters  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(test_account_filters) = 'array'),
    -- PostHog's `path_cleaning_filters`: [{regex, alias}] applied to path items with path_replacements.
    path_cleaning_filters jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(path_cleaning_filters) = 'array'),
    -- Project settings PostHog's API returns and accepts (GET|PATCH /api/projects/:id/); the
    -- engines do not read them: whether the UI ticks "filter out test accounts" by default, the
    -- person properties that name a person, and the element attributes toolbar actions use.
    test_account_filters_default_checked boolean NOT NULL DEFAULT false,
    person_display_name_properties jsonb
        CHECK (person_display_name_properties IS NULL OR jsonb_typeof(person_display_name_properties) = 'array'),
    data_attributes       jsonb NOT NULL DEFAULT '["data-attr"]' CHECK (jsonb_typeof(data_attributes) = 'array'),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_timezone_valid CHECK (insights._is_valid_timezone(timezone))
);

-- People who use the API (PostHog "users").
CREATE TABLE insights.users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid        uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    email       text NOT NULL UNIQUE CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    first_name  text NOT NULL DEFAULT '',
    last_name   text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Which users belong to which projects.
CREATE TABLE insights.project_members (
    project_id  bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES insights.users ON DELETE CASCADE,
    level       smallint NOT NULL DEFAULT 8, -- PostHog: 1 member, 8 admin, 15 owner
    PRIMARY KEY (project_id, user_id)
);

-- Personal API keys. Only `secure_value` = 'sha256$' || hex(sha256(key)) is stored; the raw key is
-- shown once, when it is created.
CREATE TABLE insights.personal_api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES insights.users ON DELETE CASCADE,
    label         text NOT NULL DEFAULT '',
    secure_value  text NOT NULL UNIQUE CHECK (secure_value ~ '^sha256\$[0-9a-f]{64}$'),
    mask_value    text NOT NULL,
    -- NULL or '{}' = full access (PostHog's legacy keys); '*' = everything; 'insight:read', …
    scopes        text[],
    -- NULL = every project of the user; otherwise only these.
    scoped_teams  bigint[],
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- Persons: PostHog's identity model. A person owns one or more distinct ids.
CREATE TABLE insights.persons (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id     bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    uuid           uuid NOT NULL DEFAULT gen_random_uuid(),
    properties     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(properties) = 'object'),
    is_identified  boolean NOT NULL DEFAULT false,
    -- The timestamp of the person's first event (lifecycle "new" keys off it).
    created_at     timestamptz NOT NULL DEFAULT now(),
    version        bigint NOT NULL DEFAULT 0,
    UNIQUE (project_id, uuid)
);
-- Lifecycle reads the persons created in its window: id is included for an index-only scan.
CREATE INDEX persons_project_created ON insights.persons (project_id, created_at) INCLUDE (id);

CREATE TABLE insights.person_distinct_ids (
    project_id   bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    distinct_id  text NOT NULL CHECK (distinct_id <> ''),
    person_id    bigint NOT NULL REFERENCES insights.persons ON DELETE CASCADE,
    PRIMARY KEY (project_id, distinct_id)
);
CREATE INDEX person_distinct_ids_person ON insights.person_distinct_ids (person_id);

-- Events. `person_id` is resolved at ingestion and rewritten when persons merge, so queries never
-- need to join the distinct-id table. Group keys ($groups) are stored per group type index.
CREATE TABLE insights.events (
    project_id      bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    uuid            uuid NOT NULL,
    event           text NOT NULL CHECK (event <> ''),
    distinct_id     text NOT NULL,
    person_id       bigint NOT NULL,
    "timestamp"     timestamptz NOT NULL,
    properties      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(properties) = 'object'),
    elements_chain  text NOT NULL DEFAULT '',
    session_id      text,
    group_0         text NOT NULL DEFAULT '',
    group_1         text NOT NULL DEFAULT '',
    group_2         text NOT NULL DEFAULT '',
    group_3         text NOT NULL DEFAULT '',
    group_4         text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- An event uuid is stored once per project: a re-sent batch is not counted twice.
    PRIMARY KEY (project_id, uuid)
);
-- Insight queries filter by event name and time, then group by person: this covering index lets
-- a funnel or trend read (event, timestamp, person) with an index-only scan.
CREATE INDEX events_project_event_ts ON insights.events (project_id, event, "timestamp") INCLUDE (person_id);
-- "All events" steps, date bounds, `all` date_from and strict funnels.
CREATE INDEX events_project_ts ON insights.events (project_id, "timestamp");
-- Per-person reads: actors, merges, first_time_for_user.
CREATE INDEX events_project_person_ts ON insights.events (project_id, person_id, "timestamp");

-- Group types (organization, company, …) get a fixed index 0..4 per project.
CREATE TABLE insights.group_type_mappings (
    project_id        bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    group_type_index  smallint NOT NULL CHECK (group_type_index BETWEEN 0 AND 4),
    group_type        text NOT NULL CHECK (group_type <> ''),
    name_singular     text,
    name_plural       text,
    PRIMARY KEY (project_id, group_type_index),
    UNIQUE (project_id, group_type)
);

CREATE TABLE insights.groups (
    project_id        bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    group_type_index  smallint NOT NULL CHECK (group_type_index BETWEEN 0 AND 4),
    group_key         text NOT NULL CHECK (group_key <> ''),
    properties        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(properties) = 'object'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, group_type_index, group_key)
);

-- Cohorts: static (explicit members) or property-defined (`filters`, evaluated at query time).
CREATE TABLE insights.cohorts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id   bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    is_static    boolean NOT NULL DEFAULT false,
    filters      jsonb NOT NULL DEFAULT '{}',
    deleted      boolean NOT NULL DEFAULT false,
    created_by   bigint REFERENCES insights.users ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- The last calculation (sql/api/82_cohorts.sql): members counted when the definition or the
    -- members changed; insights evaluate the definition at query time and never read these.
    count               integer,
    is_calculating      boolean NOT NULL DEFAULT false,
    last_calculation    timestamptz,
    errors_calculating  integer NOT NULL DEFAULT 0,
    version             integer
);
CREATE INDEX cohorts_project ON insights.cohorts (project_id);

CREATE TABLE insights.cohort_people (
    cohort_id  bigint NOT NULL REFERENCES insights.cohorts ON DELETE CASCADE,
    person_id  bigint NOT NULL REFERENCES insights.persons ON DELETE CASCADE,
    PRIMARY KEY (cohort_id, person_id)
);

-- Actions: named OR-of-steps event definitions (PostHog action steps as jsonb).
CREATE TABLE insights.actions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id   bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    -- Nullable, as PostHog's Action.name.
    name         text,
    description  text NOT NULL DEFAULT '',
    steps        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(steps) = 'array'),
    deleted      boolean NOT NULL DEFAULT false,
    created_by   bigint REFERENCES insights.users ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Stored and returned as PostHog's serializer does (no Slack delivery here).
    tags                  text[] NOT NULL DEFAULT '{}',
    post_to_slack         boolean NOT NULL DEFAULT false,
    slack_message_format  text NOT NULL DEFAULT '',
    pinned_at             timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX actions_project ON insights.actions (project_id);

-- Dashboards and their tiles (enough for the insight fields `dashboards`/`dashboard_tiles`).
CREATE TABLE insights.dashboards (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id   bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    description  text NOT NULL DEFAULT '',
    deleted      boolean NOT NULL DEFAULT false,
    created_by   bigint REFERENCES insights.users ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Saved insights.
CREATE TABLE insights.saved_insights (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id        bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    short_id          text NOT NULL CHECK (short_id ~ '^[A-Za-z0-9]{8}$'),
    name              text,
    derived_name      text,
    description       text NOT NULL DEFAULT '',
    filters           jsonb NOT NULL DEFAULT '{}',
    query             jsonb,
    "order"           integer,
    deleted           boolean NOT NULL DEFAULT false,
    saved             boolean NOT NULL DEFAULT false,
    favorited         boolean NOT NULL DEFAULT false,
    tags              text[] NOT NULL DEFAULT '{}',
    created_by        bigint REFERENCES insights.users ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_modified_by  bigint REFERENCES insights.users ON DELETE SET NULL,
    last_modified_at  timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, short_id)
);

CREATE TABLE insights.dashboard_tiles (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dashboard_id  bigint NOT NULL REFERENCES insights.dashboards ON DELETE CASCADE,
    insight_id    bigint NOT NULL REFERENCES insights.saved_insights ON DELETE CASCADE,
    deleted       boolean NOT NULL DEFAULT false,
    UNIQUE (dashboard_id, insight_id)
);

CREATE TABLE insights.insight_views (
    project_id      bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES insights.users ON DELETE CASCADE,
    insight_id      bigint NOT NULL REFERENCES insights.saved_insights ON DELETE CASCADE,
    last_viewed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, insight_id)
);

CREATE TABLE insights.sharing_configurations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    insight_id    bigint REFERENCES insights.saved_insights ON DELETE CASCADE,
    dashboard_id  bigint REFERENCES insights.dashboards ON DELETE CASCADE,
    enabled       boolean NOT NULL DEFAULT false,
    access_token  text NOT NULL UNIQUE,
    settings      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((insight_id IS NULL) <> (dashboard_id IS NULL))
);

CREATE TABLE insights.activity_log (
    id          uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    user_id     bigint REFERENCES insights.users ON DELETE SET NULL,
    is_system   boolean NOT NULL DEFAULT false,
    scope       text NOT NULL,          -- 'Insight', 'Person', …
    item_id     text NOT NULL,
    activity    text NOT NULL,          -- 'created', 'updated', 'deleted', 'restored', …
    detail      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activity_log_scope ON insights.activity_log (project_id, scope, item_id, created_at DESC);

-- Autocapture element chains (PostHog's ElementGroup): one row per distinct chain of a project,
-- keyed by PostHog's chain hash (insights.elements_chain_hash) and shared by every event carrying
-- that chain ($autocapture, $rageclick, $dead_click, …). Events keep the chain string itself,
-- which element filters read; a chain that cannot be parsed is stored as given.
CREATE TABLE insights.element_chains (
    project_id  bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    hash        text NOT NULL,
    chain       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, hash)
);

-- Elements (PostHog's Element): the parsed elements of each stored chain (chain_hash set, order 0
-- = the clicked element), plus elements created through the /elements/ API (chain_hash NULL).
CREATE TABLE insights.elements (
    id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    project_id   bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    chain_hash   text,
    "order"      integer,
    tag_name     text,
    text         text,
    href         text,
    attr_id      text,
    attr_class   text[],
    nth_child    integer,
    nth_of_type  integer,
    attributes   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    FOREIGN KEY (project_id, chain_hash) REFERENCES insights.element_chains (project_id, hash)
        ON DELETE CASCADE
);
CREATE INDEX elements_project_chain ON insights.elements (project_id, chain_hash, "order");

-- Query results cache, keyed by (project, normalized query): PostHog's refresh modes read it.
CREATE TABLE insights.query_cache (
    project_id    bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    cache_key     text NOT NULL,
    result        jsonb NOT NULL,
    last_refresh  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, cache_key)
);
