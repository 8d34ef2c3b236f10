#!/bin/sh
# Render the stack's nginx template for the container network: the same routes.conf and proxy
# rules as scripts/stack, with PostgREST at postgrest:3000 and nginx listening on :8000.
set -eu
mkdir -p /var/run/pgi/nginx/tmp
sed -e 's|@STACK_DIR@|/var/run/pgi|g' -e 's|@PGI_ROOT@|/etc/pg_insights|g' \
    -e 's|127.0.0.1:@PGRST_PORT@|postgrest:3000|' -e 's|listen 127.0.0.1:@HTTP_PORT@|listen 8000|' \
    -e 's|@HTTP_PORT@|8000|g' -e 's|^daemon on;|daemon off;|' \
    /etc/pg_insights/nginx/nginx.conf.template > /var/run/pgi/nginx/nginx.conf
exec nginx -c /var/run/pgi/nginx/nginx.conf -p /var/run/pgi/nginx
