"""The benchmark queries (performance.md §7.3), one text per engine, identical semantics.

Windows (data: 90 days ending 2026-10-31, UTC):
  funnel, DAU:  the last 30 days, [2026-10-02, 2026-11-01)
  retention:    the last 8 ISO weeks, [2026-09-07 (Mon), 2026-11-02)

Every query returns a small set of rows; bench.py normalises them (strings, sorted, zero-count
funnel levels dropped) and requires all engines to agree before any timing counts.
"""
import json

FROM_TS, TO_TS = "2026-10-02 00:00:00", "2026-11-01 00:00:00"
RET_FROM, RET_TO = "2026-09-07 00:00:00", "2026-11-02 00:00:00"
STEPS = ["$pageview", "view_item", "add_to_cart", "purchase"]
WINDOW_DAYS = 14
WINDOW_US = WINDOW_DAYS * 86_400 * 1_000_000

_in = ", ".join(f"'{s}'" for s in STEPS)
_step_case = "CASE event " + " ".join(f"WHEN '{s}' THEN {i + 1}" for i, s in enumerate(STEPS[:-1])) + " ELSE 4 END"


# ---------------------------------------------------------------------------------------------
# funnel_v2: the best plain-SQL funnel (performance.md §7.3.1), shared by Postgres and DuckDB.
#   1. one sort + one window pass: for every row, the next occurrence of each later step
#      (min(ts) FILTER (WHERE s = k) over the rows at or after it);
#   2. the greedy chain from each step-1 row: t2 = n2(t1 row), t3 = n3(t2 row), t4 = n4(t3 row),
#      followed by equality joins on (person, ts) (timestamps are unique per person);
#   3. level = 1 + #[t_k <= t1 + W]; max per person; count per level.
# Exact (windowFunnel default semantics) and O(N log N).
# ---------------------------------------------------------------------------------------------
def funnel_v2(src, where, person, ts, browser_expr, window, breakdown, lookup=None):
    """Breakdown = PostHog's first_touch attribution: the first non-empty value over *all* the
    person's funnel-step events in range (PostHog: argMinIf(prop, timestamp, notEmpty(prop)) over the
    funnel UDF's input), not only the step-1 events.
    lookup: SQL of a scalar subquery giving the breakdown value of person f.p's event at f.t1.
    Without it the value is carried through the window pass (cheap for a column store); with it
    only each person's first funnel event is fetched (Postgres: index probes, no heap scan). The
    probe takes the value of the first funnel event as is: gen.py gives every event a non-empty
    $browser, so it is the first non-empty one."""
    breakdown_in_n = breakdown and lookup is None
    b_col = f", {browser_expr} AS b" if breakdown_in_n else ""
    within = lambda t: f"coalesce({t} <= t1 + {window}, false)::int"  # noqa: E731
    if not breakdown:
        ft = ""
    elif lookup is None:
        ft = """, first_touch AS (
  SELECT DISTINCT ON (p) p, b FROM n WHERE b IS NOT NULL AND b <> '' ORDER BY p, ts
)"""
    else:
        ft = f""", first_touch AS (
  SELECT f.p, ({lookup}) AS b
  FROM (SELECT p, min(ts) AS t1 FROM n GROUP BY p HAVING bool_or(s = 1)) f
)"""
    final = """SELECT ft.b, l.lvl, count(*) AS persons
FROM per_person l JOIN first_touch ft USING (p)
GROUP BY ft.b, l.lvl ORDER BY ft.b, l.lvl""" if breakdown else """SELECT lvl, count(*) AS persons
FROM per_person GROUP BY lvl ORDER BY lvl"""
    return f"""WITH n AS MATERIALIZED (
  SELECT p, ts, s{', b' if breakdown_in_n else ''},
         min(ts) FILTER (WHERE s = 2) OVER w AS n2,
         min(ts) FILTER (WHERE s = 3) OVER w AS n3,
         min(ts) FILTER (WHERE s = 4) OVER w AS n4
  FROM (SELECT {person} AS p, {ts} AS ts, {_step_case} AS s{b_col}
        FROM {src}
        WHERE {where} AND event IN ({_in})) e
  WINDOW w AS (PARTITION BY p ORDER BY ts DESC ROWS UNBOUNDED PRECEDING)
), chains AS (
  SELECT a.p, a.ts AS t1, a.n2 AS t2, x.n3 AS t3, y.n4 AS t4
  FROM n a
  LEFT JOIN n x ON x.s = 2 AND x.p = a.p AND x.ts = a.n2
  LEFT JOIN n y ON y.s = 3 AND y.p = a.p AND y.ts = x.n3
  WHERE a.s = 1
), per_person AS (
  SELECT p, max(1 + {within('t2')} + {within('t3')} + {within('t4')}) AS lvl
  FROM chains GROUP BY p
){ft}
{final}"""


def pg_where(pid, lo, hi):
    return f"""project_id = {pid} AND "timestamp" >= '{lo}+00' AND "timestamp" < '{hi}+00'"""


