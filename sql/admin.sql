-- Administration from SQL: projects, users, personal API keys.
--
-- Keys are generated here, returned once, and stored only as 'sha256$' || hex(sha256(key)),
-- PostHog's format, so a leaked table does not leak usable keys.

-- The stored form of a personal API key.
CREATE FUNCTION insights.hash_api_key(p_key text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT 'sha256$' || encode(sha256(convert_to(p_key, 'UTF8')), 'hex')
$$;

-- Create a project; returns its id and its project API token (phc_…).
CREATE FUNCTION insights.create_project(p_name text, p_timezone text DEFAULT 'UTC',
                                        p_week_start_day integer DEFAULT 0)
RETURNS TABLE (project_id bigint, api_token text)
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(p_name, '') = '' THEN
        RAISE EXCEPTION 'a project needs a name' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'field: name';
    END IF;
    IF NOT insights._is_valid_timezone(p_timezone) THEN
        RAISE EXCEPTION 'unknown timezone "%"', p_timezone USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'field: timezone', HINT = 'Use an IANA name such as UTC or Europe/Berlin.';
    END IF;
    IF p_week_start_day NOT IN (0, 1) THEN
        RAISE EXCEPTION 'week_start_day must be 0 (Sunday) or 1 (Monday)'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'field: week_start_day';
    END IF;
    RETURN QUERY
    INSERT INTO insights.projects (name, api_token, timezone, week_start_day)
    VALUES (p_name, 'phc_' || insights._random_token(43), p_timezone, p_week_start_day)
    RETURNING id, projects.api_token;
END $$;

-- Get or create a user by email; returns the user id.
CREATE FUNCTION insights.create_user(p_email text, p_first_name text DEFAULT '', p_last_name text DEFAULT '')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    IF coalesce(p_email, '') !~ '^[^@\s]+@[^@\s]+$' THEN
        RAISE EXCEPTION 'invalid email "%"', p_email USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'field: email';
    END IF;
    INSERT INTO insights.users (email, first_name, last_name)
    VALUES (lower(p_email), coalesce(p_first_name, ''), coalesce(p_last_name, ''))
    ON CONFLICT (email) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM insights.users WHERE email = lower(p_email);
    END IF;
    RETURN v_id;
END $$;

-- Make a user a member of a project (idempotent).
CREATE FUNCTION insights.add_project_member(p_project_id bigint, p_user_id bigint, p_level integer DEFAULT 8)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO insights.project_members (project_id, user_id, level)
    VALUES (p_project_id, p_user_id, p_level)
    ON CONFLICT (project_id, user_id) DO UPDATE SET level = EXCLUDED.level
$$;

-- Create a personal API key. The raw key is returned once and never stored.
-- Scopes: '*', or '<object>:read' / '<object>:write' (write implies read), PostHog's names.
-- p_scoped_teams: NULL = all of the user's projects, else only these project ids.
CREATE FUNCTION insights.create_personal_api_key(p_user_id bigint, p_label text,
                                                 p_scopes text[] DEFAULT ARRAY['*'],
                                                 p_scoped_teams bigint[] DEFAULT NULL)
RETURNS TABLE (key_id bigint, api_key text)
LANGUAGE plpgsql AS $$
DECLARE
    v_key text := 'phx_' || insights._random_token(47);
    v_bad text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM insights.users WHERE id = p_user_id) THEN
        RAISE EXCEPTION 'user % does not exist', p_user_id USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'field: user_id';
    END IF;
    SELECT s INTO v_bad FROM unnest(p_scopes) AS s
     WHERE s IS NULL OR s !~ '^(\*|[a-z_]+:(read|write))$' LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'invalid scope "%"', v_bad USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'field: scopes', HINT = 'Scopes look like insight:read, insight:write or *.';
    END IF;
    RETURN QUERY
    INSERT INTO insights.personal_api_keys (user_id, label, secure_value, mask_value, scopes, scoped_teams)
    VALUES (p_user_id, coalesce(p_label, ''), insights.hash_api_key(v_key),
            'phx_...' || right(v_key, 4), p_scopes, p_scoped_teams)
    RETURNING id, v_key;
END $$;

-- Revoke a key: it fails at once on the next request. Returns false if there was no such key.
CREATE FUNCTION insights.revoke_personal_api_key(p_key_id bigint) RETURNS boolean
LANGUAGE sql AS $$
    WITH r AS (
        UPDATE insights.personal_api_keys SET revoked_at = now()
         WHERE id = p_key_id AND revoked_at IS NULL RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM r)
$$;

-- One call for scripts and isolated tests: a project, its user (member) and a key.
CREATE FUNCTION insights.create_project_with_key(p_name text, p_email text,
                                                 p_scopes text[] DEFAULT ARRAY['*'],
                                                 p_timezone text DEFAULT 'UTC')
RETURNS TABLE (project_id bigint, api_token text, user_id bigint, personal_api_key text)
LANGUAGE plpgsql AS $$
DECLARE
    v_project bigint;
    v_token text;
    v_user bigint;
    v_key text;
BEGIN
    SELECT c.project_id, c.api_token INTO v_project, v_token
      FROM insights.create_project(p_name, p_timezone) AS c;
    v_user := insights.create_user(p_email);
    PERFORM insights.add_project_member(v_project, v_user);
    SELECT k.api_key INTO v_key FROM insights.create_personal_api_key(v_user, p_name || ' key', p_scopes) AS k;
    RETURN QUERY SELECT v_project, v_token, v_user, v_key;
END $$;
