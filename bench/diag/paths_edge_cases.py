"""Paths rules the bench data does not exercise (trailing '/', missing URL, equal timestamps ordered
by uuid, a gap of exactly 30 minutes, more than 5 items, repeats across a session boundary), on
crafted events: pg_insights and the plain-SQL peers in a rolled-back transaction on the kept bench
cluster, the DuckDB and chdb peers over the same events in a temporary parquet, each against a
Python transcription of docs/insights.md "Paths".

    /opt/pg_insights/bench-venv/bin/python bench/diag/paths_edge_cases.py [--events 1000000]
"""
import argparse
import collections
import datetime as dt
import json
import os
import sys
import uuid

import psycopg

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)
import bench as B  # noqa: E402
import queries as Q  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--events", type=int, default=1_000_000, help="which bench database (bench_N) to use")
a = ap.parse_args()
c = psycopg.connect(host=os.path.join(BENCH, ".pg"), port=54359, user="postgres", dbname=f"bench_{a.events}")
cur = c.cursor()
pid = cur.execute("SELECT project_id FROM insights.create_project('paths-edge-cases')").fetchone()[0]
T0 = dt.datetime(2026, 10, 10, 12, 0, tzinfo=dt.timezone.utc)
m = lambda x: T0 + dt.timedelta(minutes=x)
us = lambda x: dt.timedelta(microseconds=x)
U = lambda n: uuid.UUID(int=n)
ev = []  # (person, ts, uuid, url or None, event)
n = [1000]
def add(p, t, url, event='$pageview', u=None):
    n[0] += 1
    ev.append((p, t, u or U(n[0] * 7919 % 10**9 + 10**12), url, event))
# person 1: trailing slashes, '/', '//', missing and empty URL, repeats collapsing to the last
add(1, m(0), '/a/'); add(1, m(1), '/a'); add(1, m(2), '/'); add(1, m(3), '//'); add(1, m(4), None)
add(1, m(5), ''); add(1, m(6), '/b//'); add(1, m(7), '/b/')
# person 2: gap exactly 30 min (new session), 30 min - 1 µs (same session), repeat across the boundary
add(2, m(0), '/x'); add(2, m(30), '/x'); add(2, m(60) - us(1), '/y'); add(2, m(60) - us(1) + dt.timedelta(minutes=30), '/y')
add(2, m(91), '/z')
# person 3: equal timestamps, order decided by the uuid (bytewise); uuids chosen so that ClickHouse's
# half-wise order would differ from the byte order
add(3, m(0), '/p', u=uuid.UUID('00000000-0000-0001-ffff-000000000000'))
add(3, m(0), '/q', u=uuid.UUID('00000000-0000-0002-0000-000000000000'))
add(3, m(0), '/r', u=uuid.UUID('ff000000-0000-0000-0000-000000000000'))
add(3, m(1), '/q')
# person 4: 8 distinct items in one session: only the first 5; a non-pageview event in between
for i in range(8):
    add(4, m(i), f'/s{i}')
add(4, m(2) + us(5), None, event='$autocapture')
# person 5: out of range (before the 30 days): ignored
add(5, dt.datetime(2026, 10, 1, 23, 59, tzinfo=dt.timezone.utc), '/old'); add(5, dt.datetime(2026, 10, 2, 0, 1, tzinfo=dt.timezone.utc), '/new')
for p in {e[0] for e in ev}:
    cur.execute("INSERT INTO insights.persons (id, project_id, uuid, properties, is_identified, created_at) "
                "OVERRIDING SYSTEM VALUE VALUES (%s, %s, gen_random_uuid(), '{}', false, %s)", (10**9 + p, pid, T0 - dt.timedelta(days=30)))
for p, t, u, url, e in ev:
    props = {} if url is None else {'$current_url': url}
    cur.execute("INSERT INTO insights.events (project_id, uuid, event, distinct_id, person_id, \"timestamp\", properties) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)", (pid, u, e, f'd{p}', 10**9 + p, t, json.dumps(props)))