def pg_queries(pid):
    w = pg_where(pid, FROM_TS, TO_TS)
    q = {}
    q["funnel"] = funnel_v2("insights.events", w, "person_id", '"timestamp"', "properties->>'$browser'",
                            f"interval '{WINDOW_DAYS} days'", False)
    # first touch (PostHog: the person's first funnel event, any step): one probe of
    # (project_id, person_id, "timestamp") per person, not a heap read of every funnel row (the
    # browser lives in the jsonb, as PostHog stores it)
    lookup = f"""SELECT ev.properties->>'$browser' FROM insights.events ev
              WHERE ev.project_id = {pid} AND ev.person_id = f.p AND ev."timestamp" = f.t1
                AND ev.event IN ({_in}) LIMIT 1"""
    q["funnel_breakdown"] = funnel_v2("insights.events", w, "person_id", '"timestamp"',
                                      "properties->>'$browser'", f"interval '{WINDOW_DAYS} days'", True,
                                      lookup)
    # DISTINCT (day, browser, person) then GROUP BY: slightly faster than count(DISTINCT) in PG.
    q["dau"] = f"""SELECT d, b, count(*) AS persons FROM (
  SELECT DISTINCT ("timestamp" AT TIME ZONE 'UTC')::date AS d, properties->>'$browser' AS b, person_id
  FROM insights.events WHERE {w}) s
GROUP BY d, b ORDER BY d, b"""
    # PostHog's retention_first_time, weekly: a person's cohort is the week of their first-ever
    # event (over all history); cohorts are the 8 ISO weeks of the window; returning = any event.
    q["retention"] = f"""WITH f AS (
  SELECT person_id, date_trunc('week', min("timestamp") AT TIME ZONE 'UTC')::date AS cohort
  FROM insights.events WHERE project_id = {pid} AND "timestamp" < '{RET_TO}'
  GROUP BY person_id
), pw AS (
  SELECT DISTINCT person_id, date_trunc('week', "timestamp" AT TIME ZONE 'UTC')::date AS wk
  FROM insights.events WHERE {pg_where(pid, RET_FROM, RET_TO)}
)
SELECT f.cohort, (pw.wk - f.cohort) / 7 AS week_offset, count(*) AS persons
FROM f JOIN pw USING (person_id)
WHERE f.cohort >= DATE '{RET_FROM[:10]}' AND pw.wk >= f.cohort
GROUP BY 1, 2 ORDER BY 1, 2"""
    return q


def pgi_window_funnel(pid):
    conds = ", ".join(f"event = '{s}'" for s in STEPS)
    return f"""SELECT lvl, count(*) AS persons FROM (
  SELECT insights.window_funnel('{WINDOW_DAYS} days'::interval, "timestamp", {conds}) AS lvl
  FROM insights.events
  WHERE {pg_where(pid, FROM_TS, TO_TS)} AND event IN ({_in})
  GROUP BY person_id) s
WHERE lvl > 0 GROUP BY lvl ORDER BY lvl"""


def funnels_query(breakdown):
    q = {
        "kind": "FunnelsQuery",
        "series": [{"kind": "EventsNode", "event": s, "name": s} for s in STEPS],
        "dateRange": {"date_from": "2026-10-02T00:00:00Z", "date_to": "2026-10-31T23:59:59.999999Z",
                      "explicitDate": True},
        "funnelsFilter": {"funnelWindowInterval": WINDOW_DAYS, "funnelWindowIntervalUnit": "day",
                          "funnelOrderType": "ordered", "funnelVizType": "steps"},
    }
    if breakdown:
        q["breakdownFilter"] = {"breakdown": "$browser", "breakdown_type": "event"}
        q["funnelsFilter"]["breakdownAttributionType"] = "first_touch"
    return json.dumps(q)


def pgi_funnel(pid, breakdown):
    return f"SELECT * FROM insights.funnel({pid}::bigint, '{funnels_query(breakdown)}'::jsonb)"


def pgi_dau(pid):
    q = {
        "kind": "TrendsQuery",
        "series": [{"kind": "EventsNode", "event": None, "math": "dau"}],
        "interval": "day",
        "dateRange": {"date_from": "2026-10-02T00:00:00Z", "date_to": "2026-10-31T23:59:59.999999Z",
                      "explicitDate": True},
        "breakdownFilter": {"breakdown": "$browser", "breakdown_type": "event", "breakdown_limit": 1000},
    }
    return f"""SELECT (bucket AT TIME ZONE 'UTC')::date AS d,
       nullif(breakdown_value, '$$_posthog_breakdown_null_$$') AS b, value::bigint AS persons
FROM insights.trend({pid}::bigint, '{json.dumps(q)}'::jsonb) WHERE value > 0"""


def pgi_retention(pid):
    q = {
        "kind": "RetentionQuery",
        "dateRange": {"date_to": "2026-11-01T23:59:59Z"},
        "retentionFilter": {"period": "Week", "totalIntervals": 8, "retentionType": "retention_first_time",
                            "targetEntity": {"id": None, "type": "events"},
                            "returningEntity": {"id": None, "type": "events"}},
    }
    return f"""SELECT left(cohort_date, 10)::date AS cohort, period AS week_offset, count AS persons
FROM insights.retention({pid}::bigint, '{json.dumps(q)}'::jsonb) WHERE count > 0"""


