"""The benchmark queries (performance.md §7.3), one text per engine, identical semantics.

Windows (data: 90 days ending 2026-10-31, UTC):
  funnel, DAU:  the last 30 days, [2026-10-02, 2026-11-01)
  retention:    the last 8 ISO weeks, [2026-09-07 (Mon), 2026-11-02)
  stickiness:   the same 30 days as DAU, [2026-10-02, 2026-11-01), $pageview
  lifecycle:    output days 2026-10-02 .. 2026-10-31, read over [2026-10-01, 2026-11-02) (one day
                before and after), $pageview
  paths:        the same 30 days as DAU, $pageview, 5 steps, every edge (no edge limit)
  elements:     the last 7 days, [2026-10-25, 2026-11-01), $autocapture (22 % of the events)

Every query returns a small set of rows (paths: every edge, ~19k at 1M events); bench.py normalises
them (strings, sorted, zero-count funnel levels dropped) and requires all engines to agree before any
timing counts (paths: the same edges and values, mean times within a relative 1e-9).
"""
import json

FROM_TS, TO_TS = "2026-10-02 00:00:00", "2026-11-01 00:00:00"
RET_FROM, RET_TO = "2026-09-07 00:00:00", "2026-11-02 00:00:00"
# lifecycle reads one day before the first output day and one after the last (bench project: UTC)
LC_FROM, LC_TO = "2026-10-01 00:00:00", "2026-11-02 00:00:00"
OUT_FIRST, OUT_LAST = "2026-10-02", "2026-10-31"   # output days of stickiness and lifecycle
STEPS = ["$pageview", "view_item", "add_to_cart", "purchase"]
WINDOW_DAYS = 14
WINDOW_US = WINDOW_DAYS * 86_400 * 1_000_000

EL_FROM, EL_TO = "2026-10-25 00:00:00", "2026-11-01 00:00:00"


def _element_chains(k=40):
    """The autocapture chains of the bench: the generator writes none, so every engine derives the
    same chain for an $autocapture event when it loads the data, ELEMENT_CHAINS[person_id % 40]
    (PostHog's chain format, as posthog-js renders it; the first element's text is unique)."""
    tags = ["button", "a", "span", "input", "svg", "li", "img"]
    out = []
    for i in range(k):
        tag, cls = tags[i % len(tags)], f"btn-{i % 9}"
        out.append(f'{tag}.{cls}.ph-{i % 3}:attr__class="{cls} ph-{i % 3}"attr__href="/p/{i};x:y"'
                   f'href="/p/{i};x:y"nth-child="{i % 5 + 1}"nth-of-type="1"text="Item {i}";'
                   f'div.row.md:flex:attr__class="row md:flex"nth-child="{i % 3 + 1}"nth-of-type="1";'
                   f'main:attr__id="main"attr_id="main"nth-child="2"nth-of-type="1";body:nth-child="2"nth-of-type="1"')
    return out


ELEMENT_CHAINS = _element_chains()
_chains = ", ".join("'" + c.replace("'", "''") + "'" for c in ELEMENT_CHAINS)
# The chain of an event, per dialect (1-based lists); '' for events other than $autocapture.
CHAIN_PG = (f"CASE WHEN event = '$autocapture' THEN (ARRAY[{_chains}])[(person_id % {len(ELEMENT_CHAINS)})::int + 1] "
            "ELSE '' END")
CHAIN_DUCKDB = (f"CASE WHEN event = '$autocapture' THEN list_extract([{_chains}], "
                f"(person_id % {len(ELEMENT_CHAINS)})::INTEGER + 1) ELSE '' END")
CHAIN_CHDB = (f"if(event = '$autocapture', arrayElement([{_chains}], toUInt64(person_id % {len(ELEMENT_CHAINS)}) + 1), '')")

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


# ---------------------------------------------------------------------------------------------
# Strict and unordered funnels (PostHog's semantics, as the project's funnel engine implements them:
# core/src/funnel_engine.rs), exact on this data (timestamps unique per person, one step per event).
#
# strict: every event of the person in range counts. PostHog's strict machine keeps a step only
#   while the events match it: any other event breaks the chain, but a repeat of the step just
#   reached does not (A B B C reaches 3), a new step 1 restarts the chain, and each step must come
#   within 14 days of the chain's step-1 event. In SQL: collapse each person's consecutive events of
#   the same step into runs (a step-1 run keeps its last timestamp, the chain restarts there; other
#   runs their first), then level = over step-1 runs, how many of the next 3 runs are steps 2, 3, 4
#   in order and in the window (lead over runs). ClickHouse windowFunnel 'strict_order' is a
#   different rule (it stops at the first interruption and never restarts), so chdb runs the same
#   window-function form instead.
# unordered: the steps in any order; level = the most distinct steps among the events in
#   [t, t + 14 days] over every step event t (PostHog's sliding-window UDF): per step-event row, the
#   next occurrence of each step at or after it (min(ts) FILTER … OVER, the row itself included).
# ---------------------------------------------------------------------------------------------
_step_case_all = "CASE event " + " ".join(f"WHEN '{s}' THEN {i + 1}" for i, s in enumerate(STEPS)) + " ELSE 0 END"


