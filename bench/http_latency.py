"""HTTP latency of /insights/funnel/ and /insights/trend/ under bounded concurrent load (loopback).

    /opt/pg_insights/bench-venv/bin/python bench/http_latency.py --events 1000000 \
        [--concurrency 1,4] [--seconds 20] [--result bench/results/events_1000000.json]

Runs against a stack started with scripts/stack (its .env and libpq settings come from the environment:
PGHOST/PGPORT/PGUSER/PGDATABASE for the stack's database, PGI_BASE_URL for nginx), e.g.

    STACK_DIR=$PWD/.stack PG_PORT=54729 PGRST_PORT=3409 HTTP_PORT=8409 PGI_SKIP_DEPS=1 scripts/stack up --demo
    PGHOST=$PWD/.stack/run PGPORT=54729 PGUSER=postgres PGDATABASE=insights \
      PGI_BASE_URL=http://127.0.0.1:8409 /opt/pg_insights/bench-venv/bin/python bench/http_latency.py ...

The bench parquet (bench/data/events_N.parquet, persons, distinct ids: the same data as bench/run) is
loaded once into a project of its own named `bench-http-N` (COPY FROM STDIN, person ids shifted past
the stack's), with a personal API key; the demo data is untouched. Each client is a thread with its
own keep-alive session sending the request again as soon as the previous answer arrived (closed
loop), so at most `concurrency` requests are in flight. Every answer must be 200 and equal to the
first one. Reports req/s and p50/p95/p99/max latency per endpoint and concurrency; with --result the
numbers are stored in that results file (key "http") and shown by report.py in RESULTS.md.
"""
import argparse
import json
import os
import statistics
import threading
import time

import http.client
import urllib.parse

import psycopg

BENCH = os.path.dirname(os.path.abspath(__file__))

FUNNEL = {"insight": "FUNNELS", "events": [{"id": s, "type": "events", "order": i} for i, s in
                                           enumerate(["$pageview", "view_item", "add_to_cart", "purchase"])],
          "date_from": "2026-10-02", "date_to": "2026-10-31", "funnel_window_interval": 14,
          "funnel_window_interval_unit": "day"}
TREND = {"insight": "TRENDS", "events": [{"id": "$pageview", "type": "events", "math": "dau"}],
         "interval": "day", "date_from": "2026-10-02", "date_to": "2026-10-31", "breakdown": "$browser",
         "breakdown_type": "event"}


