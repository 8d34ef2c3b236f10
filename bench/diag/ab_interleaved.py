"""Interleaved A/B timing of Postgres statements on the kept bench cluster (bench/run --keep-pg).

    /opt/pg_insights/bench-venv/bin/python bench/diag/ab_interleaved.py --events 10000000 --rounds 5 --query dau

Each round runs every variant once, in the same order (so a load spike from the shared machine hits
all variants of a round, not one variant's block of runs, as bench/run's one-engine-at-a-time timing
does). One untimed warm-up round first. Prints and stores (bench/results/ab_<query>_<N>.json) each
variant's times, median, and the load average before every round.
"""
import argparse
import json
import os
import statistics
import sys
import time

import psycopg

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)
import queries as Q  # noqa: E402


def variants(query, pid, mat):
    """Statements to time; `mat` is the column materialising $browser, if any."""
    pg = Q.pg_queries(pid, mat)
    if query == "dau":
        vs = {"PG plain SQL (jsonb ->>)": pg["dau"], "pg_insights trend()": Q.pgi_dau(pid)}
        if mat:
            vs[f"PG plain SQL (materialised column {mat})"] = pg["dau_mat"]
        return vs
    if query == "retention":
        return {"PG plain SQL": pg["retention"], "pg_insights retention()": Q.pgi_retention(pid)}
    if query == "stickiness":
        return {"PG plain SQL (GROUP BY person, day)": pg["stickiness"],
                "PG plain SQL (count(DISTINCT day))": pg["stickiness_distinct"],
                "pg_insights stickiness()": Q.pgi_stickiness(pid)}
    if query == "lifecycle":
        return {"PG plain SQL (lag/lead over person-days)": pg["lifecycle"],
                "PG plain SQL (DuckDB's form: inlined pairs, LEFT JOIN persons, UNION ALL)":
                    pg["lifecycle_union"],
                "pg_insights lifecycle()": Q.pgi_lifecycle(pid)}
    if query == "paths":
        return {"PG plain SQL (window, row_number per session)": pg["paths"],
                "PG plain SQL (window, one sort)": pg["paths_one_sort"],
                "pg_insights paths()": Q.pgi_paths(pid)}
    if query == "funnel":  # row shapes differ (bench/run checks the counts agree)
        return {"PG plain SQL (funnel_v2)": pg["funnel"], "pg_insights funnel()": Q.pgi_funnel(pid, False)}
    raise SystemExit(f"unknown query {query}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--query", default="dau", help="dau, retention, funnel, stickiness, lifecycle or paths")
    a = ap.parse_args()
    conn = psycopg.connect(host=os.path.join(BENCH, ".pg"), port=54359, user="postgres",
                           dbname=f"bench_{a.events}", autocommit=True, prepare_threshold=None)
    load = json.loads(conn.execute("SELECT v FROM public.bench_meta WHERE k = 'load'").fetchone()[0])
    pid = load["project_id"]
    vs = variants(a.query, pid, load.get("materialized_browser"))
    ref = None
    for label, sql in vs.items():  # warm-up round, and the rows must agree
        rows = sorted(tuple(str(x) for x in r) for r in conn.execute(sql).fetchall())
        if a.query == "funnel":
            continue
        if a.query == "paths":  # edges: means compared with bench.py's relative tolerance
            import bench as B
            rows = B.norm_paths(rows)
        if ref is None:
            ref = rows
        elif (a.query == "paths" and B.paths_problems(ref, rows)) or (a.query != "paths" and rows != ref):
            raise SystemExit(f"{label}: rows differ")
    times = {k: [] for k in vs}
    loads = []
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for i in range(a.rounds):
        loads.append(open("/proc/loadavg").read().split()[:3])
        for label, sql in vs.items():
            t = time.perf_counter()
            conn.execute(sql).fetchall()
            times[label].append(round((time.perf_counter() - t) * 1000, 1))
        print(f"round {i + 1}: load {' '.join(loads[-1])}: " +
              ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"events": a.events, "query": a.query, "rounds": a.rounds, "started_at": started,
           "loadavg_per_round": loads, "times_ms": times, "median_ms": med}
    for k, m in med.items():
        print(f"{k}: median {m:.0f} ms (min {min(times[k]):.0f}, max {max(times[k]):.0f})")
    path = os.path.join(BENCH, "results", f"ab_{a.query}_{a.events}.json")
    json.dump(out, open(path, "w"), indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