def funnel_strict(src, where, person, ts, window):
    w = lambda t: f"{t} <= ts + {window}"  # noqa: E731
    return f"""WITH f AS (
  SELECT p, ts, s, CASE WHEN s IS DISTINCT FROM lag(s) OVER (PARTITION BY p ORDER BY ts) THEN 1 ELSE 0 END AS chg
  FROM (SELECT {person} AS p, {ts} AS ts, {_step_case_all} AS s FROM {src} WHERE {where}) e
), runs AS (
  SELECT p, run, min(s) AS s, CASE WHEN min(s) = 1 THEN max(ts) ELSE min(ts) END AS ts
  FROM (SELECT p, ts, s, sum(chg) OVER (PARTITION BY p ORDER BY ts ROWS UNBOUNDED PRECEDING) AS run FROM f) g
  GROUP BY p, run
), l AS (
  SELECT p, ts, s,
         lead(s, 1) OVER w AS s2, lead(ts, 1) OVER w AS t2,
         lead(s, 2) OVER w AS s3, lead(ts, 2) OVER w AS t3,
         lead(s, 3) OVER w AS s4, lead(ts, 3) OVER w AS t4
  FROM runs WINDOW w AS (PARTITION BY p ORDER BY run)
), per_person AS (
  SELECT p, max(CASE WHEN s2 = 2 AND {w('t2')} THEN
                  CASE WHEN s3 = 3 AND {w('t3')} THEN
                    CASE WHEN s4 = 4 AND {w('t4')} THEN 4 ELSE 3 END
                  ELSE 2 END
                ELSE 1 END) AS lvl
  FROM l WHERE s = 1 GROUP BY p
)
SELECT lvl, count(*) AS persons FROM per_person GROUP BY lvl ORDER BY lvl"""


def funnel_unordered(src, where, person, ts, window):
    within = lambda t: f"coalesce({t} <= ts + {window}, false)::int"  # noqa: E731
    return f"""WITH n AS (
  SELECT p, ts,
         min(ts) FILTER (WHERE s = 1) OVER w AS n1,
         min(ts) FILTER (WHERE s = 2) OVER w AS n2,
         min(ts) FILTER (WHERE s = 3) OVER w AS n3,
         min(ts) FILTER (WHERE s = 4) OVER w AS n4
  FROM (SELECT {person} AS p, {ts} AS ts, {_step_case_all} AS s FROM {src}
        WHERE {where} AND event IN ({_in})) e
  WINDOW w AS (PARTITION BY p ORDER BY ts DESC ROWS UNBOUNDED PRECEDING)
), per_person AS (
  SELECT p, max({within('n1')} + {within('n2')} + {within('n3')} + {within('n4')}) AS lvl
  FROM n GROUP BY p
)
SELECT lvl, count(*) AS persons FROM per_person GROUP BY lvl ORDER BY lvl"""


def pg_where(pid, lo, hi):
    return f"""project_id = {pid} AND "timestamp" >= '{lo}+00' AND "timestamp" < '{hi}+00'"""


def pg_queries(pid, mat=None, mat_url=None):
    """`mat`: the column materialising $browser (insights.materialize_property), if any: adds the
    `_mat` variants, the same queries reading it instead of the jsonb."""
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
    q["funnel_strict"] = funnel_strict("insights.events", w, "person_id", '"timestamp"',
                                       f"interval '{WINDOW_DAYS} days'")
    q["funnel_unordered"] = funnel_unordered("insights.events", w, "person_id", '"timestamp"',
                                             f"interval '{WINDOW_DAYS} days'")
    q["trend_filter"] = f"""SELECT ("timestamp" AT TIME ZONE 'UTC')::date AS d, count(*) AS events
FROM insights.events WHERE {w} AND event = '$pageview' AND properties->>'$browser' = 'Chrome'
GROUP BY d ORDER BY d"""
    # DISTINCT (day, browser, person) then GROUP BY: slightly faster than count(DISTINCT) in PG.
    dau = """SELECT d, b, count(*) AS persons FROM (
  SELECT DISTINCT ("timestamp" AT TIME ZONE 'UTC')::date AS d, {b} AS b, person_id
  FROM insights.events WHERE {w}) s
GROUP BY d, b ORDER BY d, b"""
    q["dau"] = dau.format(b="properties->>'$browser'", w=w)
    if mat:
        col = '"' + mat.replace('"', '""') + '"'
        q["dau_mat"] = dau.format(b=col, w=w)
        q["trend_filter_mat"] = q["trend_filter"].replace("properties->>'$browser'", col)
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
    # Recurring retention of $pageview: every week with a pageview is a cohort of its persons.
    q["retention_recurring"] = f"""WITH pw AS (
  SELECT DISTINCT person_id, date_trunc('week', "timestamp" AT TIME ZONE 'UTC')::date AS wk
  FROM insights.events WHERE {pg_where(pid, RET_FROM, RET_TO)} AND event = '$pageview'
)
SELECT a.wk AS cohort, (b.wk - a.wk) / 7 AS week_offset, count(*) AS persons
FROM pw a JOIN pw b ON b.person_id = a.person_id AND b.wk >= a.wk
GROUP BY 1, 2 ORDER BY 1, 2"""
    # Stickiness: distinct (person, UTC day) pairs (a hash aggregate that runs in parallel), then
    # days per person, then persons per day count.
    q["stickiness"] = f"""SELECT n AS intervals, count(*) AS persons FROM (
  SELECT person_id, count(*) AS n FROM (
    SELECT person_id, ("timestamp" AT TIME ZONE 'UTC')::date AS d
    FROM insights.events WHERE {w} AND event = '$pageview'
    GROUP BY 1, 2) pd
  GROUP BY person_id) s
GROUP BY n ORDER BY n"""
    q["stickiness_distinct"] = f"""SELECT n AS intervals, count(*) AS persons FROM (
  SELECT person_id, count(DISTINCT ("timestamp" AT TIME ZONE 'UTC')::date) AS n
  FROM insights.events WHERE {w} AND event = '$pageview'
  GROUP BY person_id) s
GROUP BY n ORDER BY n"""
    # Lifecycle, the Postgres form of lifecycle_window() (below), measured fastest of four here:
    # - the (person, day) pairs in a MATERIALIZED CTE: planned on its own, they are hash-aggregated
    #   (148k rows → 40k at 1M events) and only those are sorted for the window; inlined, the planner
    #   (estimating no reduction) sorts all the events for a Sort + Group that feeds the window;
    # - one pass over the windowed rows, each giving its status row and its dormant row
    #   (LATERAL VALUES) instead of a UNION ALL over a second CTE;
    # - persons.created_at probed only for a person's first day in the window (prev IS NULL).
    q["lifecycle"] = f"""WITH pd AS MATERIALIZED (
  SELECT person_id AS p, ("timestamp" AT TIME ZONE 'UTC')::date AS d
  FROM insights.events WHERE {pg_where(pid, LC_FROM, LC_TO)} AND event = '$pageview'
  GROUP BY 1, 2
), s AS (
  SELECT p, d, lag(d) OVER w AS prev, lead(d) OVER w AS next
  FROM pd WINDOW w AS (PARTITION BY p ORDER BY d)
)
SELECT x.status, x.d, CASE WHEN x.status = 'dormant' THEN -count(*) ELSE count(*) END AS persons
FROM s CROSS JOIN LATERAL (VALUES
  (s.d, CASE WHEN s.prev = s.d - 1 THEN 'returning'
             WHEN s.prev IS NULL AND s.d = (SELECT (pp.created_at AT TIME ZONE 'UTC')::date
                                            FROM insights.persons pp WHERE pp.id = s.p) THEN 'new'
             ELSE 'resurrecting' END),
  (CASE WHEN s.next IS NULL OR s.next > s.d + 1 THEN s.d + 1 END, 'dormant')) x(d, status)
WHERE x.d BETWEEN DATE '{OUT_FIRST}' AND DATE '{OUT_LAST}'
GROUP BY 1, 2 ORDER BY 1, 2"""
    # the DuckDB form on the same table: the A/B reference for the choice above (bench/diag/ab_interleaved.py)
    q["lifecycle_union"] = lifecycle_window(
        "insights.events", pg_where(pid, LC_FROM, LC_TO) + " AND event = '$pageview'", "person_id",
        """("timestamp" AT TIME ZONE 'UTC')::date""", "insights.persons",
        "(pp.created_at AT TIME ZONE 'UTC')::date")
    pv = f"{w} AND event = '$pageview'"
    pg_ms = lambda t1, t2: f"date_part('epoch', {t2} - {t1}) * 1000"  # noqa: E731
    for form in ("partition", "single"):  # "paths": the faster form (see paths_window)
        q["paths" + ("" if form == "partition" else "_one_sort")] = paths_window(
            "insights.events", pv, "person_id", '"timestamp"', "uuid", "properties->>'$current_url'",
            f"interval '{PATHS_GAP_MIN} minutes'", pg_ms, form, "OFFSET 0")
    if mat_url:  # the materialised $current_url column (bench.py pg_load)
        q["paths_mat"] = paths_window(
            "insights.events", pv, "person_id", '"timestamp"', "uuid", f'"{mat_url}"',
            f"interval '{PATHS_GAP_MIN} minutes'", pg_ms, "partition", "OFFSET 0")
    return q


