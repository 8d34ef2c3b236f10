"""Property-style tests for stickiness and lifecycle: random event streams, the engine's answer (through SQL,
`insights.stickiness_json` / `insights.lifecycle_json`) against a brute-force reference written here.

Each case (a fixed seed) builds a fresh project with a random timezone and week start, 1–8 persons (some of
them two distinct ids merged by `$identify`), up to 40 events each around a 2021 DST change (many near local
midnight or the DST instant), and one random query. The reference follows docs/insights.md (Stickiness,
Lifecycle) and docs/dates.md:

* buckets in the project timezone: day = local date, week = local date back to the week start (0 Sunday,
  1 Monday), month = first of the local month, hour = the local hour (truncated keeping the UTC offset, so the
  two 01:xx hours of a fall-back night are two buckets);
* date-only bounds: from = local midnight of `date_from` snapped to the start of its interval, to = the end of
  the local day of `date_to`; with `hour` an absolute `date_to` is kept exactly (a date-only one is 00:00 of
  that day) and `date_from` is snapped to its hour;
* stickiness reads events in `[start(date_from), date_to]`; with `intervalCount c` bucket i (1-based, of N)
  is in group (N − i) // c; a criterion keeps the intervals (groups) whose event count satisfies it;
* lifecycle reads the whole window (one period before and after the output periods) and uses the person's
  `created_at` for "new".

Persons (the distinct id → person map) and `created_at` are read from the database after ingestion, so the
reference uses the DB's own merges.
"""

import json
import random
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from conftest import sql

UTC = timezone.utc
PV, CLICK, OTHER = "$pageview", "click", "$other"
EVENT_NAMES = [PV, CLICK, OTHER]
TIMEZONES = ["UTC", "US/Pacific", "Asia/Kolkata", "Europe/London"]
STATUSES = ["new", "returning", "resurrecting", "dormant"]
PRO = {"key": "plan", "value": "pro", "operator": "exact", "type": "event"}

# DST changes (UTC instants) in 2021, and the fixed centre dates the event windows are built around.
DST = {
    "US/Pacific": [datetime(2021, 3, 14, 10, tzinfo=UTC), datetime(2021, 11, 7, 9, tzinfo=UTC)],
    "Europe/London": [datetime(2021, 3, 28, 1, tzinfo=UTC), datetime(2021, 10, 31, 1, tzinfo=UTC)],
}
CENTRES = [date(2021, 3, 21), date(2021, 11, 3)]

# 58 and 207 combine intervalCount > 1 with a criterion: the criterion applies to the event count of each
# interval (group of c buckets), per docs/insights.md and PostHog's HAVING on floor(age / c).
STICKINESS_SEEDS = list(range(1, 23)) + [58, 207]
LIFECYCLE_SEEDS = list(range(101, 125))


# ---------------------------------------------------------------------------------------------
# Buckets (reference)
# ---------------------------------------------------------------------------------------------