def load(conn, n):
    name = f"bench-http-{n}"
    with conn.cursor() as c:
        c.execute("SELECT id FROM insights.projects WHERE name = %s", (name,))
        row = c.fetchone()
        if row:
            c.execute("SELECT count(*) FROM insights.events WHERE project_id = %s", (row[0],))
            if c.fetchone()[0] == n:
                c.execute("SELECT personal_api_key FROM public.bench_http_keys WHERE project_id = %s", (row[0],))
                k = c.fetchone()
                if k:
                    return row[0], k[0]
            c.execute("DELETE FROM insights.projects WHERE id = %s", (row[0],))
        c.execute("SELECT project_id, personal_api_key FROM insights.create_project_with_key(%s, %s, %s, %s)",
                  (name, f"{name}@example.com", ["*"], "UTC"))
        pid, key = c.fetchone()
        c.execute("UPDATE insights.projects SET week_start_day = 1 WHERE id = %s", (pid,))
        c.execute("CREATE TABLE IF NOT EXISTS public.bench_http_keys (project_id bigint PRIMARY KEY, "
                  "personal_api_key text)")
        c.execute("INSERT INTO public.bench_http_keys VALUES (%s, %s) ON CONFLICT (project_id) DO UPDATE "
                  "SET personal_api_key = EXCLUDED.personal_api_key", (pid, key))
        c.execute("SELECT coalesce(max(id), 0) FROM insights.persons")
        off = c.fetchone()[0]
        import duckdb
        d = duckdb.connect()
        d.execute("SET threads = 2; SET TimeZone = 'UTC'")
        p = {k: os.path.join(BENCH, "data", f"{k}_{n}.parquet") for k in ("events", "persons", "distinct_ids")}
        t = time.perf_counter()
        with c.copy("COPY insights.persons (id, project_id, uuid, properties, is_identified, created_at) "
                    "FROM STDIN") as cp:
            for r in d.execute(f"""SELECT p.id + {off}, {pid}, p.uuid, p.properties, d.n > 1, p.created_at
                                   FROM read_parquet('{p['persons']}') p JOIN (SELECT person_id, count(*) n
                                   FROM read_parquet('{p['distinct_ids']}') GROUP BY 1) d ON d.person_id = p.id
                                   ORDER BY p.id""").fetchall():
                cp.write_row(r)
        with c.copy("COPY insights.person_distinct_ids (project_id, distinct_id, person_id) FROM STDIN") as cp:
            for r in d.execute(f"SELECT {pid}, distinct_id, person_id + {off} "
                               f"FROM read_parquet('{p['distinct_ids']}')").fetchall():
                cp.write_row(r)
        cur = d.execute(f"""SELECT {pid}, uuid, event, distinct_id, person_id + {off}, ts, properties, session_id
                            FROM read_parquet('{p['events']}')""")
        with c.copy('COPY insights.events (project_id, uuid, event, distinct_id, person_id, "timestamp", '
                    'properties, session_id) FROM STDIN') as cp:
            while True:
                rows = cur.fetchmany(50_000)  # streamed: memory stays bounded
                if not rows:
                    break
                for r in rows:
                    cp.write_row(r)
        d.close()
        c.execute("SELECT setval(pg_get_serial_sequence('insights.persons', 'id'), "
                  "(SELECT max(id) FROM insights.persons))")
        print(f"loaded {n:,} events into project {pid} in {time.perf_counter() - t:.0f} s", flush=True)
    conn.execute("VACUUM (ANALYZE) insights.events")
    conn.execute("VACUUM (ANALYZE) insights.persons")
    return pid, key


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Client:
    """One keep-alive HTTP/1.1 connection (stdlib only: the bench venv has no requests)."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.conn = None

    def post(self, path, body, hdr):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
            try:
                self.conn.request("POST", path, body=body, headers=hdr)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise


def hammer(base, path, body, key, concurrency, seconds):
    hdr = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    data = json.dumps(body)
    status, text = Client(base).post(path, data, hdr)  # warm-up + reference answer
    if status != 200:
        raise SystemExit(f"{path}: {status} {text[:300]!r}")
    ref_result = json.loads(text).get("result")
    lat, errors = [], [0]
    lock = threading.Lock()
    start = time.perf_counter()
    stop = start + seconds

    def client():
        c = Client(base)
        while time.perf_counter() < stop:
            t = time.perf_counter()
            st, txt = c.post(path, data, hdr)
            el = time.perf_counter() - t
            ok = st == 200 and json.loads(txt).get("result") == ref_result
            with lock:
                if ok:
                    lat.append(el * 1000)
                else:
                    errors[0] += 1

    ths = [threading.Thread(target=client) for _ in range(concurrency)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    wall = time.perf_counter() - start
    return {"endpoint": path.split("/insights")[1], "concurrency": concurrency, "seconds": round(wall, 1),
            "requests": len(lat), "errors": errors[0], "rps": len(lat) / wall,
            "p50_ms": round(statistics.median(lat), 1) if lat else None,
            "p95_ms": round(pct(lat, 95), 1) if lat else None, "p99_ms": round(pct(lat, 99), 1) if lat else None,
            "max_ms": round(max(lat), 1) if lat else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--result", help="results JSON to store the numbers in (key 'http')")
    a = ap.parse_args()
    base = os.environ.get("PGI_BASE_URL", "http://127.0.0.1:8409")
    with psycopg.connect(autocommit=True) as conn:
        pid, key = load(conn, a.events)
    out = []
    la0 = open("/proc/loadavg").read().split()[:3]
    for path, body in ((f"/api/projects/{pid}/insights/funnel/", FUNNEL),
                       (f"/api/projects/{pid}/insights/trend/", TREND)):
        for cc in [int(x) for x in a.concurrency.split(",")]:
            r = hammer(base, path, body, key, cc, a.seconds)
            r["loadavg"] = open("/proc/loadavg").read().split()[:3]
            print(json.dumps(r), flush=True)
            out.append(r)
    if a.result:
        res = json.load(open(a.result))
        res["http"] = {"results": out, "note": f"{a.events:,} events loaded into the stack, closed-loop clients "
                       f"for {a.seconds:.0f} s per row after one warm-up request, loopback through nginx → "
                       f"PostgREST → Postgres, load average {' '.join(la0)} at start; funnel: the Q1 funnel as a "
                       "legacy filter; trend: the Q3 DAU × $browser as a legacy filter"}
        json.dump(res, open(a.result, "w"), indent=1)


if __name__ == "__main__":
    main()