# ---------------------------------------------------------------------------------------------
# Lifecycle (PostHog's, per day; DuckDB's form, Postgres has its own above): the window is the 30 output days
# plus one day on each side. Per person, the distinct active days d in the window, sorted, with
# lag/lead over (person, day):
#   new          d is the person's first active day in the window and the day of persons.created_at
#   returning    the day before d is active
#   resurrecting otherwise
#   dormant      on d + 1 when d + 1 is not active (counted negative)
# Only the output days are reported, zeros left out. persons.created_at is the first event of the
# person (what ingestion sets; gen.py writes it so and bench.py COPYs it).
# ---------------------------------------------------------------------------------------------
def lifecycle_window(src, where, person, day, persons, created_day):
    return f"""WITH pd AS (
  SELECT {person} AS p, {day} AS d FROM {src} WHERE {where} GROUP BY 1, 2
), s AS (
  SELECT p, d, lag(d) OVER w AS prev, lead(d) OVER w AS next
  FROM pd WINDOW w AS (PARTITION BY p ORDER BY d)
), st AS (
  SELECT s.d, CASE WHEN s.prev IS NULL AND s.d = {created_day} THEN 'new'
                   WHEN s.prev = s.d - 1 THEN 'returning' ELSE 'resurrecting' END AS status
  FROM s LEFT JOIN {persons} pp ON pp.id = s.p
  WHERE s.d BETWEEN DATE '{OUT_FIRST}' AND DATE '{OUT_LAST}'
  UNION ALL
  SELECT s.d + 1, 'dormant' FROM s
  WHERE (s.next IS NULL OR s.next > s.d + 1) AND s.d + 1 BETWEEN DATE '{OUT_FIRST}' AND DATE '{OUT_LAST}'
)
SELECT status, d, CASE WHEN status = 'dormant' THEN -count(*) ELSE count(*) END AS persons
FROM st GROUP BY status, d ORDER BY status, d"""