def reference():  # docs/insights.md "Paths", transcribed
    lo, hi = dt.datetime(2026, 10, 2, tzinfo=dt.timezone.utc), dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    rows = sorted((p, t, u.bytes, url or '') for p, t, u, url, e in ev if e == '$pageview' and lo <= t < hi)
    strip = lambda s: s[:-1] if s.endswith('/') and len(s) > 1 else s
    edges = collections.defaultdict(lambda: [0, 0.0])
    def flush(s):
        s = s[:5]
        for i in range(len(s) - 1):
            k = (f"{i+1}_{s[i][1]}", f"{i+2}_{s[i+1][1]}")
            edges[k][0] += 1; edges[k][1] += (s[i+1][0] - s[i][0]) / dt.timedelta(milliseconds=1)
    last_p = last_t = None; sess = []
    for p, t, _, url in rows:
        if p != last_p or t - last_t >= dt.timedelta(minutes=30):
            if sess: flush(sess)
            sess = []
        last_p, last_t = p, t
        it = strip(url)
        if sess and sess[-1][1] == it: sess[-1] = (t, it)
        else: sess.append((t, it))
    if sess: flush(sess)
    return B.norm_paths([(s, t, v[0], v[1] / v[0]) for (s, t), v in edges.items()])

ref = reference()
print(f"{len(ref)} reference edges:"); [print("  ", r) for r in ref]
pq = Q.pg_queries(pid)
for label, sql in (("pg_insights paths()", Q.pgi_paths(pid)), ("PG plain SQL (row_number per session)", pq["paths"]),
                   ("PG plain SQL (one sort)", pq["paths_one_sort"])):
    got = B.norm_paths(cur.execute(sql).fetchall())
    probs = B.paths_problems(ref, got)
    print(f"{label}: {len(got)} edges, {'agrees with the reference' if not probs else 'DIFFERS'}")
    for p in probs: print("   ", p)
c.rollback()

# the DuckDB and chdb peers over the same events, loaded as bench.py loads the parquet
import duckdb, tempfile, os, shutil
tmp = tempfile.mkdtemp()
pq_path = os.path.join(tmp, 'ev.parquet')
d = duckdb.connect(); d.execute("SET TimeZone='UTC'")
d.execute("CREATE TABLE raw (uuid VARCHAR, event VARCHAR, person_id BIGINT, ts TIMESTAMPTZ, current_url VARCHAR, properties VARCHAR)")
for p, t, u, url, e in ev:
    d.execute("INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?)", [str(u), e, 10**9 + p, t, url,
              json.dumps({} if url is None else {'$current_url': url})])
d.execute(f"COPY raw TO '{pq_path}' (FORMAT parquet)")
d.execute(f"CREATE TABLE events AS SELECT uuid, event, person_id, ts::TIMESTAMP AS ts, current_url, properties FROM read_parquet('{pq_path}')")
dq = Q.duckdb_queries()
for k in ("paths", "paths_one_sort", "paths_json"):
    got = B.norm_paths(d.execute(dq[k]).fetchall())
    probs = B.paths_problems(ref, got)
    print(f"DuckDB {k}: {len(got)} edges, {'agrees with the reference' if not probs else 'DIFFERS'}")
    for p in probs: print("   ", p)
from chdb import session
s = session.Session(os.path.join(tmp, 'ch'))
s.query("CREATE DATABASE IF NOT EXISTS bench")
s.query("""CREATE TABLE bench.events (uuid UUID, event String, person_id Int64, ts DateTime64(6, 'UTC'),
           current_url String, properties String) ENGINE = MergeTree ORDER BY (toDate(ts), event, cityHash64(uuid))""")
s.query(f"""INSERT INTO bench.events SELECT toUUID(uuid), event, person_id, toDateTime64(ts, 6, 'UTC'), current_url, properties
            FROM file('{pq_path}', Parquet)""")
cq = Q.chdb_queries()
for k in ("paths", "paths_json", "paths_window"):
    r = s.query(cq[k], "TSV")
    rows = [tuple(l.split("\t")) for l in r.data().splitlines() if l]
    got = B.norm_paths(rows)
    probs = B.paths_problems(ref, got)
    print(f"chdb {k}: {len(got)} edges, {'agrees with the reference' if not probs else 'DIFFERS'}")
    for p in probs: print("   ", p)
# what ClickHouse's own UUID order would give for person 3's tie
r = s.query("SELECT groupArray(current_url) FROM (SELECT current_url FROM bench.events WHERE person_id = 1000000003 ORDER BY ts, uuid)", "TSV")
print("chdb ORDER BY ts, uuid (UUID type) for person 3:", r.data().strip(), "(bytewise: /p, /q, /r, /q)")
s.close(); shutil.rmtree(tmp)
