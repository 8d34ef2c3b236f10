"""perf profile of one statement on the kept bench cluster, leader and parallel workers together.

    /opt/pg_insights/bench-venv/bin/python bench/diag/perf_statement.py --events 10000000 \
        --query retention --variant pgi --runs 2 --out bench/out/perf_ret_pgi.data

Starts `perf record -a -g -F 999` (system wide, because parallel workers are forked by the
postmaster and cannot be followed from the backend), runs the statement --runs times after one
untimed warm-up, records the backend pid and the pids of its parallel workers (pg_stat_activity
leader_pid, polled every 20 ms from a second connection), stops perf and prints
`perf report --no-children --pid <those pids>` (top 60 lines) plus the sample count per pid.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# run from a worktree against the main checkout's kept cluster: PGI_BENCH_DIR=/path/to/main/bench
RUN = os.environ.get("PGI_BENCH_DIR", BENCH)
sys.path.insert(0, BENCH)
import queries as Q  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--query", default="retention")
    ap.add_argument("--variant", choices=["pgi", "pg", "file"], default="pgi")
    ap.add_argument("--sql-file")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", required=True)
    ap.add_argument("--report", help="write the perf report text here")
    a = ap.parse_args()
    dsn = dict(host=os.path.join(RUN, ".pg"), port=54359, user="postgres", dbname=f"bench_{a.events}",
               autocommit=True, prepare_threshold=None)
    conn = psycopg.connect(**dsn)
    mon = psycopg.connect(**dsn)
    pid = json.loads(conn.execute("SELECT v FROM public.bench_meta WHERE k = 'load'").fetchone()[0])["project_id"]
    if a.variant == "pgi":
        sql = {"retention": Q.pgi_retention}[a.query](pid)
    elif a.variant == "pg":
        sql = Q.pg_queries(pid)[a.query]
    else:
        sql = open(a.sql_file).read()
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.execute(sql).fetchall()  # warm-up
    pids = {backend}
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            for (p,) in mon.execute("SELECT pid FROM pg_stat_activity WHERE leader_pid = %s", (backend,)).fetchall():
                pids.add(p)
            time.sleep(0.02)

    load0 = open("/proc/loadavg").read().split()[:3]
    perf = subprocess.Popen(["perf", "record", "-a", "-g", "-F", "999", "-o", a.out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    th = threading.Thread(target=poll)
    th.start()
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        conn.execute(sql).fetchall()
        times.append(round((time.perf_counter() - t) * 1000, 1))
    stop.set()
    th.join()
    perf.send_signal(signal.SIGINT)
    perf.wait()
    load1 = open("/proc/loadavg").read().split()[:3]
    plist = ",".join(str(p) for p in sorted(pids))
    head = (f"# perf_statement.py --events {a.events} --query {a.query} --variant {a.variant} --runs {a.runs}\n"
            f"# times ms {times}; backend {backend}; pids profiled {plist}; load before {load0}, after {load1}\n"
            f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    per_pid = subprocess.run(["perf", "report", "-i", a.out, "--stdio", "--no-children", "--pid", plist,
                              "--sort", "pid", "-g", "none"], capture_output=True, text=True).stdout
    rep = subprocess.run(["perf", "report", "-i", a.out, "--stdio", "--no-children", "--pid", plist,
                          "--sort", "dso,sym", "-g", "none"], capture_output=True, text=True).stdout
    text = head + "\n## samples per process\n" + "\n".join(
        ln for ln in per_pid.splitlines() if ln and not ln.startswith("#")) + \
        "\n\n## perf report --no-children --sort dso,sym (top 60 lines)\n" + "\n".join(rep.splitlines()[:60]) + "\n"
    print(text)
    if a.report:
        open(a.report, "w").write(text)


if __name__ == "__main__":
    sys.exit(main())