# ---------------------------------------------------------------------------------------------
# Paths (docs/insights.md "Paths"), $pageview over the 30 days, 5 steps, every edge:
#   per person in (timestamp, uuid) order, a gap of 30 minutes or more to the previous pageview
#   starts a new session; item = $current_url with one trailing '/' removed ('/' stays), missing
#   = ''; consecutive equal items of a session collapse to the LAST event of the run (its time);
#   the first 5 items of each session; edges "<i>_<item>" -> "<i+1>_<item>" with value = number
#   of paths and average_conversion_time = mean ms between the two events.
# pg_insights is asked for every edge (edge_limit 1,000,000, no weight bounds), so its selection
# (limit, then reachability from a 1_ node) removes nothing: each i -> i+1 edge's source is the
# target of the path's (i-1) -> i edge, which is kept too.
#
# The window form, one ordering (person, ts, uuid) for every level, so Postgres sorts once:
#   a: new = gap to the previous pageview >= 30 min (or none); keep = last event of its run (the
#      next one has another item, starts a new session, or there is none);
#   b: kc = kept events so far (running count);
#   c: pos = kc - (kept events before the session's first event) = the item's step in its session;
#   d: over the kept items of steps 1..5, the next kept item: an edge when its step is pos + 1
#      (a next session restarts at 1).
# The "partition" form numbers the kept items with row_number() over (person, session) instead: a
# second (incremental) sort, but one window level less; measured faster in Postgres and DuckDB
# (bench/results/notes_1000000_paths.md), so it is the `paths` entry and the one-sort form is
# `paths_one_sort`.
# ---------------------------------------------------------------------------------------------
PATHS_STEPS = 5
PATHS_GAP_MIN = 30


def paths_item(r):
    """The item of the raw URL column r (already coalesced to ''): one trailing '/' removed, '/' stays."""
    return f"CASE WHEN length({r}) > 1 AND right({r}, 1) = '/' THEN left({r}, length({r}) - 1) ELSE {r} END"


def paths_window(src, where, person, ts, uuid, url, gap, ms, form="single", fence=""):
    """ms(t1, t2): SQL of the milliseconds between two timestamps. fence: "OFFSET 0" keeps Postgres
    from pulling the URL subquery up, which would repeat the jsonb extraction in every use of r."""
    # every window with a ROWS frame: lag/lead ignore the frame, but Postgres' default RANGE frame
    # makes it track peer rows (about 15 % of the statement in an interleaved A/B)
    w = wr = "WINDOW w AS (PARTITION BY p ORDER BY ts, u ROWS UNBOUNDED PRECEDING)"
    a = f"""a AS (
  SELECT p, ts, u, i,
         coalesce(ts - lag(ts) OVER w >= {gap}, true) AS new,
         lead(i) OVER w IS DISTINCT FROM i OR lead(ts) OVER w - ts >= {gap} AS keep
  FROM (SELECT p, ts, u, {paths_item('r')} AS i
        FROM (SELECT {person} AS p, {ts} AS ts, {uuid} AS u, coalesce({url}, '') AS r
              FROM {src} WHERE {where}{' ' + fence if fence else ''}) e0) e
  {w}
)"""
    final = f"""SELECT pos || '_' || i AS source, (pos + 1) || '_' || i2 AS target, count(*) AS value,
       avg({ms('ts', 't2')}) AS average_conversion_time
FROM d WHERE {{edge}} GROUP BY 1, 2"""
    if form == "single":
        return f"""WITH {a}, b AS (
  SELECT p, ts, u, i, new, keep, sum(keep::int) OVER w AS kc FROM a {wr}
), c AS (
  SELECT p, ts, u, i, keep, kc - max(CASE WHEN new THEN kc - keep::int END) OVER w AS pos FROM b {wr}
), d AS (
  SELECT ts, i, pos, lead(i) OVER w AS i2, lead(ts) OVER w AS t2, lead(pos) OVER w AS pos2
  FROM c WHERE keep AND pos <= {PATHS_STEPS} {w}
)
""" + final.format(edge="pos2 = pos + 1")
    return f"""WITH {a}, b AS (
  SELECT p, ts, u, i, keep, sum(new::int) OVER w AS s FROM a {wr}
), d AS (
  SELECT ts, i, row_number() OVER w AS pos, lead(i) OVER w AS i2, lead(ts) OVER w AS t2
  FROM b WHERE keep WINDOW w AS (PARTITION BY p, s ORDER BY ts, u ROWS UNBOUNDED PRECEDING)
)
""" + final.format(edge=f"pos < {PATHS_STEPS} AND t2 IS NOT NULL")


def pg_elements(pid):
    """elements/stats/ in plain SQL: $autocapture events per chain, most first (7 days)."""
    return f"""SELECT event, n, substring(chain FROM 'text="([^"]*)"') AS text FROM (
  SELECT elements_chain AS chain, event, count(*) AS n FROM insights.events
  WHERE {pg_where(pid, EL_FROM, EL_TO)} AND event = '$autocapture' AND elements_chain <> ''
  GROUP BY 1, 2) s
ORDER BY n DESC, chain LIMIT 100"""


def pgi_elements(pid):
    """insights._elements_stats (the elements/stats/ endpoint's function): items with PostHog's hash
    and the parsed elements; the first element's text identifies the chain for the cross-check."""
    return f"""SELECT x->>'type', (x->>'count')::bigint, x->'elements'->0->>'text'
FROM jsonb_array_elements(insights._elements_stats({pid}::bigint, ARRAY['$autocapture'], '[]'::jsonb,
     false, '{EL_FROM}+00', '{EL_TO}+00', 99, 0)) x"""


def pgi_paths(pid):
    """insights.paths with every edge: edge_limit far above the ~19k edges, no weight bounds."""
    q = {"insight": "PATHS", "include_event_types": ["$pageview"], "date_from": OUT_FIRST,
         "date_to": OUT_LAST, "step_limit": PATHS_STEPS, "edge_limit": 1_000_000}
    return f"""SELECT source, target, value, average_conversion_time
FROM insights.paths({pid}::bigint, '{json.dumps(q)}'::jsonb)"""


