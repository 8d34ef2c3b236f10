-- Administration: projects, users, personal API keys (stored hashed, returned once), revocation,
-- and bad input rejected with 22023.
\set VERBOSITY sqlstate
SET timezone = 'UTC';
SET datestyle = 'ISO';
SELECT project_id AS p, api_token FROM insights.create_project('admin test', 'Europe/Berlin', 1) \gset
SELECT :'api_token' ~ '^phc_[A-Za-z0-9]{43}$' AS token_format;
SELECT name, timezone, week_start_day FROM insights.projects WHERE id = :p;
SELECT insights.create_user('Ann@Example.com', 'Ann') AS u \gset
SELECT insights.create_user('ann@example.com') = :u AS same_user;
SELECT insights.add_project_member(:p, :u);
SELECT key_id, api_key FROM insights.create_personal_api_key(:u, 'ci', ARRAY['insight:read', 'person:write']) \gset
SELECT :'api_key' ~ '^phx_[A-Za-z0-9]{47}$' AS key_format;
-- Only the hash is stored, never the key.
SELECT secure_value = insights.hash_api_key(:'api_key') AS hashed,
       secure_value LIKE 'sha256$%' AS prefix,
       position(:'api_key' IN secure_value) = 0 AS raw_key_absent,
       mask_value = 'phx_...' || right(:'api_key', 4) AS masked,
       scopes
  FROM insights.personal_api_keys WHERE id = :key_id;
SELECT insights.hash_api_key('phx_test');
SELECT insights.revoke_personal_api_key(:key_id) AS revoked, insights.revoke_personal_api_key(:key_id) AS again;
-- Bad input.
SELECT * FROM insights.create_project('');
SELECT * FROM insights.create_project('x', 'Mars/Olympus');
SELECT * FROM insights.create_project('x', 'UTC', 3);
SELECT insights.create_user('not an email');
SELECT * FROM insights.create_personal_api_key(:u, 'bad', ARRAY['insight:delete']);
SELECT * FROM insights.create_personal_api_key(-1, 'nobody');
SELECT project_id > 0 AS created, length(personal_api_key) AS key_length
  FROM insights.create_project_with_key('second', 'ops@example.com');
