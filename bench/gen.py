#!/usr/bin/env python3
"""Seeded synthetic product-analytics events (performance.md §7.1), vectorised with numpy + DuckDB.

    gen.py --events N [--seed 42] [--out bench/data]

Writes, in --out:
  events_N.parquet    uuid, event, distinct_id, person_id, ts (TIMESTAMPTZ, µs, unique per person),
                      browser, country, current_url, session_id, properties (JSON text, ~200 B, 8 keys)
  persons_N.parquet   id, uuid, created_at (first event), properties (JSON text: plan, email)
  distinct_ids_N.parquet  distinct_id, person_id   (~1.2 ids per person: some start anonymous)

Model: Pareto(1.2) person activity (weight capped at 2000, x4.5: median 8 events, max ~9k over a
whole life); arrivals uniform over the 90 days ending 2026-10-31 (UTC), exponential lifetime (mean
25 days), censored at the end of the data (late arrivals have only their first days observed);
sessions of ~6 events with exponential gaps (mean 45 s); 30 event names with a skewed mix;
browser (6, skewed, 90 % sticky per person), country (50, Zipf, per person), URL (1,000, Zipf).
Persons are generated in chunks of ~5M events by person-id range (constant memory per chunk),
then merged into one file ordered by time, as events arrive.
"""
import argparse
import os
import shutil
import sys
import time

import numpy as np

T_END_US = 1_793_491_200_000_000          # 2026-11-01T00:00:00Z (exclusive end of the data)
DAY_US = 86_400_000_000
SPAN_US = 90 * DAY_US                     # data starts 2026-08-03T00:00:00Z (a Monday)
T0_US = T_END_US - SPAN_US
CHUNK_EVENTS = 5_000_000

EVENTS = ["$pageview", "$autocapture", "search", "view_item", "add_to_cart", "checkout", "purchase",
          "signup", "$pageleave", "share"] + [f"custom_event_{i:02d}" for i in range(1, 21)]
_custom = 1.0 / np.arange(1, 21) ** 0.8
EVENT_P = np.array([40, 22, 7, 8, 4, 2, 1, 1, 5, 1] + list(9 * _custom / _custom.sum()), dtype=float)
EVENT_P /= EVENT_P.sum()

BROWSERS = ["Chrome", "Safari", "Firefox", "Edge", "Samsung Internet", "Opera"]
BROWSER_P = np.array([0.55, 0.20, 0.10, 0.08, 0.05, 0.02])
OSES = ["Windows", "Mac OS X", "iOS", "Android", "Linux"]
OS_P = np.array([0.45, 0.20, 0.17, 0.15, 0.03])
DEVICES = ["Desktop", "Mobile", "Tablet"]
DEVICE_P = np.array([0.6, 0.35, 0.05])
COUNTRIES = ["US", "GB", "DE", "FR", "IN", "BR", "CA", "AU", "NL", "ES", "IT", "SE", "PL", "JP", "MX",
             "CH", "BE", "AT", "DK", "NO", "FI", "IE", "PT", "CZ", "RO", "HU", "GR", "TR", "IL", "ZA",
             "NG", "KE", "EG", "AR", "CL", "CO", "PE", "KR", "CN", "SG", "MY", "ID", "PH", "VN", "TH",
             "NZ", "UA", "RU", "SA", "AE"]
PLANS = ["free", "pro", "enterprise"]
PLAN_P = np.array([0.80, 0.17, 0.03])


def sql_list(values):
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def persons_model(n_events, rng):
    """Per-person arrival, lifetime and event count, cut so the counts sum to exactly N.

    Potential activity: floor(4.5 * Pareto(1.2) weight capped at 2000) events over the person's whole
    (exponential, mean 25 days) life; only the part of the life before the end of the data is observed.
    """
    n_try = n_events // 4 + 1000            # mean is ~15 observed events/person: plenty of persons
    arrive = (rng.random(n_try) * (SPAN_US - 7_200_000_000)).astype(np.int64)
    life = rng.exponential(25 * DAY_US, n_try).astype(np.int64) + 3_600_000_000
    w = np.minimum(rng.pareto(1.2, n_try) + 1.0, 2000.0)
    observed = np.minimum(1.0, (SPAN_US - 3_600_000_000 - arrive) / life)
    counts = np.maximum(1, np.round(np.floor(w * 4.5) * observed)).astype(np.int64)
    cum = np.cumsum(counts)
    last = int(np.searchsorted(cum, n_events))
    if last >= n_try:
        sys.exit("persons_model: not enough persons drawn")
    counts = counts[: last + 1].copy()
    counts[-1] -= int(cum[last] - n_events)
    assert counts.sum() == n_events and counts[-1] >= 1
    P = len(counts)
    return counts, arrive[:P], np.minimum(arrive[:P] + life[:P], SPAN_US - 3_600_000_000)