def pgi_window_funnel(pid):
    conds = ", ".join(f"event = '{s}'" for s in STEPS)
    return f"""SELECT lvl, count(*) AS persons FROM (
  SELECT insights.window_funnel('{WINDOW_DAYS} days'::interval, "timestamp", {conds}) AS lvl
  FROM insights.events
  WHERE {pg_where(pid, FROM_TS, TO_TS)} AND event IN ({_in})
  GROUP BY person_id) s
WHERE lvl > 0 GROUP BY lvl ORDER BY lvl"""


def funnels_query(breakdown, order="ordered"):
    q = {
        "kind": "FunnelsQuery",
        "series": [{"kind": "EventsNode", "event": s, "name": s} for s in STEPS],
        "dateRange": {"date_from": "2026-10-02T00:00:00Z", "date_to": "2026-10-31T23:59:59.999999Z",
                      "explicitDate": True},
        "funnelsFilter": {"funnelWindowInterval": WINDOW_DAYS, "funnelWindowIntervalUnit": "day",
                          "funnelOrderType": order, "funnelVizType": "steps"},
    }
    if breakdown:
        q["breakdownFilter"] = {"breakdown": "$browser", "breakdown_type": "event"}
        q["funnelsFilter"]["breakdownAttributionType"] = "first_touch"
    return json.dumps(q)


def pgi_funnel(pid, breakdown, order="ordered"):
    return f"SELECT * FROM insights.funnel({pid}::bigint, '{funnels_query(breakdown, order)}'::jsonb)"


def heap(sql):
    """The same pg_insights statement with pg_insights.use_segments off for this statement only
    (set_config(…, true) in autocommit lasts one statement; the LATERAL call runs after it)."""
    head, sep, rest = sql.partition("FROM insights.")
    return (f"{head}FROM (SELECT set_config('pg_insights.use_segments', 'off', true)) pgi_off, "
            f"LATERAL insights.{rest}")


def pgi_trend_filter(pid):
    q = {
        "kind": "TrendsQuery",
        "series": [{"kind": "EventsNode", "event": "$pageview", "math": "total"}],
        "interval": "day",
        "dateRange": {"date_from": "2026-10-02T00:00:00Z", "date_to": "2026-10-31T23:59:59.999999Z",
                      "explicitDate": True},
        "properties": [{"key": "$browser", "value": "Chrome", "operator": "exact", "type": "event"}],
    }
    return f"""SELECT (bucket AT TIME ZONE 'UTC')::date AS d, value::bigint AS events
FROM insights.trend({pid}::bigint, '{json.dumps(q)}'::jsonb) WHERE value > 0"""


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


def pgi_dau_previous(pid):
    """The statement insights.trend ran for Q3 before the _uniq_actors aggregate (commit bd55056),
    parameters inlined: DISTINCT (bucket, breakdown, person) rows, then a count per group. Kept as an
    A/B reference next to trend()."""
    w = (f"""e.project_id = {pid} AND e."timestamp" >= '2026-10-02 00:00:00+00'::timestamptz """
         f"""AND e."timestamp" <= '2026-10-31 23:59:59.999999+00'::timestamptz""")
    return f"""SELECT (bucket AT TIME ZONE 'UTC')::date AS d, breakdown AS b, v AS persons FROM (
  SELECT d.bucket, d.breakdown, count(*) AS v FROM (
    SELECT DISTINCT (date_trunc('day', e."timestamp" AT TIME ZONE 'UTC'::text) AT TIME ZONE 'UTC'::text) AS bucket,
           (e.properties ->> '$browser'::text) AS breakdown, e.person_id AS actor
    FROM insights.events e WHERE {w} AND e.person_id IS NOT NULL) d
  GROUP BY 1, 2) a"""


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


def pgi_retention_recurring(pid):
    q = {
        "kind": "RetentionQuery",
        "dateRange": {"date_to": "2026-11-01T23:59:59Z"},
        "retentionFilter": {"period": "Week", "totalIntervals": 8, "retentionType": "retention_recurring",
                            "targetEntity": {"id": "$pageview", "type": "events"},
                            "returningEntity": {"id": "$pageview", "type": "events"}},
    }
    return f"""SELECT left(cohort_date, 10)::date AS cohort, period AS week_offset, count AS persons
FROM insights.retention({pid}::bigint, '{json.dumps(q)}'::jsonb) WHERE count > 0"""


def _legacy_filter(insight):
    return json.dumps({"insight": insight, "events": [{"id": "$pageview"}], "date_from": OUT_FIRST,
                       "date_to": OUT_LAST, "interval": "day"})


def pgi_stickiness(pid):
    """insights.stickiness returns every k of 1..30, zeros included: they are left out here, as
    the peers have no row for them."""
    return f"""SELECT intervals, actors::bigint AS persons
FROM insights.stickiness({pid}::bigint, '{_legacy_filter("STICKINESS")}'::jsonb) WHERE actors <> 0"""


def pgi_lifecycle(pid):
    """insights.lifecycle: (status, bucket, value), dormant negative, zeros included (left out)."""
    return f"""SELECT status, (bucket AT TIME ZONE 'UTC')::date AS d, value::bigint AS persons
FROM insights.lifecycle({pid}::bigint, '{_legacy_filter("LIFECYCLE")}'::jsonb) WHERE value <> 0"""


