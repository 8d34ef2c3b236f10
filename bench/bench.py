#!/usr/bin/env python3
"""pg_insights benchmark: the same parquet in Postgres 15 (pg_insights tables), DuckDB and chdb.

Run through bench/run (it prepares the venv and the extension). See bench/README.md.
"""
import argparse
import datetime as dt
import difflib
import glob
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import queries as Q  # noqa: E402
import report  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
DATA = os.path.join(BENCH, "data")
OUT = os.path.join(BENCH, "out")
RESULTS = os.path.join(BENCH, "results")
PGDIR = os.path.join(BENCH, ".pg")
PGDATA = os.path.join(PGDIR, "data")
PG_BIN = "/usr/lib/postgresql/15/bin"
PG_PORT = int(os.environ.get("PGI_BENCH_PG_PORT", "54359"))
# The autocapture chains every engine derives at load (queries.ELEMENT_CHAINS): part of each load's
# signature, so a load made before them (or with other chains) is redone.
CHAINS_SIG = "chains:" + hashlib.sha256("\n".join(Q.ELEMENT_CHAINS).encode()).hexdigest()[:12]
PG_EXT_DIR = "/usr/share/postgresql/15/extension"
PG_LIB = "/usr/lib/postgresql/15/lib/pg_insights.so"
# PGI_BENCH_PKG: a `cargo pgrx package` output dir; the library and the extension script come from
# there instead of the system install (see bench/run, PGI_BENCH_PACKAGE=1).
PKG = os.environ.get("PGI_BENCH_PKG")
if PKG:
    PG_LIB = os.path.join(PKG, "usr/lib/postgresql/15/lib/pg_insights.so")
    PG_EXT_DIR = os.path.join(PKG, "usr/share/postgresql/15/extension")

PG_SETTINGS = {  # performance.md §7.5 (shared_buffers 4GB instead of 6GB: shared 24 GB machine)
    "shared_buffers": "4GB",
    "work_mem": "512MB",
    "maintenance_work_mem": "2GB",
    "max_parallel_workers_per_gather": "2",
    "max_parallel_maintenance_workers": "2",
    "random_page_cost": "1.1",
    "effective_cache_size": "16GB",
    "jit": "off",
    # a throw-away bench cluster: no durability needed, load speed matters
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "4GB",  # more WAL is only kept on disk (20GB held 13 GB after a 10M load)
    "checkpoint_timeout": "1h",
    "TimeZone": "UTC",
    "listen_addresses": "''",
    "log_min_messages": "warning",
}


def log(msg):
    print(f"\033[1m==> {msg}\033[0m", file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def as_pg(cmd):
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


def file_sig(path):
    st = os.stat(path)
    return f"{os.path.basename(path)}:{st.st_size}:{int(st.st_mtime)}"


def ms(t):
    return round(t * 1000, 2)


# ------------------------------------------------------------------------------------------------
# Postgres
# ------------------------------------------------------------------------------------------------
class Postgres:
    def __init__(self):
        self.conn = None
        self.lib = None

    def _ctl(self, *args, check=True):
        return subprocess.run(as_pg([f"{PG_BIN}/pg_ctl", "-D", PGDATA, *args]), text=True,
                              capture_output=True, check=check)

    def running(self):
        return os.path.exists(PGDATA) and self._ctl("status", check=False).returncode == 0

    def start(self):
        os.makedirs(PGDIR, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(PGDIR, "postgres", "postgres")
        if not os.path.exists(os.path.join(PGDATA, "PG_VERSION")):
            log(f"initdb {PGDATA}")
            sh(as_pg([f"{PG_BIN}/initdb", "-D", PGDATA, "-U", "postgres", "--auth=trust", "--no-locale",
                      "-E", "UTF8", "--no-sync"]), stdout=subprocess.DEVNULL)
        if self.running():
            log("restarting the bench cluster (fresh settings)")
            self._ctl("stop", "-m", "fast")
        settings = dict(PG_SETTINGS, port=str(PG_PORT), unix_socket_directories=PGDIR)
        if os.path.exists(PG_LIB):  # as scripts/stack does
            # The control file's module_pathname is the bare 'pg_insights', resolved through
            # dynamic_library_path: the cluster loads a private snapshot of the installed .so, so a
            # `cargo pgrx install` by someone else during a run (it rewrites the file in place) cannot
            # crash the backends that have it mapped.
            self.lib = snapshot_lib()
            settings["dynamic_library_path"] = f"'{os.path.dirname(self.lib['path'])}:$libdir'"
            settings["shared_preload_libraries"] = "pg_insights"
        opts = " ".join(f"-c {k}={v}" for k, v in settings.items())
        log(f"starting Postgres 15 on socket {PGDIR}, port {PG_PORT}")
        r = self._ctl("-w", "-t", "120", "-l", os.path.join(PGDIR, "postgres.log"), "-o", opts, "start",
                      check=False)
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            sh(["tail", "-n", "30", os.path.join(PGDIR, "postgres.log")])
            sys.exit("could not start the bench Postgres cluster")
        self.settings = settings

    def stop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.running():
            log("stopping the bench cluster")
            self._ctl("stop", "-m", "fast")

    def connect(self, db):
        import psycopg
        if self.conn is not None:
            self.conn.close()
        self.conn = psycopg.connect(host=PGDIR, port=PG_PORT, user="postgres", dbname=db, autocommit=True,
                                    prepare_threshold=None)
        return self.conn

    def q(self, sql, params=None):
        with self.conn.cursor() as c:
            c.execute(sql, params)
            return c.fetchall() if c.description else None

    def one(self, sql, params=None):
        r = self.q(sql, params)
        return r[0][0] if r else None


def release_install_lock():
    """bench/run holds the shared install lock (fd PGI_BENCH_LOCK_FD) from `cargo pgrx install` until
    the library is snapshotted and the extension created from the system files: release it."""
    fd = int(os.environ.pop("PGI_BENCH_LOCK_FD", "-1"))
    if fd >= 0:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        log("released the install lock")


def snapshot_lib():
    """Copy PG_LIB to bench/.pg/lib once it has been stable for 5 s (not half-written) → its info."""
    libdir = os.path.join(PGDIR, "lib")
    os.makedirs(libdir, exist_ok=True)
    dst = os.path.join(libdir, "pg_insights.so")
    for _ in range(120):
        st = os.stat(PG_LIB)
        if time.time() - st.st_mtime < 5:
            time.sleep(2)
            continue
        data = open(PG_LIB, "rb").read()
        st2 = os.stat(PG_LIB)
        if (st2.st_size, st2.st_mtime) == (st.st_size, st.st_mtime) and len(data) == st.st_size:
            break
    else:
        sys.exit(f"{PG_LIB} keeps changing (someone is installing): try again later")
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dst)  # a new inode: running backends keep the old mapping
    info = {"path": dst, "sha256": hashlib.sha256(data).hexdigest()[:16], "bytes": len(data),
            "installed_at": dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc).isoformat(timespec="seconds")}
    log(f"pg_insights library snapshot {info['sha256']} (installed {info['installed_at']}) → {dst}")
    return info