def make_chunk(p_lo, p_hi, counts, pers, rng):
    """Event columns (numpy) for persons [p_lo, p_hi), sorted by (person, ts), ts unique per person."""
    n = counts[p_lo:p_hi]
    total = int(n.sum())
    pidx = np.repeat(np.arange(p_lo, p_hi), n)                      # global person index
    first = np.repeat(np.cumsum(n) - n, n)                          # chunk offset of person's 1st event
    j = np.arange(total) - first                                    # rank within the person
    nn = np.repeat(n, n)
    # sessions of ~6 events, each starting uniformly within the person's active life
    sess_n = np.maximum(1, -(-n // 6))
    sess_off = np.cumsum(sess_n) - sess_n
    sess = np.repeat(sess_off, n) + (j * np.repeat(sess_n, n)) // nn   # chunk-local session index
    arr, end = pers["arrive"][p_lo:p_hi], pers["end"][p_lo:p_hi]
    sess_person = np.repeat(np.arange(p_hi - p_lo), sess_n)
    sess_start = arr[sess_person] + (rng.random(sess_n.sum()) * (end - arr)[sess_person]).astype(np.int64)
    gaps = rng.exponential(45e6, total).astype(np.int64) + 1
    cs = np.cumsum(gaps)
    sess_first = np.r_[0, np.flatnonzero(np.diff(sess)) + 1]
    base = np.repeat(cs[sess_first], np.diff(np.r_[sess_first, total]))
    ts = sess_start[sess] + (cs - base)
    ts = np.minimum(ts, SPAN_US - 1_000_000)                        # stay inside the 90 days
    order = np.lexsort((ts, pidx))
    ts = ts[order]
    # unique per person (µs): bump ties forward, order is preserved
    same = pidx[1:] == pidx[:-1]
    while True:
        dup = np.flatnonzero(same & (ts[1:] <= ts[:-1])) + 1
        if dup.size == 0:
            break
        ts[dup] = ts[dup - 1] + 1
    sess = sess[order]
    # event attributes, independent of time order
    ev = rng.choice(len(EVENTS), total, p=EVENT_P).astype(np.int16)
    stray = rng.random(total) < 0.10
    browser = np.where(stray, rng.choice(len(BROWSERS), total, p=BROWSER_P), pers["browser"][pidx])
    url = np.minimum(rng.zipf(1.3, total), 1000).astype(np.int32)
    anon = pers["has_anon"][pidx] & (j < nn // 2)                   # first half of the life: anonymous
    uuid_lo = rng.integers(0, 2**62, total, dtype=np.uint64) | np.uint64(1 << 63)  # RFC 4122 variant
    uuid_rnd = rng.integers(0, 4096, total, dtype=np.int64)
    return {
        "pid": pidx + 1, "ts_us": ts + T0_US, "ev": ev, "browser": browser.astype(np.int16),
        "os": pers["os"][pidx].astype(np.int16), "device": pers["device"][pidx].astype(np.int16),
        "country": pers["country"][pidx].astype(np.int16), "url": url, "anon": anon,
        "sess": sess + pers["sess_base"][p_lo], "uuid_lo": uuid_lo, "uuid_rnd": uuid_rnd,
    }


EVENTS_SQL = f"""
SELECT
  lower(lpad(to_hex(((ts_us // 1000) << 16 | 28672 | uuid_rnd)::UBIGINT), 16, '0')
        || lpad(to_hex(uuid_lo), 16, '0')) AS h,
  {sql_list(EVENTS)}[ev + 1] AS event,
  CASE WHEN anon THEN 'anon-' ELSE 'user-' END || pid AS distinct_id,
  pid AS person_id,
  make_timestamp(ts_us)::TIMESTAMPTZ AS ts,
  {sql_list(BROWSERS)}[browser + 1] AS browser,
  {sql_list(COUNTRIES)}[country + 1] AS country,
  'https://shop.example.com/page/' || url AS current_url,
  'sess-' || lpad(lower(to_hex(sess)), 10, '0') AS session_id,
  {sql_list(OSES)}[os + 1] AS os_name,
  {sql_list(DEVICES)}[device + 1] AS device_type
FROM chunk
"""

FINAL_SQL = """
SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-'
         || substr(h, 17, 4) || '-' || substr(h, 21, 12) AS uuid,
       event, distinct_id, person_id, ts, browser, country, current_url, session_id,
       json_object('$browser', browser, '$os', os_name, '$device_type', device_type,
                   '$current_url', current_url, '$geoip_country_code', country,
                   '$session_id', session_id, '$lib', 'web', '$lib_version', '1.200.0')::VARCHAR
         AS properties
FROM ({inner})
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--memory-limit", default="8GB",
                    help="DuckDB memory_limit of the final sort (spills above it; the data is the same)")
    ap.add_argument("--chunk-events", type=int, default=CHUNK_EVENTS,
                    help="events per generation chunk (memory bound); changes the data")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    args = ap.parse_args()
    import duckdb
    import pyarrow as pa

    N = args.events
    os.makedirs(args.out, exist_ok=True)
    out = os.path.join(args.out, f"events_{N}.parquet")
    parts = os.path.join(args.out, f"events_{N}.parts")
    shutil.rmtree(parts, ignore_errors=True)
    os.makedirs(parts)
    t0 = time.time()
    rng = np.random.default_rng([args.seed, 0])
    counts, arrive, end = persons_model(N, rng)
    P = len(counts)
    sess_n = np.maximum(1, -(-counts // 6))
    pers = {
        "arrive": arrive,
        "end": end,
        "browser": rng.choice(len(BROWSERS), P, p=BROWSER_P),
        "os": rng.choice(len(OSES), P, p=OS_P),
        "device": rng.choice(len(DEVICES), P, p=DEVICE_P),
        "country": np.minimum(rng.zipf(1.6, P), len(COUNTRIES)) - 1,
        "plan": rng.choice(len(PLANS), P, p=PLAN_P),
        "has_anon": rng.random(P) < 0.2,
        "sess_base": np.cumsum(sess_n) - sess_n,
    }
    con = duckdb.connect()
    con.execute("SET threads = 2; SET TimeZone = 'UTC'; SET preserve_insertion_order = false")
    cum = np.cumsum(counts)
    p_lo, k = 0, 0
    while p_lo < P:
        p_hi = int(np.searchsorted(cum, (cum[p_lo - 1] if p_lo else 0) + args.chunk_events, side="right"))
        p_hi = max(p_hi, p_lo + 1)
        cols = make_chunk(p_lo, p_hi, counts, pers, np.random.default_rng([args.seed, 1, k]))
        chunk = pa.table(cols)  # noqa: F841  (read by DuckDB's replacement scan)
        con.execute(f"COPY ({FINAL_SQL.format(inner=EVENTS_SQL)}) TO '{parts}/part-{k:04d}.parquet' "
                    "(FORMAT parquet, COMPRESSION zstd)")
        del chunk, cols
        print(f"  chunk {k}: persons {p_lo + 1}..{p_hi}, {int(counts[p_lo:p_hi].sum())} events "
              f"({time.time() - t0:.1f}s)", file=sys.stderr)
        p_lo, k = p_hi, k + 1
    # The time-ordered merge is DuckDB's external sort: above memory_limit it spills to temp files,
    # so this step is memory-bounded whatever the size (it does not change the data).
    con.execute(f"SET preserve_insertion_order = true; SET memory_limit = '{args.memory_limit}'")
    con.execute(f"COPY (SELECT * FROM read_parquet('{parts}/*.parquet') ORDER BY ts, person_id) "
                f"TO '{out}.tmp' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)")
    os.replace(out + ".tmp", out)
    shutil.rmtree(parts)

    # persons (created at their first event) and distinct ids
    persons = pa.table({"id": np.arange(1, P + 1), "plan": pers["plan"].astype(np.int16),
                        "has_anon": pers["has_anon"]})  # noqa: F841
    con.execute(f"""
      COPY (
        SELECT p.id, '00000000-0000-4000-8000-' || lpad(lower(to_hex(p.id)), 12, '0') AS uuid,
               f.created_at,
               json_object('plan', {sql_list(PLANS)}[p.plan + 1],
                           'email', 'user' || p.id || '@example.com')::VARCHAR AS properties
        FROM persons p JOIN (SELECT person_id, min(ts) AS created_at FROM read_parquet('{out}')
                             GROUP BY person_id) f ON f.person_id = p.id
        ORDER BY p.id) TO '{args.out}/persons_{N}.parquet' (FORMAT parquet)""")
    con.execute(f"""
      COPY (SELECT 'user-' || id AS distinct_id, id AS person_id FROM persons
            UNION ALL SELECT 'anon-' || id, id FROM persons WHERE has_anon ORDER BY 2, 1)
        TO '{args.out}/distinct_ids_{N}.parquet' (FORMAT parquet)""")
    s = con.execute(f"""SELECT count(*), count(DISTINCT person_id), min(ts), max(ts),
                               count(*) - count(DISTINCT (person_id, ts))
                        FROM read_parquet('{out}')""").fetchone()
    print(f"wrote {out}: {s[0]} events, {s[1]} persons, {s[2]} .. {s[3]}, duplicate (person, ts): {s[4]} "
          f"({time.time() - t0:.1f}s)", file=sys.stderr)
    if s[0] != N or s[4] != 0:
        sys.exit("generator invariant broken")


if __name__ == "__main__":
    main()