def duckdb_queries():
    w = f"ts >= TIMESTAMP '{FROM_TS}' AND ts < TIMESTAMP '{TO_TS}'"
    q = {}
    q["elements"] = f"""SELECT event, n, regexp_extract(chain, 'text="([^"]*)"', 1) AS text FROM (
  SELECT elements_chain AS chain, event, count(*) AS n FROM events
  WHERE ts >= TIMESTAMP '{EL_FROM}' AND ts < TIMESTAMP '{EL_TO}' AND event = '$autocapture'
    AND elements_chain <> '' GROUP BY 1, 2) s
ORDER BY n DESC, chain LIMIT 100"""
    q["funnel"] = funnel_v2("events", w, "person_id", "ts", "browser", f"INTERVAL {WINDOW_DAYS} DAY", False)
    q["funnel_breakdown"] = funnel_v2("events", w, "person_id", "ts", "browser",
                                      f"INTERVAL {WINDOW_DAYS} DAY", True)
    q["funnel_strict"] = funnel_strict("events", w, "person_id", "ts", f"INTERVAL {WINDOW_DAYS} DAY")
    q["funnel_unordered"] = funnel_unordered("events", w, "person_id", "ts", f"INTERVAL {WINDOW_DAYS} DAY")
    tf = """SELECT ts::DATE AS d, count(*) AS events FROM events
WHERE {w} AND event = '$pageview' AND {b} = 'Chrome' GROUP BY d ORDER BY d"""
    q["trend_filter"] = tf.format(b="browser", w=w)
    q["trend_filter_json"] = tf.format(b="json_extract_string(properties, '$.\"$browser\"')", w=w)
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
    q["retention_recurring"] = f"""WITH pw AS (
  SELECT DISTINCT person_id, date_trunc('week', ts)::DATE AS wk FROM events
  WHERE ts >= TIMESTAMP '{RET_FROM}' AND ts < TIMESTAMP '{RET_TO}' AND event = '$pageview'
)
SELECT a.wk AS cohort, (b.wk - a.wk) // 7 AS week_offset, count(*) AS persons
FROM pw a JOIN pw b ON b.person_id = a.person_id AND b.wk >= a.wk
GROUP BY 1, 2 ORDER BY 1, 2"""
    q["stickiness"] = f"""SELECT n AS intervals, count(*) AS persons FROM (
  SELECT person_id, count(DISTINCT ts::DATE) AS n FROM events
  WHERE {w} AND event = '$pageview' GROUP BY person_id) s
GROUP BY n ORDER BY n"""
    q["lifecycle"] = lifecycle_window(
        "events", f"ts >= TIMESTAMP '{LC_FROM}' AND ts < TIMESTAMP '{LC_TO}' AND event = '$pageview'",
        "person_id", "ts::DATE", "persons", "pp.created_at::DATE")
    dk_ms = lambda t1, t2: f"(epoch_us({t2}) - epoch_us({t1})) / 1000.0"  # noqa: E731
    pv = f"{w} AND event = '$pageview'"
    for form in ("partition", "single"):  # uuid is VARCHAR here (lowercase hex: bytewise order)
        sfx = "" if form == "partition" else "_one_sort"
        q["paths" + sfx] = paths_window("events", pv, "person_id", "ts", "uuid", "current_url",
                                        f"INTERVAL {PATHS_GAP_MIN} MINUTE", dk_ms, form)
    q["paths_json"] = paths_window("events", pv, "person_id", "ts", "uuid",
                                   "json_extract_string(properties, '$.\"$current_url\"')",
                                   f"INTERVAL {PATHS_GAP_MIN} MINUTE", dk_ms, "partition")
    return q


