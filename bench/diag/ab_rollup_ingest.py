"""A/B: insights.capture_batch with and without the person-days rollup triggers, interleaved.

Usage: bench/diag/ab_rollup_ingest.py [rounds] [trigger] [late|now]   (against the kept bench cluster)
Each round sends one 1000-event batch with the trigger enabled and one with it disabled (order
alternating) into a fresh project; prints the median batch time of each and the ratio. `trigger`
defaults to person_days_insert; segments_insert is the segments' (sql/segments.sql). Events are
spread over 30 closed days (`late`, the default: the segments trigger marks every one of them) or
over the last hour (`now`: live traffic, which the segments trigger skips).
"""
import json
import random
import statistics
import sys
import time

import psycopg

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
trigger = sys.argv[2] if len(sys.argv) > 2 else "person_days_insert"
late = (sys.argv[3] if len(sys.argv) > 3 else "late") == "late"
conn = psycopg.connect(host="/work/main/bench/.pg", port=54359, user="postgres", dbname="bench_10000000",
                       autocommit=True)
rng = random.Random(5)
pid = conn.execute("SELECT project_id FROM insights.create_project('ab-rollup-ingest')").fetchone()[0]


def batch():
    out = []
    for _ in range(1000):
        ts = 1_790_000_000 + rng.randrange(30 * 86400) if late else int(time.time()) - rng.randrange(3600)
        out.append({"event": rng.choice(["$pageview", "click", "buy"]), "distinct_id": f"d{rng.randrange(20000)}",
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)),
                    "properties": {"$browser": rng.choice(["Chrome", "Safari"]), "n": rng.randrange(100)}})
    return json.dumps(out)


times = {True: [], False: []}
try:
    for i in range(rounds):
        for on in ((True, False) if i % 2 == 0 else (False, True)):
            conn.execute(f"ALTER TABLE insights.events {'ENABLE' if on else 'DISABLE'} TRIGGER {trigger}")
            b = batch()
            t = time.perf_counter()
            conn.execute("SELECT insights.capture_batch(%s, %s::jsonb, NULL)", (pid, b))
            times[on].append(time.perf_counter() - t)
finally:
    conn.execute(f"ALTER TABLE insights.events ENABLE TRIGGER {trigger}")
    conn.execute("DELETE FROM insights.projects WHERE id = %s", (pid,))
on, off = statistics.median(times[True]), statistics.median(times[False])
print(f"{rounds} rounds of 1000 {'late' if late else 'live'} events: with {trigger} median {on*1000:.1f} ms, without {off*1000:.1f} ms, "
      f"ratio {on/off:.2f} ({1000/on:.0f} vs {1000/off:.0f} events/s)")