def duckdb_queries():
    w = f"ts >= TIMESTAMP '{FROM_TS}' AND ts < TIMESTAMP '{TO_TS}'"
    q = {}
    q["funnel"] = funnel_v2("events", w, "person_id", "ts", "browser", f"INTERVAL {WINDOW_DAYS} DAY", False)
    q["funnel_breakdown"] = funnel_v2("events", w, "person_id", "ts", "browser",
                                      f"INTERVAL {WINDOW_DAYS} DAY", True)
    dau = """SELECT ts::DATE AS d, {b} AS b, count(DISTINCT person_id) AS persons
FROM events WHERE {w} GROUP BY d, b ORDER BY d, b"""
    q["dau"] = dau.format(b="browser", w=w)
    q["dau_json"] = dau.format(b="json_extract_string(properties, '$.\"$browser\"')", w=w)
    q["retention"] = f"""WITH f AS (
  SELECT person_id, date_trunc('week', min(ts))::DATE AS cohort
  FROM events WHERE ts < TIMESTAMP '{RET_TO}' GROUP BY person_id
), pw AS (
  SELECT DISTINCT person_id, date_trunc('week', ts)::DATE AS wk
  FROM events WHERE ts >= TIMESTAMP '{RET_FROM}' AND ts < TIMESTAMP '{RET_TO}'
)
SELECT f.cohort, (pw.wk - f.cohort) // 7 AS week_offset, count(*) AS persons
FROM f JOIN pw USING (person_id)
WHERE f.cohort >= DATE '{RET_FROM[:10]}' AND pw.wk >= f.cohort
GROUP BY 1, 2 ORDER BY 1, 2"""
    return q


def chdb_queries():
    def rng(lo, hi):
        return f"ts >= toDateTime64('{lo}', 6, 'UTC') AND ts < toDateTime64('{hi}', 6, 'UTC')"
    conds = ", ".join(f"event = '{s}'" for s in STEPS)
    s = " SETTINGS max_threads = 2"
    q = {}
    funnel = f"""windowFunnel({WINDOW_US})(toUInt64(toUnixTimestamp64Micro(ts)), {conds})"""
    q["funnel"] = f"""SELECT lvl, count() AS persons FROM (
  SELECT person_id, {funnel} AS lvl
  FROM bench.events WHERE {rng(FROM_TS, TO_TS)} AND event IN ({_in})
  GROUP BY person_id)
WHERE lvl > 0 GROUP BY lvl ORDER BY lvl{s}"""
    q["funnel_breakdown"] = f"""SELECT b, lvl, count() AS persons FROM (
  SELECT person_id, {funnel} AS lvl, argMinIf(browser, ts, browser != '') AS b
  FROM bench.events WHERE {rng(FROM_TS, TO_TS)} AND event IN ({_in})
  GROUP BY person_id)
WHERE lvl > 0 GROUP BY b, lvl ORDER BY b, lvl{s}"""
    dau = """SELECT toDate(ts) AS d, {b} AS b, uniqExact(person_id) AS persons
FROM bench.events WHERE {w} GROUP BY d, b ORDER BY d, b{s}"""
    q["dau"] = dau.format(b="browser", w=rng(FROM_TS, TO_TS), s=s)
    q["dau_json"] = dau.format(b="JSONExtractString(properties, '$browser')", w=rng(FROM_TS, TO_TS), s=s)
    # PostHog's retention_first_time: cohort = the Monday of the person's first-ever event.
    q["retention"] = f"""SELECT cohort, intDiv(dateDiff('day', cohort, wk), 7) AS week_offset,
       count() AS persons
FROM (SELECT person_id, toMonday(min(ts)) AS cohort FROM bench.events
      WHERE ts < toDateTime64('{RET_TO}', 6, 'UTC') GROUP BY person_id) AS f
INNER JOIN (SELECT DISTINCT person_id, toMonday(ts) AS wk FROM bench.events
            WHERE {rng(RET_FROM, RET_TO)}) AS w USING (person_id)
WHERE cohort >= toDate('{RET_FROM[:10]}') AND wk >= cohort
GROUP BY cohort, week_offset ORDER BY cohort, week_offset{s}"""
    return q


QUERIES = {
    "funnel": "Q1 ordered 4-step funnel $pageview → view_item → add_to_cart → purchase, 30 days, "
              "14-day window from step 1: persons per furthest level 1..4",
    "funnel_breakdown": "Q2 same funnel, broken down by $browser with PostHog's first_touch "
                        "attribution (the person's first funnel event in range, any step)",
    "dau": "Q3 DAU: distinct persons per UTC day × $browser, 30 days",
    "retention": "Q4 weekly retention, 8 ISO weeks, PostHog retention_first_time: cohort = week of the "
                 "first-ever event, returning = any event; cohort × week offset → persons",
}
