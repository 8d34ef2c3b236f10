-- Capture: /batch/, /capture/, /e/, /i/v0/e/ (PostHog's ingestion paths). Route scope `-`: the
-- dispatcher hands over the raw body (JSON, gzip, form, base64) and the project token inside it
-- is the credential, so this handler decodes and authenticates by itself.

-- Accepts what PostHog SDKs send: {"api_key", "batch": [...], "sent_at"}, a single event
-- {"event", "properties": {"token"}, "distinct_id"}, a bare list of events, gzip or form bodies.
-- Answers {"status": 1}; a wrong token is 401, a malformed payload 400, and then nothing is stored.
CREATE FUNCTION api.h_capture(bytea) RETURNS json
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    v_query jsonb := api._query();
    v_body jsonb;
    v_events jsonb;
    v_token text;
    v_sent_at timestamptz;
BEGIN
    BEGIN
        IF length($1) = 0 AND v_query ? 'data' THEN
            v_body := insights.decode_capture_body(convert_to(v_query->>'data', 'UTF8'));
        ELSE
            v_body := insights.decode_capture_body($1);
        END IF;
        v_events := CASE
            WHEN jsonb_typeof(v_body) = 'array' THEN v_body
            WHEN jsonb_typeof(v_body->'batch') = 'array' THEN v_body->'batch'
            WHEN jsonb_typeof(v_body->'data') = 'array' THEN v_body->'data'
            WHEN jsonb_typeof(v_body) = 'object' AND v_body ? 'event' THEN jsonb_build_array(v_body)
        END;
        IF v_events IS NULL THEN
            RETURN api._error(400, 'validation_error', 'invalid_payload',
                              'Malformed request data: expected "batch", an event or a list of events');
        END IF;
        v_token := coalesce(nullif(v_body->>'api_key', ''), nullif(v_body->>'token', ''),
                            nullif(v_query->>'api_key', ''), nullif(v_query->>'token', ''),
                            nullif(v_events->0->>'api_key', ''), nullif(v_events->0->>'token', ''),
                            nullif(v_events->0->'properties'->>'token', ''));
        IF v_token IS NULL THEN
            RETURN api._error(401, 'authentication_error', 'invalid_api_key',
                              'API key not provided. You can find your project API key in your project settings.');
        END IF;
        IF v_body->>'sent_at' ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}' THEN
            v_sent_at := (v_body->>'sent_at')::timestamptz;
        END IF;
        PERFORM insights.capture(v_token, v_events, v_sent_at);
    EXCEPTION
        WHEN invalid_authorization_specification THEN
            RETURN api._error(401, 'authentication_error', 'invalid_api_key', SQLERRM);
        WHEN data_exception THEN
            RETURN api._error(400, 'validation_error', 'invalid_payload', SQLERRM);
    END;
    RETURN json_build_object('status', 1);
END $$;