def add_months(d, n):
    m = d.month - 1 + n
    return date(d.year + m // 12, m % 12 + 1, 1)


class Buckets:
    """Bucket keys of one interval in one timezone: a local `date` for day/week/month, the UTC instant of the
    local hour start for hour."""

    def __init__(self, interval, tz, week_start):
        self.interval, self.tz, self.week_start = interval, ZoneInfo(tz), week_start

    def of_date(self, d):
        if self.interval == "day":
            return d
        if self.interval == "week":
            return d - timedelta(days=(d.isoweekday() % 7 - self.week_start) % 7)  # isoweekday % 7: Sunday 0
        if self.interval == "month":
            return d.replace(day=1)
        raise AssertionError(self.interval)

    def of(self, ts):
        local = ts.astimezone(self.tz)
        if self.interval == "hour":
            # replace() keeps `fold`, so the repeated 01:xx hour keeps its own offset.
            return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return self.of_date(local.date())

    def shift(self, key, n):
        if self.interval == "hour":
            return key + timedelta(hours=n)
        if self.interval == "day":
            return key + timedelta(days=n)
        if self.interval == "week":
            return key + timedelta(weeks=n)
        return add_months(key, n)

    def between(self, first, last):
        out, k = [], first
        while k <= last:
            out.append(k)
            k = self.shift(k, 1)
        return out

    def day_string(self, key):
        if self.interval == "hour":
            return key.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")
        return key.isoformat()


def local_midnight(d, tz):
    return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def parse_bound(s, tz):
    """An absolute bound → a UTC instant: date-only and naive strings are local, `Z` is UTC."""
    if len(s) == 10:
        return local_midnight(date.fromisoformat(s), tz)
    if s.endswith("Z"):
        return datetime.fromisoformat(s[:-1]).replace(tzinfo=UTC)
    return datetime.fromisoformat(s).replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


class Range:
    """The resolved range: the output buckets, and which event instants stickiness reads."""

    def __init__(self, b, date_from, date_to, tz):
        self.b = b
        if b.interval == "hour":
            start, self.to = parse_bound(date_from, tz), parse_bound(date_to, tz)
            self.first, self.last = b.of(start), b.of(self.to)
        else:
            self.date_to = date.fromisoformat(date_to)
            self.first, self.last = b.of_date(date.fromisoformat(date_from)), b.of_date(self.date_to)
        self.buckets = b.between(self.first, self.last)

    def sticky_contains(self, ts):
        """`start(date_from) <= ts <= date_to`."""
        if self.b.interval == "hour":
            return self.first <= ts <= self.to
        local = ts.astimezone(self.b.tz).date()
        return self.first <= local <= self.date_to


# ---------------------------------------------------------------------------------------------
# Reference engines
# ---------------------------------------------------------------------------------------------


def matches(e, series_event, pro_filter):
    if series_event is not None and e["event"] != series_event:
        return False
    if pro_filter and e["properties"].get("plan") != "pro":
        return False
    return True


def ref_stickiness(events, person_of, spec, b):
    rng = Range(b, spec["date_from"], spec["date_to"], spec["tz"])
    n = len(rng.buckets)
    c = spec["interval_count"]
    position = {k: i for i, k in enumerate(rng.buckets, 1)}
    counts = {}  # (person, group) → number of matching events
    for e in events:
        if not matches(e, spec["event"], spec["pro"]) or not rng.sticky_contains(e["ts"]):
            continue
        group = (n - position[b.of(e["ts"])]) // c
        key = (person_of[e["distinct_id"]], group)
        counts[key] = counts.get(key, 0) + 1
    crit = spec["criteria"]
    ok = {
        None: lambda x: x > 0,
        "gte": lambda x: x >= crit[1],
        "lte": lambda x: x <= crit[1],
        "exact": lambda x: x == crit[1],
    }[crit and crit[0]]
    per_person = {}
    for (person, _group), cnt in counts.items():
        if ok(cnt):
            per_person[person] = per_person.get(person, 0) + 1
    intervals = -(-n // c)
    data = [0] * intervals
    for k in per_person.values():
        data[k - 1] += 1
    count = sum(data)
    if spec["cumulative"]:
        data = [sum(data[i:]) for i in range(intervals)]
    return {"data": data, "count": count}


def ref_lifecycle(events, person_of, created_at, spec, b):
    rng = Range(b, spec["date_from"], spec["date_to"], spec["tz"])
    window = [b.shift(rng.first, -1)] + rng.buckets + [b.shift(rng.last, 1)]
    index = {k: i for i, k in enumerate(window)}
    active = {}
    for e in events:
        if not matches(e, spec["event"], spec["pro"]):
            continue
        i = index.get(b.of(e["ts"]))
        if i is not None:
            active.setdefault(person_of[e["distinct_id"]], set()).add(i)
    n = len(rng.buckets)
    out = {s: [0.0] * n for s in STATUSES}

    def put(status, i, v):
        if 1 <= i <= n:
            out[status][i - 1] += v

    for person, periods in active.items():
        ps = sorted(periods)
        created = index.get(b.of(created_at[person]))
        for j, i in enumerate(ps):
            if j == 0 and created == i:
                put("new", i, 1.0)
            elif j > 0 and ps[j - 1] == i - 1:
                put("returning", i, 1.0)
            else:
                put("resurrecting", i, 1.0)
            if i + 1 not in periods:
                put("dormant", i + 1, -1.0)
    return {"data": out, "days": [b.day_string(k) for k in rng.buckets]}


# ---------------------------------------------------------------------------------------------
# Random scenarios
# ---------------------------------------------------------------------------------------------


def iso_z(ts):
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unambiguous_local(naive, tz):
    """A local time that exists and is not repeated (so its meaning does not depend on a fold choice)."""
    z = ZoneInfo(tz)
    a, b = naive.replace(tzinfo=z, fold=0), naive.replace(tzinfo=z, fold=1)
    if a.utcoffset() != b.utcoffset():
        return False
    return a.astimezone(UTC).astimezone(z).replace(tzinfo=None) == naive


def random_instant(r, tz, lo, hi):
    """An instant in [lo, hi): uniform, near a whole local hour, near a local midnight, at the end of a local
    day, or within a few hours of a DST change."""
    z = ZoneInfo(tz)
    span = int((hi - lo).total_seconds())
    changes = [c for c in DST.get(tz, []) if lo <= c < hi]
    kind = r.random()
    uniform = ts = lo + timedelta(seconds=r.randrange(span))
    if kind < 0.2:  # the uniform instant moved to a whole local hour, ± a little
        local = ts.astimezone(z).replace(minute=0, second=0)
        ts = local.astimezone(UTC) + timedelta(seconds=r.choice([0, 0, -1, 1, 59, -60, 1800]))
    elif kind < 0.5:
        d = ts.astimezone(z).date()
        ts = local_midnight(d, tz) + timedelta(seconds=r.choice([0, 0, 1, -1, 30, -30, 3599, -3600, 5400]))
    elif kind < 0.6:
        ts = local_midnight(ts.astimezone(z).date() + timedelta(days=1), tz) - timedelta(seconds=1)  # 23:59:59
    elif kind < 0.75 and changes:
        ts = r.choice(changes) + timedelta(seconds=r.randrange(-4 * 3600, 4 * 3600))
    return ts if lo <= ts < hi else uniform


def make_events(r, tz, lo, hi):
    """Events of 1–8 persons; some persons are two distinct ids joined by an `$identify`."""
    events = []
    for p in range(r.randint(1, 8)):
        main = f"p{p}"
        ids = [main]
        if r.random() < 0.4:
            ids.append(f"p{p}_anon")
        for _ in range(r.randint(0, 40)):
            props = {"plan": "pro"} if r.random() < 0.25 else ({"plan": "free"} if r.random() < 0.2 else {})
            events.append({"event": r.choice(EVENT_NAMES), "distinct_id": r.choice(ids),
                           "ts": random_instant(r, tz, lo, hi), "properties": props})
        if len(ids) == 2:
            events.append({"event": "$identify", "distinct_id": main, "ts": random_instant(r, tz, lo, hi),
                           "properties": {"$anon_distinct_id": ids[1]}})
    r.shuffle(events)  # arrival order differs from time order
    return events


def random_bounds(r, tz, interval, centre):
    """`(date_from, date_to, event window lo, hi)`."""
    if interval == "hour":
        # A range of at most ~2.5 days, usually across the zone's DST change.
        changes = DST.get(tz)
        if changes and r.random() < 0.75:
            pivot = r.choice(changes)
        else:
            day = centre + timedelta(days=r.randint(-10, 10))
            pivot = local_midnight(day, tz) + timedelta(hours=r.randint(0, 23))
        start = pivot - timedelta(minutes=15 * r.randint(0, 120))
        end = pivot + timedelta(minutes=15 * r.randint(0, 120))

        def bound(t):
            """`YYYY-MM-DD` (local midnight), local `YYYY-MM-DDTHH:MM:SS` (when unambiguous), or UTC `...Z`."""
            form = r.choice(["date", "local", "utc"])
            local = t.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
            if form == "date":
                return local.date().isoformat()
            if form == "local" and unambiguous_local(local, tz):
                return local.strftime("%Y-%m-%dT%H:%M:%S")
            return t.strftime("%Y-%m-%dT%H:%M:%SZ")

        while True:
            date_from, date_to = bound(start), bound(end)
            if parse_bound(date_from, tz) <= parse_bound(date_to, tz):
                break
        return date_from, date_to, start - timedelta(hours=30), end + timedelta(hours=30)
    longest = {"day": 20, "week": 35, "month": 70}[interval]
    d_from = centre + timedelta(days=r.randint(-22, 12))
    d_to = d_from + timedelta(days=r.randint(0, longest))
    lo = local_midnight(centre - timedelta(days=20), tz)
    hi = local_midnight(centre + timedelta(days=21), tz)
    return d_from.isoformat(), d_to.isoformat(), lo, hi


def scenario(seed, kind):
    r = random.Random(seed)
    tz = r.choice(TIMEZONES)
    week_start = r.randint(0, 1)
    interval = r.choice(["day", "day", "week", "month", "hour", "hour"])
    centre = r.choice(CENTRES)
    date_from, date_to, lo, hi = random_bounds(r, tz, interval, centre)
    spec = {
        "tz": tz, "week_start": week_start, "interval": interval, "date_from": date_from, "date_to": date_to,
        "event": r.choice([PV, PV, None]), "pro": r.random() < 0.3, "pro_on_series": r.random() < 0.5,
        "interval_count": 1, "criteria": None, "cumulative": False,
        "legacy": r.random() < 0.25,
    }
    if kind == "stickiness":
        if interval in ("day", "hour") and r.random() < 0.5:
            spec["interval_count"] = r.randint(1, 3)
        if r.random() < 0.5:
            spec["criteria"] = (r.choice(["gte", "lte", "exact"]), r.randint(1, 3))
        spec["cumulative"] = r.random() < 0.3
        if spec["interval_count"] > 1 or spec["criteria"] or spec["cumulative"]:
            spec["legacy"] = False  # no legacy keys for these
    events = make_events(r, tz, lo, hi)
    return spec, events


def build_query(kind, spec):
    props = [PRO] if spec["pro"] else []
    on_series = spec["pro_on_series"]
    if spec["legacy"]:
        ent = {"id": spec["event"], "type": "events", "order": 0}
        if props and on_series:
            ent["properties"] = props
        q = {"insight": kind.upper(), "shown_as": kind.capitalize(), "events": [ent],
             "date_from": spec["date_from"], "date_to": spec["date_to"], "interval": spec["interval"]}
        if props and not on_series:
            q["properties"] = props
        return q
    node = {"kind": "EventsNode", "event": spec["event"]}
    if props and on_series:
        node["properties"] = props
    q = {"kind": "StickinessQuery" if kind == "stickiness" else "LifecycleQuery", "series": [node],
         "dateRange": {"date_from": spec["date_from"], "date_to": spec["date_to"]}, "interval": spec["interval"]}
    if props and not on_series:
        q["properties"] = props
    if spec["interval_count"] > 1:
        q["intervalCount"] = spec["interval_count"]
    sticky = {}
    if spec["criteria"]:
        sticky["stickinessCriteria"] = {"operator": spec["criteria"][0], "value": spec["criteria"][1]}
    if spec["cumulative"]:
        sticky["computedAs"] = "cumulative"
    if sticky:
        q["stickinessFilter"] = sticky
    return q


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def setup(db, make_project, spec, events):
    project = make_project(timezone=spec["tz"])
    sql(db, "UPDATE insights.projects SET week_start_day = %s WHERE id = %s", spec["week_start"], project["id"])
    payload = [{"event": e["event"], "distinct_id": e["distinct_id"], "timestamp": iso_z(e["ts"]),
                "properties": e["properties"]} for e in events]
    if payload:
        sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(payload))
    person_of = dict(sql(db, "SELECT distinct_id, person_id FROM insights.person_distinct_ids "
                             "WHERE project_id = %s", project["id"]))
    created_at = dict(sql(db, "SELECT id, created_at FROM insights.persons WHERE project_id = %s", project["id"]))
    # Ingestion's contract: a person is created at its first event of any kind (merges keep the least).
    first = {}
    for e in events:
        p = person_of[e["distinct_id"]]
        first[p] = min(first.get(p, e["ts"]), e["ts"])
    assert {p: created_at[p] for p in first} == first
    return project, person_of, created_at


def run(db, project, fn, query):
    body = sql(db, f"SELECT insights.{fn}(%s, %s::jsonb)", project["id"], json.dumps(query))[0][0]
    assert body["timezone"] == sql(db, "SELECT timezone FROM insights.projects WHERE id = %s", project["id"])[0][0]
    return body["result"]


def describe(spec, query, events):
    lines = [f"spec={spec}", f"query={json.dumps(query)}"]
    for e in sorted(events, key=lambda e: e["ts"]):
        lines.append(f"  {iso_z(e['ts'])} {e['distinct_id']:8} {e['event']:10} {e['properties']}")
    return "\n".join(lines)


@pytest.mark.parametrize("seed", STICKINESS_SEEDS)
def test_stickiness_matches_reference(db, make_project, seed):
    spec, events = scenario(seed, "stickiness")
    project, person_of, _ = setup(db, make_project, spec, events)
    query = build_query("stickiness", spec)
    (item,) = run(db, project, "stickiness_json", query)
    b = Buckets(spec["interval"], spec["tz"], spec["week_start"])
    expected = ref_stickiness(events, person_of, spec, b)
    got = {"data": item["data"], "count": item["count"]}
    assert got == expected, describe(spec, query, events)
    assert item["days"] == list(range(1, len(expected["data"]) + 1))


@pytest.mark.parametrize("seed", LIFECYCLE_SEEDS)
def test_lifecycle_matches_reference(db, make_project, seed):
    spec, events = scenario(seed, "lifecycle")
    project, person_of, created_at = setup(db, make_project, spec, events)
    query = build_query("lifecycle", spec)
    result = run(db, project, "lifecycle_json", query)
    assert [i["status"] for i in result] == STATUSES
    b = Buckets(spec["interval"], spec["tz"], spec["week_start"])
    expected = ref_lifecycle(events, person_of, created_at, spec, b)
    got = {"data": {i["status"]: i["data"] for i in result}, "days": result[0]["days"]}
    assert got == expected, describe(spec, query, events)
