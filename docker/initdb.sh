#!/usr/bin/env bash
# First-start setup of the pg_insights container (run by the postgres image's entrypoint, once,
# on an empty data directory): the extension, the api schema, the PostgREST login role and,
# with PGI_DEMO=1, the demo project. Mirrors scripts/stack up.
set -euo pipefail
psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -q)
"${psql[@]}" -c "CREATE EXTENSION IF NOT EXISTS pg_insights"
for f in /opt/pg_insights/sql/api/*.sql; do "${psql[@]}" -f "$f"; done
"${psql[@]}" -f /opt/pg_insights/routes.sql
# PostgREST logs in as pgi_authenticator over the compose network, so it needs a password here.
"${psql[@]}" -c "ALTER ROLE pgi_authenticator WITH LOGIN PASSWORD '${PGI_AUTHENTICATOR_PASSWORD:?set PGI_AUTHENTICATOR_PASSWORD}'"
if [ "${PGI_DEMO:-0}" = 1 ]; then
  read -r project token key < <("${psql[@]}" -tA -F ' ' -c \
    "SELECT project_id, api_token, personal_api_key FROM insights.create_project_with_key('Demo', 'demo@example.com')")
  PGOPTIONS="-c pgi.demo_project=$project" "${psql[@]}" -f /opt/pg_insights/demo.sql
  echo "pg_insights demo: project $project, token $token, personal API key $key"
  echo "try: curl -H 'Authorization: Bearer $key' http://localhost:8000/api/projects/$project/persons/?limit=2"
fi