def chdb_queries():
    def rng(lo, hi):
        return f"ts >= toDateTime64('{lo}', 6, 'UTC') AND ts < toDateTime64('{hi}', 6, 'UTC')"
    conds = ", ".join(f"event = '{s}'" for s in STEPS)
    s = " SETTINGS max_threads = 2"
    q = {}
    q["elements"] = f"""SELECT event, n, extract(chain, 'text="([^"]*)"') AS text FROM (
  SELECT elements_chain AS chain, event, count() AS n FROM bench.events
  WHERE {rng(EL_FROM, EL_TO)} AND event = '$autocapture' AND elements_chain != '' GROUP BY chain, event)
ORDER BY n DESC, chain LIMIT 100{s}"""
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
    # (the microsecond column is called t: a ClickHouse alias named ts would shadow the column in WHERE)
    us = "toInt64(toUnixTimestamp64Micro(ts))"
    case_all = "multiIf(" + ", ".join(f"event = '{x}', {i + 1}" for i, x in enumerate(STEPS)) + ", 0)"
    win = lambda c, start="t": f"{c} <= {start} + {WINDOW_US}"  # noqa: E731
    # strict: the same runs + lead() form as PG/DuckDB (windowFunnel 'strict_order' stops at the
    # first interruption and never restarts, which is not PostHog's strict funnel).
    lead = lambda c, k: f"leadInFrame({c}, {k}) OVER w"  # noqa: E731
    q["funnel_strict"] = f"""SELECT lvl, count() AS persons FROM (
  SELECT p, max(if(s2 = 2 AND {win('t2', 'rt')}, if(s3 = 3 AND {win('t3', 'rt')}, if(s4 = 4 AND {win('t4', 'rt')}, 4, 3), 2), 1)) AS lvl
  FROM (SELECT p, rt, rs, {lead('rs', 1)} AS s2, {lead('rt', 1)} AS t2, {lead('rs', 2)} AS s3,
               {lead('rt', 2)} AS t3, {lead('rs', 3)} AS s4, {lead('rt', 3)} AS t4
        FROM (SELECT p, run, any(s) AS rs, if(any(s) = 1, max(t), min(t)) AS rt
              FROM (SELECT p, t, s, sum(chg) OVER (PARTITION BY p ORDER BY t ROWS UNBOUNDED PRECEDING) AS run
                    FROM (SELECT p, t, s, if(s != lagInFrame(s, 1, toUInt8(255)) OVER (PARTITION BY p ORDER BY t
                                 ROWS BETWEEN 1 PRECEDING AND CURRENT ROW), 1, 0) AS chg
                          FROM (SELECT person_id AS p, {us} AS t, {case_all} AS s FROM bench.events
                                WHERE {rng(FROM_TS, TO_TS)})))
              GROUP BY p, run)
        WINDOW w AS (PARTITION BY p ORDER BY run ROWS BETWEEN CURRENT ROW AND 3 FOLLOWING))
  WHERE rs = 1 GROUP BY p)
GROUP BY lvl ORDER BY lvl{s}"""
    nxt = lambda k: f"minIf(t, s = {k}) OVER w"  # noqa: E731
    inw = lambda c: f"toUInt8({c} != 0 AND {c} <= t + {WINDOW_US})"  # noqa: E731
    q["funnel_unordered"] = f"""SELECT lvl, count() AS persons FROM (
  SELECT p, max({inw('n1')} + {inw('n2')} + {inw('n3')} + {inw('n4')}) AS lvl
  FROM (SELECT p, t, {nxt(1)} AS n1, {nxt(2)} AS n2, {nxt(3)} AS n3, {nxt(4)} AS n4
        FROM (SELECT person_id AS p, {us} AS t, {case_all} AS s FROM bench.events
              WHERE {rng(FROM_TS, TO_TS)} AND event IN ({_in}))
        WINDOW w AS (PARTITION BY p ORDER BY t DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
  GROUP BY p)
GROUP BY lvl ORDER BY lvl{s}"""
    tf = """SELECT toDate(ts) AS d, count() AS events FROM bench.events
WHERE {w} AND event = '$pageview' AND {b} = 'Chrome' GROUP BY d ORDER BY d{s}"""
    q["trend_filter"] = tf.format(b="browser", w=rng(FROM_TS, TO_TS), s=s)
    q["trend_filter_json"] = tf.format(b="JSONExtractString(properties, '$browser')", w=rng(FROM_TS, TO_TS), s=s)
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
    q["retention_recurring"] = f"""SELECT a.wk AS cohort, intDiv(dateDiff('day', a.wk, b.wk), 7) AS week_offset,
       count() AS persons
FROM (SELECT DISTINCT person_id, toMonday(ts) AS wk FROM bench.events
      WHERE {rng(RET_FROM, RET_TO)} AND event = '$pageview') AS a
INNER JOIN (SELECT DISTINCT person_id, toMonday(ts) AS wk FROM bench.events
            WHERE {rng(RET_FROM, RET_TO)} AND event = '$pageview') AS b USING (person_id)
WHERE b.wk >= a.wk
GROUP BY cohort, week_offset ORDER BY cohort, week_offset{s}"""
    q["stickiness"] = f"""SELECT n AS intervals, count() AS persons FROM (
  SELECT person_id, uniqExact(toDate(ts)) AS n FROM bench.events
  WHERE {rng(FROM_TS, TO_TS)} AND event = '$pageview' GROUP BY person_id)
GROUP BY n ORDER BY n{s}"""
    # Lifecycle in ClickHouse's array form: each person's sorted distinct days, then one
    # (day, status) tuple per active day and per dormant day (d + 1 not active), ARRAY JOINed.
    # The created day comes from bench.persons (created_at = first event, as in Postgres).
    q["lifecycle"] = f"""SELECT status, d, if(status = 'dormant', -toInt64(count()), toInt64(count())) AS persons
FROM (
  SELECT x.1 AS d, x.2 AS status
  FROM (SELECT a.days AS days, pp.c AS c
        FROM (SELECT person_id AS p, arraySort(groupUniqArray(toDate(ts))) AS days FROM bench.events
              WHERE {rng(LC_FROM, LC_TO)} AND event = '$pageview' GROUP BY person_id) AS a
        LEFT JOIN (SELECT id, toDate(created_at) AS c FROM bench.persons) AS pp ON pp.id = a.p)
  ARRAY JOIN arrayConcat(
    arrayMap(i -> (days[i], multiIf(i = 1 AND days[i] = c, 'new',
                                    i > 1 AND days[i - 1] = days[i] - 1, 'returning', 'resurrecting')),
             arrayEnumerate(days)),
    arrayMap(i -> (days[i] + 1, 'dormant'),
             arrayFilter(i -> i = length(days) OR days[i + 1] > days[i] + 1, arrayEnumerate(days)))) AS x)
WHERE d BETWEEN toDate('{OUT_FIRST}') AND toDate('{OUT_LAST}')
GROUP BY status, d ORDER BY status, d{s}"""
    # Paths in ClickHouse's array form (PostHog's own paths query groups each person's events
    # into arrays): per person the sorted (µs, uuid, item) tuples (the uuid as text: ClickHouse
    # orders the UUID type by its two 64-bit halves, not bytewise as Postgres and pg_insights do;
    # the bench data has no equal times within a person, so this only matters for the rule),
    # split into sessions where the gap to the previous event is >= 30 min (arrayDifference, no
    # lambda capturing the array),
    # runs collapsed to their last element (kept when the next item differs or there is none),
    # the first 5 items, then one row per consecutive pair (ARRAY JOIN).
    gap_us = PATHS_GAP_MIN * 60 * 1_000_000
    ch_item = lambda u: f"if(length({u}) > 1 AND endsWith({u}, '/'), substring({u}, 1, length({u}) - 1), {u})"  # noqa: E731
    paths_arrays = """SELECT concat(toString(k), '_', s[k].2) AS source, concat(toString(k + 1), '_', s[k + 1].2) AS target,
       count() AS value, avg(s[k + 1].1 - s[k].1) / 1000 AS average_conversion_time
FROM (
  SELECT arraySlice(arrayFilter((x, nxt) -> isNull(nxt) OR x.2 != assumeNotNull(nxt), sess,
                                arrayPushBack(arrayMap(x -> toNullable(x.2), arrayPopFront(sess)), NULL)),
                    1, {steps}) AS s
  FROM (SELECT arrayMap(x -> (x.1, x.3), arraySort(groupArray((t, uuid, i)))) AS evs
        FROM (SELECT person_id, {us} AS t, toString(uuid) AS uuid, {item} AS i FROM bench.events
              WHERE {w} AND event = '$pageview')
        GROUP BY person_id)
  ARRAY JOIN arraySplit((x, g) -> g >= {gap}, evs, arrayDifference(arrayMap(x -> x.1, evs))) AS sess)
ARRAY JOIN arrayEnumerate(arrayPopBack(s)) AS k
GROUP BY source, target{s}"""
    for sfx, url in (("", "current_url"), ("_json", "JSONExtractString(properties, '$current_url')")):
        q["paths" + sfx] = paths_arrays.format(steps=PATHS_STEPS, us=us, item=ch_item(url), w=rng(FROM_TS, TO_TS),
                                               gap=gap_us, s=s)
    # the window form of the SQL peers (lagInFrame/leadInFrame over (person, µs, uuid))
    fw = "WINDOW w AS (PARTITION BY p ORDER BY t, u ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    q["paths_window"] = f"""SELECT concat(toString(pos), '_', i) AS source, concat(toString(pos + 1), '_', i2) AS target,
       count() AS value, avg(t2 - t) / 1000 AS average_conversion_time