def ext_signature():
    """Reload the Postgres data when the extension's SQL changes (its tables may have changed)."""
    files = sorted(f for f in os.listdir(PG_EXT_DIR) if f.startswith("pg_insights")) \
        if os.path.isdir(PG_EXT_DIR) else []
    if not files:
        h = hashlib.md5()
        for f in ("schema.sql", "ingest.sql"):
            h.update(open(os.path.join(ROOT, "sql", f), "rb").read())
        return "schema-only", "fallback:" + h.hexdigest()
    h = hashlib.md5()
    for f in files:
        h.update(f.encode())
        if f.endswith(".sql") or f.endswith(".control"):
            # Sorted lines without comments: pgrx may write the same entities in another order on
            # each install, under comments naming their source lines.
            lines = open(os.path.join(PG_EXT_DIR, f), "rb").read().splitlines()
            h.update(b"\n".join(sorted(x for x in lines if not x.lstrip().startswith(b"--"))))
    return "extension", "ext:" + h.hexdigest()


def pg_load(pg, n, paths, reload):
    db = f"bench_{n}"
    mode, ext_sig = ext_signature()
    sig = f"{file_sig(paths['events'])}|{ext_sig}|{CHAINS_SIG}"
    pg.connect("postgres")
    exists = pg.one("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
    if exists and not reload:
        pg.connect(db)
        try:
            if pg.one("SELECT v FROM public.bench_meta WHERE k = 'sig'") == sig:
                log(f"Postgres: {db} already loaded from this parquet ({mode})")
                return db, json.loads(pg.one("SELECT v FROM public.bench_meta WHERE k = 'load'"))
        except Exception:
            pass
        pg.connect("postgres")
    log(f"Postgres: loading {db} ({mode})")
    pg.q(f"DROP DATABASE IF EXISTS {db}")
    pg.q(f"CREATE DATABASE {db}")
    pg.connect(db)
    info = {"mode": mode}
    if mode == "extension" and PKG:
        # No CREATE EXTENSION (PostgreSQL 15 only reads control files from the system directory):
        # the packaged script is run as is in its schema, which is what CREATE EXTENSION would do.
        installs = [f for f in glob.glob(os.path.join(PG_EXT_DIR, "pg_insights--*.sql"))
                    if os.path.basename(f).count("--") == 1]  # not the upgrade scripts
        script = open(max(installs, key=lambda f: [int(x) for x in re.findall(r"\d+", os.path.basename(f))])).read()
        script = "\n".join(ln for ln in script.splitlines() if not ln.startswith("\\"))
        pg.q("CREATE SCHEMA insights")
        pg.q("SET search_path TO insights, public")
        pg.q(script.replace("MODULE_PATHNAME", "pg_insights"))
        pg.q("RESET search_path")
        pid = pg.one("SELECT project_id FROM insights.create_project('bench')")
        pg.q(f"UPDATE insights.projects SET week_start_day = 1 WHERE id = {pid}")
    elif mode == "extension":
        pg.q("CREATE EXTENSION pg_insights")
        pid = pg.one("SELECT project_id FROM insights.create_project('bench')")
        # ISO weeks (Monday), as the retention peers use.
        pg.q(f"UPDATE insights.projects SET week_start_day = 1 WHERE id = {pid}")
    else:
        # No pg_insights installed: the very same tables from the extension's own SQL, so the plain
        # SQL peer still reads insights.events (pg_insights entries are then "not available").
        pg.q("CREATE SCHEMA insights")
        for f in ("schema.sql", "ingest.sql"):
            pg.q(open(os.path.join(ROOT, "sql", f)).read())
        pid = pg.one("INSERT INTO insights.projects (name, api_token) "
                     "VALUES ('bench', 'phc_benchbenchbenchbenchbench') RETURNING id")
    info["project_id"] = pid
    release_install_lock()  # the catalog is created: the COPY does not need the system files
    tables = ["insights.events", "insights.persons", "insights.person_distinct_ids"]
    # Secondary indexes and foreign keys off during COPY, rebuilt after (same definitions).
    fks = pg.q("""SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                  WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])""", (tables,))
    idx = pg.q("""SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
                  WHERE i.indrelid = ANY(%s::regclass[])
                    AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""",
               (tables,))
    for rel, name, _ in fks:
        pg.q(f"ALTER TABLE {rel} DROP CONSTRAINT {name}")
    for name, _ in idx:
        pg.q(f"DROP INDEX {name}")
    # The person-days rollup (sql/rollups.sql) is rebuilt once after the COPY, as its docs advise
    # for bulk loads, rather than folded in by the row triggers.
    rollup = pg.one("SELECT to_regclass('insights.person_days') IS NOT NULL")
    if rollup:
        pg.q("ALTER TABLE insights.events DISABLE TRIGGER USER")

    import duckdb
    tmp = os.path.join(DATA, f"pgload_{n}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    os.chmod(tmp, 0o755)
    t = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET threads = 2; SET TimeZone = 'UTC'")
    ts = "strftime({c}, '%Y-%m-%d %H:%M:%S.%f') || '+00'"
    # The events go through a pipe, DuckDB writing while Postgres copies: as a file they took 13 GB
    # at 30M events, next to the table, its WAL and its rewrite (that load once filled the disk).
    events_sql = f"""COPY (SELECT {pid}, uuid, event, distinct_id, person_id, {ts.format(c='ts')},
                                  properties, session_id, {Q.CHAIN_DUCKDB}
                           FROM read_parquet('{paths['events']}'))
                     TO '{tmp}/events.csv' (FORMAT csv, HEADER false)"""
    os.mkfifo(f"{tmp}/events.csv", 0o644)
    con.execute(f"""COPY (SELECT p.id, {pid}, p.uuid, p.properties, d.n > 1, {ts.format(c='p.created_at')}
                          FROM read_parquet('{paths['persons']}') p
                          JOIN (SELECT person_id, count(*) n FROM read_parquet('{paths['distinct_ids']}')
                                GROUP BY 1) d ON d.person_id = p.id ORDER BY p.id)
                    TO '{tmp}/persons.csv' (HEADER false)""")
    con.execute(f"""COPY (SELECT {pid}, distinct_id, person_id FROM read_parquet('{paths['distinct_ids']}'))
                    TO '{tmp}/distinct_ids.csv' (HEADER false)""")
    con.close()
    for f in os.listdir(tmp):
        os.chmod(os.path.join(tmp, f), 0o644)
    info["csv_export_s"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    pg.q(f"COPY insights.persons (id, project_id, uuid, properties, is_identified, created_at) "
         f"FROM '{tmp}/persons.csv' (FORMAT csv)")
    pg.q("SELECT setval(pg_get_serial_sequence('insights.persons', 'id'), max(id)) FROM insights.persons")
    pg.q(f"COPY insights.person_distinct_ids (project_id, distinct_id, person_id) "
         f"FROM '{tmp}/distinct_ids.csv' (FORMAT csv)")
    info["copy_persons_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    writer_error = []

    def write_events():
        try:
            w = duckdb.connect()
            w.execute("SET threads = 2; SET TimeZone = 'UTC'")
            w.execute(events_sql)
            w.close()
        except Exception as e:  # reported after the COPY, which then ends early
            writer_error.append(e)

    writer = threading.Thread(target=write_events)
    writer.start()
    try:
        pg.q(f"""COPY insights.events (project_id, uuid, event, distinct_id, person_id, "timestamp",
                                       properties, session_id, elements_chain) FROM '{tmp}/events.csv' (FORMAT csv)""")
    except Exception:
        with open(f"{tmp}/events.csv", "rb") as pipe:  # let the writer finish, then fail
            while pipe.read(1 << 20):
                pass
        raise
    finally:
        writer.join()
    if writer_error:
        raise writer_error[0]
    info["copy_events_s"] = round(time.perf_counter() - t, 2)  # with DuckDB writing the pipe
    # The chain store ingestion would have filled (sql/ingest.sql step 9), for the elements query.
    if pg.one("SELECT to_regclass('insights.element_chains') IS NOT NULL "
              "AND to_regproc('insights.elements_chain_hash') IS NOT NULL"):
        pg.q(f"""INSERT INTO insights.element_chains (project_id, hash, chain)
                 SELECT {pid}, insights.elements_chain_hash(c), c
                   FROM (SELECT DISTINCT elements_chain AS c FROM insights.events WHERE elements_chain <> '') s
                 ON CONFLICT DO NOTHING""")
    shutil.rmtree(tmp)
    if rollup:
        pg.q("ALTER TABLE insights.events ENABLE TRIGGER USER")
        t = time.perf_counter()
        info["person_days_rows"] = pg.one(f"SELECT insights.rebuild_person_days({pid})")
        info["rebuild_person_days_s"] = round(time.perf_counter() - t, 2)
        tables.append("insights.person_days")
    # $browser is the hot property of the DAU and filter queries: materialise it as a pg_insights
    # user would (sql/materialize.sql). Before the secondary indexes exist, so the table rewrite
    # only rebuilds the primary key. The plain-SQL peer gets variants over the same column.
    if pg.one("SELECT to_regproc('insights.materialize_property') IS NOT NULL"):
        t = time.perf_counter()
        info["materialized_browser"] = pg.one("SELECT insights.materialize_property('$browser')")
        info["materialize_browser_s"] = round(time.perf_counter() - t, 2)
        # $current_url is the item of the paths query: materialised too, as a user running URL
        # paths would; pg_insights' paths engine reads the column, and the plain-SQL peer gets a
        # variant over it (DuckDB and chdb have their column and JSON variants).
        t = time.perf_counter()
        info["materialized_url"] = pg.one("SELECT insights.materialize_property('$current_url')")
        info["materialize_url_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    for _, ddl in idx:
        pg.q(ddl)
    info["create_indexes_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    for rel, name, d in fks:
        pg.q(f"ALTER TABLE {rel} ADD CONSTRAINT {name} {d}")
    info["add_foreign_keys_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    for tb in tables:
        pg.q(f"VACUUM (FREEZE, ANALYZE) {tb}")
    pg.q("CHECKPOINT")
    if rollup:
        # Again: a concurrent autovacuum ANALYZE of the events may have held back the first pass,
        # leaving pages not all-visible (index-only scans would then visit the heap).
        pg.q("VACUUM (FREEZE) insights.person_days")
    info["vacuum_analyze_s"] = round(time.perf_counter() - t, 2)
    # The columnar segments (sql/segments.sql) the worker would build for these closed days: built
    # here at once (the bench database is not served by the worker), after the materialisation so
    # they hold $browser and $current_url.
    if pg.one("SELECT to_regproc('insights.seal_segments') IS NOT NULL"):
        t = time.perf_counter()
        info["segments_built"] = pg.one(f"SELECT insights.seal_segments({pid}, 1000000)")
        info["seal_segments_s"] = round(time.perf_counter() - t, 2)
        pg.q("VACUUM ANALYZE insights.event_segments")
        pg.q("VACUUM ANALYZE insights.event_segment_columns")
        pg.q("VACUUM ANALYZE insights.segment_dict")
        info["segment_bytes"] = pg.one(f"SELECT sum(bytes)::int8 FROM insights.segments WHERE project_id = {pid}")
        info["segment_heap_bytes"] = pg.one(f"SELECT sum(heap_bytes)::int8 FROM insights.segments WHERE project_id = {pid}")
        info["segment_table_bytes"] = pg.one(
            "SELECT sum(pg_total_relation_size(c))::int8 FROM unnest(ARRAY['insights.event_segments', "
            "'insights.event_segment_columns', 'insights.segment_dict']::regclass[]) c")
        info["events_table_bytes"] = pg.one("SELECT pg_table_size('insights.events')")
    info["indexes"] = [d for _, d in idx]
    pg.q("CREATE TABLE public.bench_meta (k text PRIMARY KEY, v text)")
    pg.q("INSERT INTO public.bench_meta VALUES ('sig', %s), ('load', %s)", (sig, json.dumps(info)))
    log(f"Postgres: loaded ({info})")
    return db, info


def pg_sizes(pg):
    rows = pg.q("""SELECT c.oid::regclass::text, pg_relation_size(c.oid), c.relkind FROM pg_class c
                   JOIN pg_namespace s ON s.oid = c.relnamespace
                   WHERE s.nspname = 'insights' AND c.relkind IN ('r', 'i')
                     AND (c.relname LIKE 'events%' OR c.relname LIKE 'persons%'
                          OR c.relname LIKE 'person\_distinct\_ids%')
                   ORDER BY 2 DESC""")
    return {name: size for name, size, _ in rows}


# ------------------------------------------------------------------------------------------------
# DuckDB and chdb
# ------------------------------------------------------------------------------------------------
def duckdb_load(n, paths, reload):
    import duckdb
    path = os.path.join(DATA, f"duckdb_{n}.duckdb")
    sig = f"{file_sig(paths['events'])}|{CHAINS_SIG}"
    if reload and os.path.exists(path):
        os.remove(path)
    con = duckdb.connect(path)
    con.execute("SET threads = 2; SET TimeZone = 'UTC'")
    try:
        if con.execute("SELECT v FROM bench_meta WHERE k = 'sig'").fetchone()[0] == sig:
            log("DuckDB: already loaded")
            info = json.loads(con.execute("SELECT v FROM bench_meta WHERE k = 'load'").fetchone()[0])
            duckdb_persons(con, paths, info)
            return con, info
    except Exception:
        pass
    log("DuckDB: loading")
    t = time.perf_counter()
    # ts as a plain TIMESTAMP holding UTC (DuckDB's fast path; TIMESTAMPTZ goes through ICU).
    con.execute(f"""CREATE OR REPLACE TABLE events AS
        SELECT uuid, event, distinct_id, person_id, ts::TIMESTAMP AS ts, browser, country, current_url,
               session_id, properties, {Q.CHAIN_DUCKDB} AS elements_chain
        FROM read_parquet('{paths['events']}')""")
    con.execute("CHECKPOINT")
    info = {"load_s": round(time.perf_counter() - t, 2), "file_bytes": os.path.getsize(path)}
    con.execute("CREATE OR REPLACE TABLE bench_meta (k VARCHAR PRIMARY KEY, v VARCHAR)")
    con.execute("INSERT INTO bench_meta VALUES ('sig', ?), ('load', ?)", [sig, json.dumps(info)])
    con.execute("CHECKPOINT")
    log(f"DuckDB: loaded ({info})")
    duckdb_persons(con, paths, info)
    return con, info


def duckdb_persons(con, paths, info):
    """persons (id, created_at) for lifecycle's 'new': the same persons parquet Postgres COPYs
    (created_at = the person's first event). Added to an existing load when missing."""
    if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'persons'").fetchone()[0]:
        return
    t = time.perf_counter()
    con.execute(f"""CREATE TABLE persons AS
        SELECT id, created_at::TIMESTAMP AS created_at FROM read_parquet('{paths['persons']}')""")
    con.execute("CHECKPOINT")
    info["persons_load_s"] = round(time.perf_counter() - t, 2)
    log(f"DuckDB: persons loaded ({info['persons_load_s']} s)")


def chdb_load(n, paths, reload):
    from chdb import session
    path = os.path.join(DATA, f"chdb_{n}")
    stamp = path + ".stamp"
    sig = f"{file_sig(paths['events'])}|{CHAINS_SIG}"
    if reload or not (os.path.exists(stamp) and json.load(open(stamp))["sig"] == sig):
        shutil.rmtree(path, ignore_errors=True)
        if os.path.exists(stamp):
            os.remove(stamp)
    s = session.Session(path)
    if os.path.exists(stamp):
        log("chdb: already loaded")
        info = json.load(open(stamp))["load"]
        chdb_persons(s, paths, info)
        return s, info
    log("chdb: loading")
    t = time.perf_counter()
    # PostHog's events table shape: partitioned by month, ordered by (day, event, distinct id);
    # plain String columns, as PostHog's materialised property columns are.
    s.query("CREATE DATABASE IF NOT EXISTS bench")
    s.query("""CREATE TABLE bench.events (
        uuid UUID, event String, distinct_id String, person_id Int64, ts DateTime64(6, 'UTC'),
        browser String, country String, current_url String, session_id String, properties String,
        elements_chain String)
      ENGINE = MergeTree PARTITION BY toYYYYMM(ts)
      ORDER BY (toDate(ts), event, cityHash64(distinct_id), cityHash64(uuid))""")
    s.query(f"""INSERT INTO bench.events SELECT toUUID(uuid), event, distinct_id, person_id,
                  toDateTime64(ts, 6, 'UTC'), browser, country, current_url, session_id, properties,
                  {Q.CHAIN_CHDB}
                FROM file('{paths['events']}', Parquet) SETTINGS max_threads = 2""")
    s.query("OPTIMIZE TABLE bench.events FINAL")
    r = s.query("""SELECT sum(data_compressed_bytes), sum(data_uncompressed_bytes), count()
                   FROM system.parts WHERE database = 'bench' AND table = 'events' AND active""", "TSV")
    comp, raw, parts = r.data().split()
    info = {"load_s": round(time.perf_counter() - t, 2), "compressed_bytes": int(comp),
            "uncompressed_bytes": int(raw), "parts": int(parts)}
    json.dump({"sig": sig, "load": info}, open(stamp, "w"))
    log(f"chdb: loaded ({info})")
    chdb_persons(s, paths, info)
    return s, info


def chdb_persons(s, paths, info):
    """bench.persons (id, created_at) for lifecycle's 'new', from the persons parquet Postgres COPYs
    (PostHog keeps created_at in its person table). Added to an existing load when missing."""
    if s.query("EXISTS TABLE bench.persons", "TSV").data().strip() == "1":
        return
    t = time.perf_counter()
    s.query("""CREATE TABLE bench.persons (id Int64, created_at DateTime64(6, 'UTC'))
               ENGINE = MergeTree ORDER BY id""")
    s.query(f"""INSERT INTO bench.persons SELECT id, toDateTime64(created_at, 6, 'UTC')
                FROM file('{paths['persons']}', Parquet) SETTINGS max_threads = 2""")
    s.query("OPTIMIZE TABLE bench.persons FINAL")
    info["persons_load_s"] = round(time.perf_counter() - t, 2)
    log(f"chdb: persons loaded ({info['persons_load_s']} s)")


# ------------------------------------------------------------------------------------------------
# Running and checking queries
# ------------------------------------------------------------------------------------------------
def norm_rows(rows, drop_zero_last=False):
    out = []
    for r in rows:
        r = tuple("" if v is None else str(v) for v in r)
        if drop_zero_last and r[-1] == "0":
            continue
        out.append(r)
    return sorted(out)


def norm_posthog_funnel(rows, cols, breakdown):
    """insights.funnel rows (breakdown_value, step, name, count, …), cumulative ("furthest step ≥ k")
    → persons per exact furthest level, like windowFunnel."""
    i_b, i_s, i_c = cols.index("breakdown_value"), cols.index("step"), cols.index("count")
    steps = [r[i_s] for r in rows]
    shift = 1 if steps and min(steps) == 0 else 0
    cum = {}
    for r in rows:
        b = (r[i_b] or "") if breakdown else ""
        cum[(b, r[i_s] + shift)] = int(r[i_c])
    out = []
    for (b, k), c in cum.items():
        exact = c - cum.get((b, k + 1), 0)
        out.append((b, k, exact) if breakdown else (k, exact))
    return norm_rows(out, drop_zero_last=True)


PATHS_RTOL = 1e-9  # average_conversion_time: a mean of float ms, summed in each engine's own order
PATHS_KEEP_ROWS = 50  # paths has ~19k edges at 1M: the results file keeps the heaviest ones and a digest


def norm_paths(rows):
    """Paths edges (source, target, value, average ms) → sorted string tuples; the mean as repr(float)
    (compared with a relative tolerance by paths_problems, not as text)."""
    return sorted((str(s), str(t), str(int(v)), repr(float(a))) for s, t, v, a in rows)


def paths_problems(ref, got, rtol=PATHS_RTOL):
    """Differences between two normalised edge lists: missing or extra edges, duplicates, other
    values, means further apart than rtol (relative) → lines; [] when they agree."""
    out = []
    for label, rows in (("reference", ref), ("this engine", got)):
        if len({(r[0], r[1]) for r in rows}) != len(rows):
            out.append(f"duplicate edges in {label}'s rows")
    a, b = {(r[0], r[1]): r for r in ref}, {(r[0], r[1]): r for r in got}
    out += [f"- {k[0]} → {k[1]}: value {a[k][2]}, only in the reference" for k in sorted(a.keys() - b.keys())]
    out += [f"+ {k[0]} → {k[1]}: value {b[k][2]}, only here" for k in sorted(b.keys() - a.keys())]
    for k in sorted(a.keys() & b.keys()):
        (_, _, va, ma), (_, _, vb, mb) = a[k], b[k]
        x, y = float(ma), float(mb)
        if va != vb:
            out.append(f"! {k[0]} → {k[1]}: value {va} against {vb}")
        elif abs(x - y) > rtol * max(abs(x), abs(y)):
            out.append(f"! {k[0]} → {k[1]}: average_conversion_time {ma} against {mb} "
                       f"(relative {abs(x - y) / max(abs(x), abs(y)):.2e} > {rtol:g})")
    return out


def same_rows(kind, ref, got):
    return not paths_problems(ref, got) if kind == "paths" else got == ref


def paths_digest(rows):
    """sha256 of the sorted 'source\ttarget\tvalue' lines (the means left out: engines round them
    differently), to compare edge sets across runs."""
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r[0]}\t{r[1]}\t{r[2]}\n".encode())
    return h.hexdigest()[:16]


def variants(pid, mat=None, mat_url=None):
    """`mat`, `mat_url`: the columns materialising $browser and $current_url, when there are some
    (pg_load)."""
    pg, dk, ch = Q.pg_queries(pid, mat, mat_url), Q.duckdb_queries(), Q.chdb_queries()
    pg_mat = lambda q: ([(f"PG plain SQL (materialised column {mat})", "pg", pg[q + "_mat"], None)]  # noqa: E731
                        if mat else [])
    fz = "funnel_zero"  # drop zero-count levels
    return {
        "funnel": [
            ("PG plain SQL (funnel_v2)", "pg", pg["funnel"], fz),
            ("pg_insights window_funnel()", "pgi:window_funnel", Q.pgi_window_funnel(pid), fz),
            ("pg_insights funnel()", "pgi:funnel", Q.pgi_funnel(pid, False), "posthog"),
            ("pg_insights funnel(), heap (use_segments off)", "pgi:funnel", Q.heap(Q.pgi_funnel(pid, False)), "posthog"),
            ("DuckDB SQL (funnel_v2)", "duckdb", dk["funnel"], fz),
            ("chdb windowFunnel", "chdb", ch["funnel"], fz),
        ],
        "funnel_breakdown": [
            ("PG plain SQL (funnel_v2)", "pg", pg["funnel_breakdown"], fz),
            ("pg_insights funnel()", "pgi:funnel", Q.pgi_funnel(pid, True), "posthog_bd"),
            ("pg_insights funnel(), heap (use_segments off)", "pgi:funnel", Q.heap(Q.pgi_funnel(pid, True)), "posthog_bd"),
            ("DuckDB SQL (funnel_v2)", "duckdb", dk["funnel_breakdown"], fz),
            ("chdb windowFunnel + argMinIf", "chdb", ch["funnel_breakdown"], fz),
        ],
        "funnel_strict": [
            ("PG plain SQL (runs + lead)", "pg", pg["funnel_strict"], fz),
            ("pg_insights funnel() strict", "pgi:funnel", Q.pgi_funnel(pid, False, "strict"), "posthog"),
            ("pg_insights funnel() strict, heap (use_segments off)", "pgi:funnel", Q.heap(Q.pgi_funnel(pid, False, "strict")), "posthog"),
            ("DuckDB SQL (runs + lead)", "duckdb", dk["funnel_strict"], fz),
            ("chdb runs + leadInFrame", "chdb", ch["funnel_strict"], fz),
        ],
        "funnel_unordered": [
            ("PG plain SQL (next step per row)", "pg", pg["funnel_unordered"], fz),
            ("pg_insights funnel() unordered", "pgi:funnel", Q.pgi_funnel(pid, False, "unordered"), "posthog"),
            ("pg_insights funnel() unordered, heap (use_segments off)", "pgi:funnel", Q.heap(Q.pgi_funnel(pid, False, "unordered")), "posthog"),
            ("DuckDB SQL (next step per row)", "duckdb", dk["funnel_unordered"], fz),
            ("chdb minIf OVER", "chdb", ch["funnel_unordered"], fz),
        ],
        "trend_filter": [
            ("PG plain SQL (jsonb ->>)", "pg", pg["trend_filter"], None),
            *pg_mat("trend_filter"),
            ("pg_insights trend()", "pgi:trend", Q.pgi_trend_filter(pid), None),
            ("pg_insights trend(), heap (use_segments off)", "pgi:trend", Q.heap(Q.pgi_trend_filter(pid)), None),
            ("DuckDB SQL (column)", "duckdb", dk["trend_filter"], None),
            ("DuckDB SQL (JSON)", "duckdb", dk["trend_filter_json"], None),
            ("chdb count (column)", "chdb", ch["trend_filter"], None),
            ("chdb count (JSON)", "chdb", ch["trend_filter_json"], None),
        ],
        "dau": [
            ("PG plain SQL (jsonb ->>)", "pg", pg["dau"], None),
            *pg_mat("dau"),
            ("pg_insights trend()", "pgi:trend", Q.pgi_dau(pid), None),
            ("pg_insights trend(), heap (use_segments off)", "pgi:trend", Q.heap(Q.pgi_dau(pid)), None),
            ("trend()'s previous statement (DISTINCT), as SQL", "pg", Q.pgi_dau_previous(pid), None),
            ("DuckDB SQL (column)", "duckdb", dk["dau"], None),
            ("DuckDB SQL (JSON)", "duckdb", dk["dau_json"], None),
            ("chdb uniqExact (column)", "chdb", ch["dau"], None),
            ("chdb uniqExact (JSON)", "chdb", ch["dau_json"], None),
        ],
        "retention": [
            ("PG plain SQL", "pg", pg["retention"], None),
            ("pg_insights retention()", "pgi:retention", Q.pgi_retention(pid), None),
            ("DuckDB SQL", "duckdb", dk["retention"], None),
            ("chdb min + JOIN", "chdb", ch["retention"], None),
        ],
        "retention_recurring": [
            ("PG plain SQL (self-join of person-weeks)", "pg", pg["retention_recurring"], None),
            ("pg_insights retention()", "pgi:retention", Q.pgi_retention_recurring(pid), None),
            ("pg_insights retention(), heap (use_segments off)", "pgi:retention",
             Q.heap(Q.pgi_retention_recurring(pid)), None),
            ("DuckDB SQL (self-join of person-weeks)", "duckdb", dk["retention_recurring"], None),
            ("chdb self-join of person-weeks", "chdb", ch["retention_recurring"], None),
        ],
        "stickiness": [
            ("PG plain SQL (GROUP BY person, day)", "pg", pg["stickiness"], None),
            ("PG plain SQL (count(DISTINCT day))", "pg", pg["stickiness_distinct"], None),
            ("pg_insights stickiness()", "pgi:stickiness", Q.pgi_stickiness(pid), None),
            ("pg_insights stickiness(), heap (use_segments off)", "pgi:stickiness", Q.heap(Q.pgi_stickiness(pid)), None),
            ("DuckDB SQL (count(DISTINCT day))", "duckdb", dk["stickiness"], None),
            ("chdb uniqExact(day)", "chdb", ch["stickiness"], None),
        ],
        "lifecycle": [
            ("PG plain SQL (lag/lead over person-days)", "pg", pg["lifecycle"], None),
            ("pg_insights lifecycle()", "pgi:lifecycle", Q.pgi_lifecycle(pid), None),
            ("pg_insights lifecycle(), heap (use_segments off)", "pgi:lifecycle", Q.heap(Q.pgi_lifecycle(pid)), None),
            ("DuckDB SQL (lag/lead over person-days)", "duckdb", dk["lifecycle"], None),
            ("chdb groupUniqArray + ARRAY JOIN", "chdb", ch["lifecycle"], None),
        ],
        "elements": [
            ("PG plain SQL (GROUP BY chain)", "pg", Q.pg_elements(pid), None),
            ("pg_insights _elements_stats()", "pgi:_elements_stats", Q.pgi_elements(pid), None),
            ("DuckDB SQL (GROUP BY chain)", "duckdb", dk["elements"], None),
            ("chdb GROUP BY chain", "chdb", ch["elements"], None),
        ],
        "paths": [
            ("PG plain SQL (window, row_number per session)", "pg", pg["paths"], "paths"),
            ("PG plain SQL (window, one sort)", "pg", pg["paths_one_sort"], "paths"),
            *([(f"PG plain SQL (window, row_number per session, materialised column {mat_url})", "pg",
                pg["paths_mat"], "paths")] if mat_url else []),
            (f"pg_insights paths(){' (reads ' + mat_url + ')' if mat_url else ''}", "pgi:paths",
             Q.pgi_paths(pid), "paths"),
            ("pg_insights paths(), heap (use_segments off)", "pgi:paths", Q.heap(Q.pgi_paths(pid)), "paths"),
            ("DuckDB SQL (window, row_number per session, column)", "duckdb", dk["paths"], "paths"),
            ("DuckDB SQL (window, one sort, column)", "duckdb", dk["paths_one_sort"], "paths"),
            ("DuckDB SQL (window, row_number per session, JSON)", "duckdb", dk["paths_json"], "paths"),
            ("chdb arrays (column)", "chdb", ch["paths"], "paths"),
            ("chdb arrays (JSON)", "chdb", ch["paths_json"], "paths"),
            ("chdb window (column)", "chdb", ch["paths_window"], "paths"),
        ],
    }


def rss_anon_kb(pid):
    """RssAnon of a process (private anonymous resident memory: heap, hash tables, sort memory; not the
    shared buffers, which every backend maps), in kB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


class MemSampler:
    """Peak memory of one query, sampled every 5 ms from /proc while it runs (the warm-up run).

    Postgres: the sum of RssAnon over the session's backend and its parallel workers (children of
    the postmaster whose command line names the backend's pid), peak minus the backend's RssAnon just
    before the query. DuckDB and chdb run inside this Python process: the growth of its RssAnon over
    the value before the query (a lower bound: memory their allocators kept from earlier queries is
    reused without growing RSS)."""

    def __init__(self, pids_fn):
        import threading
        self.pids_fn = pids_fn
        self.base = sum(rss_anon_kb(p) for p in pids_fn())
        self.peak = self.base
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._loop, daemon=True)
        self.th.start()

    def _loop(self):
        while not self.stop_ev.is_set():
            self.peak = max(self.peak, sum(rss_anon_kb(p) for p in self.pids_fn()))
            self.stop_ev.wait(0.005)

    def stop(self):
        self.stop_ev.set()
        self.th.join()
        self.peak = max(self.peak, sum(rss_anon_kb(p) for p in self.pids_fn()))
        return {"peak_kb": self.peak, "base_kb": self.base, "delta_kb": self.peak - self.base}


class Runner:
    def __init__(self, pg, duck, ch):
        self.pg, self.duck, self.ch = pg, duck, ch
        self.backend = pg.one("SELECT pg_backend_pid()")
        try:
            self.postmaster = int(open(os.path.join(PGDATA, "postmaster.pid")).readline())
        except (OSError, ValueError):
            self.postmaster = None

    def pg_pids(self):
        pids = [self.backend]
        if self.postmaster:
            tag = f"parallel worker for PID {self.backend}".encode()
            for c in children(self.postmaster):
                try:
                    if tag in open(f"/proc/{c}/cmdline", "rb").read():
                        pids.append(c)
                except OSError:
                    pass
        return pids

    def run_mem(self, engine, sql):
        """run() while sampling memory → (seconds, rows, cols, mem dict)"""
        pg_side = engine == "pg" or engine.startswith("pgi:")
        if pg_side:  # a fresh backend, so its RssAnon starts low (freed memory is not always returned)
            import psycopg
            main_conn, main_backend = self.pg.conn, self.backend
            self.pg.conn = psycopg.connect(host=PGDIR, port=PG_PORT, user="postgres",
                                           dbname=main_conn.info.dbname, autocommit=True, prepare_threshold=None)
            self.backend = self.pg.one("SELECT pg_backend_pid()")
        sampler = MemSampler(self.pg_pids if pg_side else (lambda: [os.getpid()]))
        try:
            el, rows, cols = self.run(engine, sql)
        finally:
            mem = sampler.stop()
            if pg_side:
                self.pg.conn.close()
                self.pg.conn, self.backend = main_conn, main_backend
        mem["method"] = ("RssAnon of a fresh backend + its parallel workers" if pg_side
                         else "RssAnon growth of the Python process")
        return el, rows, cols, mem

    def available(self, engine):
        if not engine.startswith("pgi:"):
            return True, ""
        fn = engine.split(":")[1]
        ok = self.pg.one("""SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                            WHERE n.nspname = 'insights' AND p.proname = %s""", (fn,))
        return (True, "") if ok else (False, f"not available: insights.{fn} does not exist in the catalog")

    def run(self, engine, sql):
        """→ (seconds, rows, column names)"""
        if engine == "pg" or engine.startswith("pgi:"):
            t = time.perf_counter()
            with self.pg.conn.cursor() as c:
                c.execute(sql)
                rows = c.fetchall()
                cols = [d.name for d in c.description]
            return time.perf_counter() - t, rows, cols
        if engine == "duckdb":
            t = time.perf_counter()
            cur = self.duck.execute(sql)
            rows = cur.fetchall()
            el = time.perf_counter() - t
            return el, rows, [d[0] for d in cur.description]
        if engine == "chdb":
            t = time.perf_counter()
            r = self.ch.query(sql, "TSV")
            el = time.perf_counter() - t
            if r.has_error():
                raise RuntimeError(r.error_message())
            text = r.data()
            rows = [tuple(line.split("\t")) for line in text.splitlines() if line]
            return el, rows, []
        raise ValueError(engine)

    @staticmethod
    def normalise(kind, rows, cols):
        if kind == "posthog":
            return norm_posthog_funnel(rows, cols, False)
        if kind == "posthog_bd":
            return norm_posthog_funnel(rows, cols, True)
        if kind == "paths":
            return norm_paths(rows)
        return norm_rows(rows, drop_zero_last=(kind == "funnel_zero"))

    def explain(self, sql, nested):
        with self.pg.conn.cursor() as c:
            notices = []

            def on_notice(d):
                notices.append(d.message_primary)
            if nested:  # the SPI queries inside insights.funnel() only show through auto_explain
                self.pg.conn.add_notice_handler(on_notice)
                c.execute("LOAD 'auto_explain'")
                c.execute("SET auto_explain.log_min_duration = 1; SET auto_explain.log_analyze = on; "
                          "SET auto_explain.log_buffers = on; SET auto_explain.log_nested_statements = on; "
                          "SET auto_explain.log_level = notice; SET client_min_messages = notice")
            try:
                c.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                text = "\n".join(r[0] for r in c.fetchall())
            finally:
                if nested:
                    c.execute("SET auto_explain.log_min_duration = -1; SET client_min_messages = warning")
                    self.pg.conn.remove_notice_handler(on_notice)
            if nested and notices:  # the 8 slowest nested statements of at least 1 ms
                def dur(m):
                    try:
                        return float(m.split()[1])
                    except (IndexError, ValueError):
                        return 0.0
                notices = [m for m in notices if "Query Text: EXPLAIN" not in m]
                top = sorted(notices, key=dur, reverse=True)[:8]
                text += (f"\n\n-- nested statements (auto_explain, {len(notices)} of >= 1 ms, slowest "
                         f"{len(top)} shown):\n" + "\n\n".join(top))
            return text


def show_diff(qname, ref_label, ref, label, got, kind=None):
    os.makedirs(OUT, exist_ok=True)
    if kind == "paths":  # edge by edge, means with their tolerance
        probs = paths_problems(ref, got)
        diff = (f"{len(ref)} edges in {ref_label}, {len(got)} in {label}; {len(probs)} differences:\n"
                + "\n".join(probs))
    else:
        a = [" | ".join(r) for r in ref]
        b = [" | ".join(r) for r in got]
        diff = "\n".join(difflib.unified_diff(a, b, ref_label, label, lineterm=""))
    path = os.path.join(OUT, f"mismatch_{qname}.txt")
    with open(path, "w") as f:
        f.write(f"{qname}: {label} differs from {ref_label}\n{diff}\n")
    print(f"\n\033[1;31mMISMATCH in {qname}: '{label}' differs from '{ref_label}'\033[0m\n{diff[:4000]}\n"
          f"(full diff in {path})", file=sys.stderr)


def bench_queries(runner, pid, names, runs, keep_going, result):
    qres = result.setdefault("queries", {})
    failed = []
    for qname in names:
        log(f"query {qname}")
        entry = qres[qname] = {"description": Q.QUERIES[qname], "variants": {}, "command": result["command"],
                               "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                               "loadavg": open("/proc/loadavg").read().split()[:3]}
        ref = ref_label = None
        load_pg = result["load"]["postgres"]
        for label, engine, sql, kind in variants(pid, load_pg.get("materialized_browser"),
                                                 load_pg.get("materialized_url"))[qname]:
            v = entry["variants"][label] = {"engine": engine, "sql": sql}
            ok, why = runner.available(engine)
            skip = [x for x in os.environ.get("PGI_BENCH_SKIP", "").split(",") if x]
            if ok and any(x in label for x in skip):  # e.g. a peer measured in an earlier run
                ok, why = False, "skipped (PGI_BENCH_SKIP)"
            if not ok:
                v["status"] = why
                log(f"  {label}: {why}")
                continue
            try:
                el, rows, cols, mem = runner.run_mem(engine, sql)  # warm-up, cross-check, memory
            except Exception as e:  # noqa: BLE001
                v["status"] = f"error: {str(e).strip().splitlines()[0][:300]}"
                log(f"  {label}: {v['status']}")
                failed.append(f"{qname}/{label}: error")
                if not keep_going:
                    return failed
                continue
            got = runner.normalise(kind, rows, cols)
            v["warmup_ms"] = ms(el)
            v["mem"] = mem
            if ref is None:
                ref, ref_label = got, label
                entry["rows"] = [list(r) for r in got]
                if kind == "paths":  # every edge: keep the heaviest, the count and a digest
                    entry["rows_total"] = len(got)
                    entry["rows_digest"] = paths_digest(got)
                    entry["rows"] = [list(r) for r in sorted(got, key=lambda r: (-int(r[2]), r[0], r[1]))
                                     [:PATHS_KEEP_ROWS]]
                    entry["rows_note"] = (f"the {PATHS_KEEP_ROWS} heaviest of {len(got)} edges (value desc, "
                                          f"then source, target) from {ref_label}; rows_digest = sha256 of "
                                          "the sorted source/target/value lines")
            elif not same_rows(kind, ref, got):
                show_diff(qname, ref_label, ref, label, got, kind)
                v["status"] = f"MISMATCH against {ref_label}"
                failed.append(f"{qname}/{label}: mismatch")
                if not keep_going:
                    return failed
                continue
            times = []
            for _ in range(runs):
                el, rows, cols = runner.run(engine, sql)
                if not same_rows(kind, ref, runner.normalise(kind, rows, cols)):
                    sys.exit(f"{qname}/{label}: result changed between runs")
                times.append(ms(el))
            v.update(status="ok", times_ms=times, median_ms=round(statistics.median(times), 2),
                     min_ms=min(times), max_ms=max(times))
            log(f"  {label}: median {v['median_ms']} ms (min {v['min_ms']}, max {v['max_ms']}) "
                f"[{len(got)} rows, identical]")
            if engine == "pg" or engine.startswith("pgi:"):
                v["explain"] = runner.explain(sql, nested=engine in ("pgi:funnel", "pgi:trend", "pgi:retention",
                                                              "pgi:stickiness", "pgi:lifecycle",
                                                              "pgi:paths"))
        if ref is None:
            entry["rows"] = []
    return failed


# ------------------------------------------------------------------------------------------------
# Ingestion through insights.capture_batch
# ------------------------------------------------------------------------------------------------
def bench_ingest(pg, paths, n_events, batch):
    import duckdb
    mode, _ = ext_signature()
    con = duckdb.connect()
    con.execute("SET threads = 2; SET TimeZone = 'UTC'")
    batches = [r[0] for r in con.execute(f"""
        SELECT '[' || string_agg(json_object(
                 'event', event, 'distinct_id', distinct_id, 'uuid', uuid,
                 'timestamp', strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ'), 'properties', properties::JSON)::VARCHAR,
                 ',' ORDER BY rn) || ']'
        FROM (SELECT *, row_number() OVER (ORDER BY ts, person_id) - 1 AS rn
              FROM read_parquet('{paths['events']}') ORDER BY ts, person_id LIMIT {n_events})
        GROUP BY rn // {batch} ORDER BY rn // {batch}""").fetchall()]
    con.close()
    if mode == "extension":
        pid = pg.one("SELECT project_id FROM insights.create_project('bench-ingest')")
    else:
        pid = pg.one("INSERT INTO insights.projects (name, api_token) "
                     "VALUES ('bench-ingest', 'phc_benchingestbenchingestbench') RETURNING id")
    log(f"ingest: {n_events} events in {len(batches)} batches of {batch} via insights.capture_batch "
        f"(project {pid})")
    lat = []
    stored = 0
    t0 = time.perf_counter()
    for b in batches:
        t = time.perf_counter()
        stored += pg.one("SELECT insights.capture_batch(%s, %s::jsonb, NULL)", (pid, b))
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    counts = pg.q("""SELECT (SELECT count(*) FROM insights.events WHERE project_id = %(p)s),
                            (SELECT count(*) FROM insights.persons WHERE project_id = %(p)s)""", {"p": pid})[0]
    res = {"command": os.environ.get("BENCH_CMDLINE", ""), "events": n_events, "batch_size": batch, "batches": len(batches), "stored": stored,
           "events_in_table": counts[0], "persons_created": counts[1], "total_s": round(total, 2),
           "events_per_s": round(n_events / total), "batch_ms_median": ms(statistics.median(lat)),
           "batch_ms_p95": ms(sorted(lat)[int(0.95 * (len(lat) - 1))]), "batch_ms_max": ms(max(lat)),
           "note": "sent_at NULL (timestamps kept); a fresh project per run, deleted afterwards"}
    log(f"ingest: {res['events_per_s']} events/s, batch median {res['batch_ms_median']} ms")
    pg.q("DELETE FROM insights.projects WHERE id = %s", (pid,))
    for tb in ("insights.events", "insights.persons", "insights.person_distinct_ids", "insights.elements",
               "insights.person_days"):
        if pg.one("SELECT to_regclass(%s) IS NOT NULL", (tb,)):
            pg.q(f"VACUUM (INDEX_CLEANUP ON, ANALYZE) {tb}")  # no 2 % bypass: all-visible again
    if stored != n_events or counts[0] != n_events:
        sys.exit(f"ingest: stored {stored}, in table {counts[0]}, expected {n_events}")
    return res


# ------------------------------------------------------------------------------------------------
def machine():
    cpu = open("/proc/cpuinfo").read()
    models = [ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("model name")]
    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout
    os_name = ""
    if os.path.exists("/etc/os-release"):
        for ln in open("/etc/os-release"):
            if ln.startswith("PRETTY_NAME="):
                os_name = ln.split("=", 1)[1].strip().strip('"')
    return {"cpu": f"{len(models)} × {models[0] if models else '?'}", "free_g": free.rstrip(),
            "kernel": platform.release(), "os": os_name}


def git_commit():
    try:  # also right in a git worktree, where .git is a file
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    except OSError:
        pass
    try:
        head = open(os.path.join(ROOT, ".git", "HEAD")).read().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(None, 1)[1]
        p = os.path.join(ROOT, ".git", ref)
        if os.path.exists(p):
            return open(p).read().strip()
        for ln in open(os.path.join(ROOT, ".git", "packed-refs")):
            if ln.strip().endswith(ref):
                return ln.split()[0]
    except OSError:
        pass
    return "unknown"


def versions(pg, ch):
    import chdb
    import duckdb
    import numpy
    import psycopg
    import pyarrow
    v = {}
    if ch is not None:
        v["chdb"] = f"{chdb.__version__} (ClickHouse {ch.query('SELECT version()', 'TSV').data().strip()})"
    return v | {
        "postgres": pg.one("SELECT version()"),
        "pg_insights": pg.one("SELECT extversion FROM pg_extension WHERE extname = 'pg_insights'")
        or ("0.1.0 (cargo pgrx package, script run in schema insights)" if PKG
            else "not installed (tables from sql/schema.sql)"),
        "pg_insights_commit": git_commit(),
        "duckdb": duckdb.__version__,
        "python": platform.python_version(), "pyarrow": pyarrow.__version__, "numpy": numpy.__version__,
        "psycopg": psycopg.__version__,
    }


def main():
    ap = argparse.ArgumentParser(description="pg_insights benchmark (see bench/README.md)")
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per engine (after 1 warm-up)")
    ap.add_argument("--only", default="", help="comma list of query-name prefixes: funnel, "
                    "funnel_breakdown, funnel_strict, funnel_unordered, trend_filter, dau, retention, "
                    "stickiness, lifecycle, paths, elements, ingest")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--reload", action="store_true", help="regenerate nothing, but reload every engine")
    ap.add_argument("--regen", action="store_true", help="regenerate the parquet (implies --reload)")
    ap.add_argument("--keep-going", action="store_true", help="record mismatches instead of stopping")
    ap.add_argument("--keep-pg", action="store_true", help="leave the bench cluster running")
    ap.add_argument("--ingest-events", type=int, default=200_000)
    ap.add_argument("--tag", default="", help="write bench/results/events_N_TAG.json, its own section in "
                    "RESULTS.md, instead of merging into events_N.json (a run on another machine or day)")
    args = ap.parse_args()
    if args.tag and not all(ch.isalnum() or ch in "-_" for ch in args.tag):
        sys.exit("--tag: letters, digits, '-' and '_' only")
    n = args.events
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    qnames = [q for q in Q.QUERIES if not only or any(q.startswith(o) for o in only)]
    do_ingest = not only or "ingest" in only
    if not qnames and not do_ingest:
        sys.exit(f"--only {args.only}: nothing matches (queries: {', '.join(Q.QUERIES)}, ingest)")

    os.makedirs(DATA, exist_ok=True)
    os.makedirs(RESULTS, exist_ok=True)
    paths = {k: os.path.join(DATA, f"{k}_{n}.parquet") for k in ("events", "persons", "distinct_ids")}
    if args.regen or not all(os.path.exists(p) for p in paths.values()):
        log(f"generating {n} events (seed {args.seed})")
        sh([sys.executable, os.path.join(BENCH, "gen.py"), "--events", str(n), "--seed", str(args.seed),
            "--out", DATA])
        args.reload = True

    started = dt.datetime.now(dt.timezone.utc)
    result_path = os.path.join(RESULTS, f"events_{n}{'_' + args.tag if args.tag else ''}.json")
    result = json.load(open(result_path)) if os.path.exists(result_path) else {}
    result.update(events=n, tag=args.tag or None, seed=args.seed, started_at=started.isoformat(timespec="seconds"),
                  command=os.environ.get("BENCH_CMDLINE") or "bench/run " + shlex.join(sys.argv[1:]),
                  runs=args.runs, machine=machine(), loadavg_start=open("/proc/loadavg").read().split()[:3])
    result.setdefault("queries", {})

    pg = Postgres()
    try:
        pg.start()
        db, pg_info = pg_load(pg, n, paths, args.reload)
        release_install_lock()
        pg.connect(db)
        pid = json.loads(pg.one("SELECT v FROM public.bench_meta WHERE k = 'load'"))["project_id"]
        duck = ch = None
        result.setdefault("load", {})["postgres"] = pg_info
        if qnames:  # an ingest-only run needs no peers
            duck, result["load"]["duckdb"] = duckdb_load(n, paths, args.reload)
            ch, result["load"]["chdb"] = chdb_load(n, paths, args.reload)
        result["sizes"] = {"postgres": pg_sizes(pg)}
        result["persons"] = pg.one("SELECT count(*) FROM insights.persons WHERE project_id = %s", (pid,))
        result["pg_settings"] = {k: pg.one(f"SHOW {k}") for k in
                                 ("shared_buffers", "work_mem", "max_parallel_workers_per_gather",
                                  "random_page_cost", "jit", "fsync", "effective_cache_size", "TimeZone")}
        result["versions"] = dict(result.get("versions", {}), **versions(pg, ch))
        if pg.lib:
            result["versions"]["pg_insights_lib"] = (f"sha256 {pg.lib['sha256']}…, {pg.lib['bytes']:,} B, "
                                                     f"installed {pg.lib['installed_at']} (private snapshot)")
        runner = Runner(pg, duck, ch)
        failed = bench_queries(runner, pid, qnames, args.runs, args.keep_going, result)
        if do_ingest and not failed:
            result["ingest"] = bench_ingest(pg, paths, args.ingest_events, 1000)
        if ch is not None:
            ch.close()
            duck.close()
    finally:
        release_install_lock()
        if not args.keep_pg:
            pg.stop()
    result["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    result["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    result["failed"] = failed
    with open(result_path, "w") as f:
        json.dump(result, f, indent=1)
    report.write(RESULTS, os.path.join(BENCH, "RESULTS.md"))
    log(f"wrote {result_path} and bench/RESULTS.md")
    if failed:
        print("\033[1;31mFAILED: " + "; ".join(failed) + "\033[0m", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
