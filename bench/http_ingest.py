"""HTTP ingestion throughput: concurrent clients POST PostHog /batch/ payloads through nginx → PostgREST.

    /opt/pg_insights/venv/bin/python bench/http_ingest.py [--clients 4] [--batch 100] [--seconds 20]

Uses the stack described by .env.demo (scripts/stack up --demo) and a fresh project created through
scripts/stack's Postgres, so the demo data is untouched; the project is deleted at the end. Reports
events/s and batch latency percentiles. Loopback only.
"""
import argparse
import json
import os
import statistics
import subprocess
import threading
import time
import uuid

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def psql(sql):
    out = subprocess.run([os.path.join(ROOT, "scripts", "stack"), "psql", "-X", "-tA", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return out.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20)
    a = ap.parse_args()
    env = dict(line.split("=", 1) for line in open(os.path.join(ROOT, ".env.demo")).read().splitlines()
               if "=" in line and not line.startswith("#"))
    base = env["PGI_BASE_URL"]
    pid, token = psql("SELECT project_id || ' ' || api_token FROM insights.create_project('http-ingest-bench')").split()
    stop = time.time() + a.seconds
    lat, sent, errors = [], [0], [0]
    lock = threading.Lock()

    def client(n):
        s = requests.Session()
        i = 0
        while time.time() < stop:
            batch = [{"event": "$pageview" if j % 3 else "view_item", "distinct_id": f"c{n}-u{(i * a.batch + j) % 500}",
                      "uuid": str(uuid.uuid4()), "timestamp": "2026-11-01T12:00:00Z",
                      "properties": {"$browser": "Chrome", "$current_url": f"https://shop.example.com/p/{j}",
                                     "plan": "pro", "n": j}} for j in range(a.batch)]
            t = time.perf_counter()
            r = s.post(f"{base}/batch/", data=json.dumps({"api_key": token, "batch": batch}),
                       headers={"Content-Type": "application/json"})
            dt = time.perf_counter() - t
            with lock:
                if r.status_code == 200:
                    sent[0] += a.batch
                    lat.append(dt)
                else:
                    errors[0] += 1
            i += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(a.clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    total = time.perf_counter() - t0
    stored = int(psql(f"SELECT count(*) FROM insights.events WHERE project_id = {pid}"))
    psql(f"DELETE FROM insights.projects WHERE id = {pid}")
    lat.sort()
    print(json.dumps({
        "clients": a.clients, "batch": a.batch, "seconds": round(total, 1), "events_sent": sent[0],
        "events_stored": stored, "errors": errors[0], "events_per_s": round(sent[0] / total),
        "batch_ms_p50": round(statistics.median(lat) * 1000, 1) if lat else None,
        "batch_ms_p95": round(lat[int(0.95 * (len(lat) - 1))] * 1000, 1) if lat else None,
    }))


if __name__ == "__main__":
    main()
