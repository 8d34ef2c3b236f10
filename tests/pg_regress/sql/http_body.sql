-- Request body decoding for capture and API endpoints: JSON, form, base64; garbage is 22P02.
\set VERBOSITY sqlstate
SET timezone = 'UTC';
SET datestyle = 'ISO';
SELECT insights.decode_capture_body(convert_to('{"api_key":"phc_x","batch":[]}', 'UTF8'));
SELECT insights.decode_capture_body(convert_to('data=' || encode(convert_to('{"event":"e"}', 'UTF8'), 'base64'), 'UTF8'));
SELECT insights.decode_capture_body(convert_to('{oops', 'UTF8'));
SELECT insights.decode_capture_body(''::bytea);
SELECT insights.decode_api_body(convert_to('events=[{"id":"$pageview"}]&date_from=-7d', 'UTF8'));
SELECT insights.decode_api_body(''::bytea);
SELECT insights.decode_api_body(convert_to('[1]', 'UTF8'));
SELECT insights.parse_query_string('limit=5&search=a%20b&refresh=force_blocking');
SELECT insights.to_float('3.5'), insights.to_float('abc'), insights.to_float('');
