"""Where the time of insights.capture_batch goes, on the kept bench cluster (bench/run --keep-pg).

    /opt/pg_insights/bench-venv/bin/python bench/diag/ingest_profile.py --events 10000000 --batches 5 \
        --explain bench/results/profile/ingest_statements_10000000.txt
    /opt/pg_insights/bench-venv/bin/python bench/diag/ingest_profile.py --events 10000000 --batches 5 \
        --perf bench/out/perf_ingest.data

The batches are the bench's own (bench.py bench_ingest: the first events by time, 1000 per batch,
sent_at NULL), into a throwaway project that is deleted (with its events, persons and ids) at the
end. --skip-batches N starts at batch N instead of the first.

--explain FILE: auto_explain in this session only (log_nested_statements, log_analyze with
timing off, log_triggers, log_level notice, log_min_duration --min-ms): every statement of
capture_batch that took at least --min-ms is captured with its duration and plan; the summary
(per statement, summed over the batches) and the plans go to FILE. The instrumentation adds
overhead, so the batch times of an --explain run are not the throughput figure.

--perf FILE: `perf record -F 999 -g -p <backend pid>` for the batches (no auto_explain).
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time

import duckdb
import psycopg

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# run from a worktree against the main checkout's kept cluster: PGI_BENCH_DIR=/path/to/main/bench
RUN = os.environ.get("PGI_BENCH_DIR", BENCH)


def batches(n, skip, count, size):
    con = duckdb.connect()
    con.execute("SET threads = 2; SET TimeZone = 'UTC'")
    lo, hi = skip * size, (skip + count) * size
    rows = con.execute(f"""
        SELECT '[' || string_agg(json_object(
                 'event', event, 'distinct_id', distinct_id, 'uuid', uuid,
                 'timestamp', strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ'), 'properties', properties::JSON)::VARCHAR,
                 ',' ORDER BY rn) || ']'
        FROM (SELECT *, row_number() OVER (ORDER BY ts, person_id) - 1 AS rn
              FROM read_parquet('{RUN}/data/events_{n}.parquet') ORDER BY ts, person_id LIMIT {hi})
        WHERE rn >= {lo}
        GROUP BY rn // {size} ORDER BY rn // {size}""").fetchall()
    con.close()
    return [r[0] for r in rows]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, required=True, help="database bench_N and its parquet")
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--skip-batches", type=int, default=0)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--explain")
    ap.add_argument("--min-ms", type=float, default=0.5)
    ap.add_argument("--perf")
    ap.add_argument("--set", action="append", default=[],
                    help="NAME=VALUE: a session setting applied after the untimed batches, e.g. "
                         "plan_cache_mode=force_generic_plan")
    ap.add_argument("--analyze", action="store_true",
                    help="ANALYZE events, persons and person_distinct_ids after the untimed batches (a test of "
                         "the stale-statistics explanation)")
    ap.add_argument("--probe", help="after the batches, EXPLAIN ANALYZE the duplicate-uuid check as written and "
                    "as a per-row LATERAL probe, for 1000 new uuids against the project; plans to this file")
    a = ap.parse_args()
    bs = batches(a.events, a.skip_batches, a.batches, a.batch)
    conn = psycopg.connect(host=os.path.join(RUN, ".pg"), port=54359, user="postgres",
                           dbname=f"bench_{a.events}", autocommit=True, prepare_threshold=None)
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    pid = conn.execute("SELECT project_id FROM insights.create_project(%s)",
                       (f"prof-ingest-{int(time.time())}",)).fetchone()[0]
    print(f"backend {backend}, throwaway project {pid}, {len(bs)} batches of {a.batch}, "
          f"load {open('/proc/loadavg').read().split()[:3]}")
    if a.skip_batches:  # the persons of the earlier batches, as in the bench run: ingest them untimed
        for b in batches(a.events, 0, a.skip_batches, a.batch):
            conn.execute("SELECT insights.capture_batch(%s, %s::jsonb, NULL)", (pid, b))
        print(f"  {a.skip_batches} earlier batches ingested untimed")
    for kv in a.set:
        k, v = kv.split("=", 1)
        conn.execute(f"SET {k} = '{v}'")
        print(f"  SET {k} = {v}")
    if a.analyze:
        t = time.perf_counter()
        conn.execute("ANALYZE insights.events, insights.persons, insights.person_distinct_ids")
        print(f"  ANALYZE events, persons, person_distinct_ids: {time.perf_counter() - t:.1f} s")
    if a.explain:
        conn.execute("LOAD 'auto_explain'")
        for k, v in (("log_min_duration", str(a.min_ms)), ("log_analyze", "on"), ("log_timing", "off"),
                     ("log_buffers", "on"), ("log_triggers", "on"), ("log_nested_statements", "on"),
                     ("log_level", "notice")):
            conn.execute(f"SET auto_explain.{k} = '{v}'")
    perf = None
    if a.perf:
        perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(backend), "-o", a.perf],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    lat = []
    per_batch_notices = []
    try:
        for b in bs:
            notices.clear()
            t = time.perf_counter()
            stored = conn.execute("SELECT insights.capture_batch(%s, %s::jsonb, NULL)", (pid, b)).fetchone()[0]
            lat.append((time.perf_counter() - t) * 1000)
            per_batch_notices.append(list(notices))
            print(f"  batch: {lat[-1]:.1f} ms, {stored} stored")
    finally:
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        if a.explain:
            conn.execute("SET auto_explain.log_min_duration = -1")
        if a.probe:
            conn.execute("CREATE TEMP TABLE _probe (idx integer PRIMARY KEY, uuid uuid NOT NULL)")
            conn.execute("INSERT INTO _probe SELECT i, gen_random_uuid() FROM generate_series(1, 1000) i")
            forms = {
                "as in capture_batch step 3 (join)": f"""SELECT o.idx FROM _probe o
                   JOIN insights.events ev ON ev.project_id = {pid} AND ev.uuid = o.uuid""",
                "per-row probe (LATERAL ... LIMIT 1)": f"""SELECT o.idx FROM _probe o
                   CROSS JOIN LATERAL (SELECT 1 FROM insights.events ev
                                        WHERE ev.project_id = {pid} AND ev.uuid = o.uuid LIMIT 1) x""",
            }
            with open(a.probe, "w") as f:
                f.write(f"# duplicate-uuid check, 1000 new uuids, project {pid} after "
                        f"{a.skip_batches + len(bs)} batches; load {open('/proc/loadavg').read().split()[:3]}\n")
                for label, q in forms.items():
                    for _ in range(2):
                        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + q).fetchall()
                    f.write(f"\n## {label}\n{q}\n" + "\n".join(r[0] for r in plan) + "\n")
                    print(label, plan[-1][0])
        persons = conn.execute("SELECT count(*) FROM insights.persons WHERE project_id = %s", (pid,)).fetchone()[0]
        t = time.perf_counter()
        conn.execute("DELETE FROM insights.projects WHERE id = %s", (pid,))
        print(f"persons in the project: {persons}; project deleted in {time.perf_counter() - t:.1f} s")
    total = sum(lat)
    print(f"total {total:.0f} ms for {len(bs) * a.batch} events: {len(bs) * a.batch / total * 1000:.0f} events/s; "
          f"median batch {statistics.median(lat):.1f} ms; load {open('/proc/loadavg').read().split()[:3]}")
    if a.explain:
        agg = {}
        for ns in per_batch_notices:
            for m in ns:
                mm = re.match(r"duration: ([0-9.]+) ms", m)
                if not mm:
                    continue
                qt = re.search(r"Query Text: (.*)", m)
                key = re.sub(r"\s+", " ", qt.group(1))[:110] if qt else "?"
                d = agg.setdefault(key, [0.0, 0])
                d[0] += float(mm.group(1))
                d[1] += 1
        with open(a.explain, "w") as f:
            f.write(f"# bench/diag/ingest_profile.py --events {a.events} --batches {a.batches} "
                    f"--skip-batches {a.skip_batches} --explain (auto_explain, timing off, min {a.min_ms} ms)\n")
            f.write(f"# batch times (ms, with auto_explain overhead): {[round(x, 1) for x in lat]}\n")
            f.write("# statements >= min ms, summed over the batches (nested: the outer capture_batch call "
                    "includes its statements)\n")
            for k, (ms, c) in sorted(agg.items(), key=lambda kv: -kv[1][0]):
                f.write(f"{ms:10.1f} ms  {c:4d}x  {k}\n")
            f.write("\n# plans of the last batch\n")
            for m in per_batch_notices[-1]:
                f.write(m + "\n\n")
        print(f"statement summary and plans → {a.explain}")


if __name__ == "__main__":
    sys.exit(main())