FROM (SELECT t, i, pos, leadInFrame(i) OVER wl AS i2, leadInFrame(t) OVER wl AS t2, leadInFrame(pos) OVER wl AS pos2
      FROM (SELECT p, t, u, i, keep, kc - max(if(new, kc - keep, NULL)) OVER w AS pos
            FROM (SELECT p, t, u, i, new, keep, sum(keep) OVER w AS kc
                  FROM (SELECT p, t, u, i,
                               toUInt8(rn = 1 OR t - lagInFrame(t) OVER w >= {gap_us}) AS new,
                               toUInt8(rn = cnt OR leadInFrame(i) OVER wl != i OR leadInFrame(t) OVER wl - t >= {gap_us}) AS keep
                        FROM (SELECT p, t, u, i, row_number() OVER w AS rn, count() OVER (PARTITION BY p) AS cnt
                              FROM (SELECT person_id AS p, {us} AS t, toString(uuid) AS u, {ch_item('current_url')} AS i
                                    FROM bench.events WHERE {rng(FROM_TS, TO_TS)} AND event = '$pageview')
                              {fw})
                        {fw}, wl AS (PARTITION BY p ORDER BY t, u ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING))
                  {fw})
            {fw})
      WHERE keep = 1 AND pos <= {PATHS_STEPS}
      WINDOW wl AS (PARTITION BY p ORDER BY t, u ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING))
WHERE pos2 = pos + 1
GROUP BY source, target{s}"""
    return q


QUERIES = {
    "funnel": "Q1 ordered 4-step funnel $pageview → view_item → add_to_cart → purchase, 30 days, "
              "14-day window from step 1: persons per furthest level 1..4",
    "funnel_breakdown": "Q2 same funnel, broken down by $browser with PostHog's first_touch "
                        "attribution (the person's first funnel event in range, any step)",
    "funnel_strict": "Q1s the Q1 funnel with PostHog's strict order (funnelOrderType strict): any other event "
                     "of the person in range breaks the chain (a repeat of the current step does not), 14-day "
                     "window from step 1; plain SQL/DuckDB/chdb: runs of equal steps, then lead() over the runs "
                     "(chdb's windowFunnel 'strict_order' stops at the first interruption, a different rule, so "
                     "it is not used)",
    "funnel_unordered": "Q1u the Q1 steps in any order (funnelOrderType unordered): the most distinct steps "
                        "within 14 days of a step event; plain SQL/DuckDB/chdb: next occurrence of each step "
                        "per row (windowFunnel has no unordered mode)",
    "trend_filter": "Q5 trend with a property filter: total $pageview events per UTC day where "
                    "$browser = 'Chrome', 30 days",
    "dau": "Q3 DAU: distinct persons per UTC day × $browser, 30 days",
    "retention": "Q4 weekly retention, 8 ISO weeks, PostHog retention_first_time: cohort = week of the "
                 "first-ever event, returning = any event; cohort × week offset → persons",
    "retention_recurring": "Q4r weekly recurring retention of $pageview, 8 ISO weeks: every week with a "
                           "pageview is a cohort of its persons, returning = a later week with one; cohort × "
                           "week offset → persons",
    "stickiness": "Q6 stickiness of $pageview, 30 days (UTC): persons by the number of distinct days "
                  "they were active on, k = 1..30 (k → persons)",
    "lifecycle": "Q7 lifecycle of $pageview per UTC day, 30 output days (window: one day before and after): "
                 "new (first active day in the window = day of persons.created_at) / returning (day before "
                 "active) / resurrecting / dormant (the day after an active day, negative) → persons per "
                 "status × day",
    "paths": "Q8 paths of $pageview, 30 days, 5 steps, every edge: per person in (time, uuid) order, sessions "
             "split at gaps >= 30 min, item = $current_url (one trailing '/' removed), repeats collapsed to "
             "their last event, the first 5 items per session; edges \"<i>_<item>\" → \"<i+1>_<item>\" → "
             "paths and mean ms between the two events (pg_insights: insights.paths with edge_limit 1,000,000, "
             "so its selection removes nothing)",
    "elements": "Q9 elements/stats/: $autocapture events per element chain over the last 7 days, most "
                "clicked first (22 % of the events are $autocapture; 40 chains of 4 elements in PostHog's "
                "format, chain = ELEMENT_CHAINS[person_id % 40], derived identically by every engine at "
                "load); pg_insights: insights._elements_stats, which also parses each chain and computes "
                "PostHog's hash",
}
