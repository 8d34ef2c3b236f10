-- What posthog-js asks for besides capture, answered minimally so the SDK runs without errors
-- from a page on another origin (CORS in nginx/nginx.conf.template). Route scope `-`: the project
-- token is the credential, as for capture.
--   /flags/, /decide/            feature flags: none are defined in pg_insights
--   /array/<token>/config        the SDK's remote config: autocapture on, nothing else enabled
--   /array/<token>/config.js     the same as the script posthog-js loads first

-- The project of a token in a flags body ({"token"} or {"api_key"}, JSON, base64 or gzip), or
-- of the query string; NULL when absent or unknown.
CREATE FUNCTION api._sdk_project(p_token text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT id FROM insights.projects WHERE api_token = p_token
$$;

-- POST/GET /flags/ (and /decide/): PostHog's flags body with no flags, for v1 and v2 clients.
-- An unknown or missing token is PostHog's 401.
CREATE FUNCTION api.h_flags(bytea) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_query jsonb := api._query();
    v_body jsonb := '{}';
    v_token text;
BEGIN
    IF length($1) > 0 THEN
        BEGIN
            v_body := insights.decode_capture_body($1);
        EXCEPTION WHEN data_exception THEN
            RETURN api._error(400, 'validation_error', 'malformed_data', 'Malformed request data');
        END;
    END IF;
    v_token := coalesce(nullif(v_body->>'token', ''), nullif(v_body->>'api_key', ''),
                        nullif(v_query->>'token', ''), nullif(v_query->>'api_key', ''));
    IF v_token IS NULL OR api._sdk_project(v_token) IS NULL THEN
        RETURN api._error(401, 'authentication_error', 'invalid_api_key',
                          'Project API key invalid. You can find your project API key in PostHog project settings.');
    END IF;
    RETURN json_build_object(
        'flags', '{}'::json, 'featureFlags', '{}'::json, 'featureFlagPayloads', '{}'::json,
        'errorsWhileComputingFlags', false, 'quotaLimited', '[]'::json,
        'requestId', gen_random_uuid(),
        'config', json_build_object('enable_collect_everything', true),
        'autocapture_opt_out', false, 'elementsChainAsString', true,
        'supportedCompression', json_build_array('gzip', 'gzip-js'),
        'sessionRecording', false, 'capturePerformance', false, 'heatmaps', false,
        'surveys', false, 'siteApps', '[]'::json, 'toolbarParams', '{}'::json,
        'isAuthenticated', false);
END $$;

-- The remote config of a project token, or NULL when the token is unknown.
CREATE FUNCTION api._remote_config(p_token text) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'token', p_token, 'supportedCompression', json_build_array('gzip', 'gzip-js'),
        'hasFeatureFlags', false, 'captureDeadClicks', false, 'capturePerformance', false,
        'autocapture_opt_out', false, 'autocaptureExceptions', false,
        'analytics', json_build_object('endpoint', '/i/v0/e/'), 'elementsChainAsString', true,
        'sessionRecording', false, 'heatmaps', false, 'surveys', false,
        'defaultIdentifiedOnly', true, 'siteApps', '[]'::json)
     WHERE api._sdk_project(p_token) IS NOT NULL
$$;

CREATE FUNCTION api.h_remote_config(bytea) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_config json := api._remote_config(api._header('x-pgi-id'));
BEGIN
    IF v_config IS NULL THEN
        RETURN api._error(401, 'authentication_error', 'invalid_api_key',
                          'Project API key invalid. You can find your project API key in PostHog project settings.');
    END IF;
    RETURN v_config;
END $$;

-- GET /array/<token>/config.js: the config as the script posthog-js loads before the JSON form
-- (it reads window._POSTHOG_REMOTE_CONFIG[token]); an unknown token is the JSON 401.
CREATE FUNCTION api.h_remote_config_js(bytea) RETURNS api."*/*"
LANGUAGE plpgsql AS $$
DECLARE
    v_token text := api._header('x-pgi-id');
    v_config json := api._remote_config(v_token);
BEGIN
    IF v_config IS NULL THEN
        RETURN api._render_json(api._error(401, 'authentication_error', 'invalid_api_key',
                          'Project API key invalid. You can find your project API key in PostHog project settings.'));
    END IF;
    PERFORM set_config('response.headers',
                       '[{"Content-Type": "application/javascript; charset=utf-8"}]', true);
    RETURN convert_to(format(
        E'(function() {\n  window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {};\n  window._POSTHOG_REMOTE_CONFIG[%s] = {config: %s, siteApps: []};\n})();\n',
        to_json(v_token), v_config), 'UTF8');
END $$;
