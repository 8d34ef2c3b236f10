"""Property-style tests for paths: random event streams, the engine's answer (through SQL,
`insights.paths_json`) against a brute-force reference written here from docs/insights.md (Paths), not
from core/src/engines/paths.rs.

Each case (a fixed seed) builds a fresh project (UTC, New York or Kolkata) with 1–10 persons (some of
them two distinct ids merged by an `$identify`), 0–30 events each: `$pageview`s with a `$current_url`
from a small pool (with and without trailing slash, rarely none), `$screen`s with a `$screen_name`,
custom events (`signup`, `click`) and `$other`. Most persons follow a common journey with noise and a
fork, so edges are shared and values differ. Gaps between a person's events range from 0 (ties, ordered
by the event uuid, which the test sets) through seconds and minutes to two hours, with 30 minutes ± 1 ms
on purpose, so sessions split; streams run across midnight. One random query per case: date range (the
whole stream or cut at a local midnight), include types (or the legacy `path_type`), step limit,
cleaning rules (the project's with `path_replacements`, and local ones), groupings, exclusions, start
and/or end points drawn from the items that occur, edge limit (default, large, an explicit 50, or
small), weight bounds; legacy filter keys or a `PathsQuery` node.

The reference:

1. events: in the date range (whole days in the project's zone); with include types `$pageview` / `$screen` events if listed, and for `custom_event` every
   event whose name does not start with `$`; without types all events (`$identify` included);
2. item: a pageview's `$current_url` with one trailing `/` removed (`/` stays), a screen's
   `$screen_name`, otherwise the event name; without types an excluded `$pageview` / `$screen` is named
   by its event;
3. cleaning: the project's rules (only with `path_replacements`), then the local ones, each replacing
   every match;
4. groupings: `*` is "anything", unanchored, the first matching pattern becomes the item;
5. exclusion: drop events whose final item is listed;
6. sessions: per person by (time, uuid), a gap ≥ 30 minutes starts a new path; runs of one item
   collapse to the last event of the run;
7. start / end points (one trailing `/` removed; an empty point is no point, as PostHog reads it), step
   limit, `...` for a long start→end part; the end is the first one after the start (the generator never
   gives both points the same item: see the note above SEEDS);
8. edges `"<i>_<item>" → "<i+1>_<item>"`: number of paths, mean milliseconds;
9. selection: weight bounds, order (value desc, source, target bytewise), edge limit (none with both
   points and the default limit), reachability from a `1_` source when no weight bound is set.

Persons (the distinct id → person map) are read from the database after ingestion, so the reference
uses the DB's own merges.
"""

import json
import math
import random
import re
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from conftest import sql

UTC = timezone.utc
PV, SCREEN, CUSTOM = "$pageview", "$screen", "custom_event"
URLS = ["/", "/a", "/a/", "/b/1", "/b/22", "/b/1/", "/c?x=1", "/c/?x=1", "/a//"]
SCREENS = ["Home", "Settings", "/a", "Detail/7", "Detail/7/"]
CUSTOMS = ["signup", "click", "$other"]
TYPE_CHOICES = [[], [], [PV], [SCREEN], [CUSTOM], [PV, SCREEN], [PV, CUSTOM], [SCREEN, CUSTOM],
                [PV, SCREEN, CUSTOM]]
# Cleaning runs after the trailing `/` is removed (`\d+$` can leave one), and `$` in an alias is literal.
LOCAL_RULES = [{"regex": "\\?.*", "alias": ""}, {"regex": "/\\d+", "alias": "/<id>"},
               {"regex": "^Detail/(\\d)", "alias": "D\\1"}, {"regex": "ll", "alias": "L"},
               {"regex": "\\d+$", "alias": ""}, {"regex": "^signup$", "alias": "$signup"}]
TEAM_RULES = [{"regex": "Settings", "alias": "Prefs"}, {"regex": "/c$", "alias": "/see"}]
GROUPINGS = ["/b/*", "*c*", "Set*", "/a", "D*", "*1*", "*t*"]  # overlapping: the first match wins
EXCLUDE_POOL = [PV, PV, SCREEN, SCREEN, "click", "signup", "$identify", "/a", "/b/<id>", "/b/*", "Home", "/", "/c"]
THIRTY_MIN = timedelta(minutes=30)
# Persons start between 20:00 and 23:00 on 2021-05-01, so paths run across midnight (and the 2nd).
BASE = datetime(2021, 5, 1, 20, 0, 0, tzinfo=UTC)
# (date_from, date_to): the whole stream, or a range that cuts it at a (UTC, the project's zone) midnight.
RANGES = [("2021-04-30", "2021-05-10")] * 6 + [("2021-05-01", "2021-05-01"), ("2021-05-02", "2021-05-10"),
                                               ("2021-05-02", "2021-05-02")]

# Both points are never the same item: docs/insights.md reads "the first end after it" (the engine follows that),
# while PostHog's runner looks for the end from the start itself, so it would be a one-item path there.
# 1–24, and seeds whose case hinges on a rule the first ones rarely reach (found by running seeds 1–600 against
# deliberately broken variants of the reference): 66 the project's rules only with `path_replacements`, 87 the
# order of cleaning rules, 98 the first matching grouping wins, 121 groupings match anywhere, 162 reachability
# pruning after a small edge limit, 180 an excluded `$pageview` named by its event.
SEEDS = list(range(1, 25)) + [66, 87, 98, 121, 162, 180]


# ---------------------------------------------------------------------------------------------
# Random event streams
# ---------------------------------------------------------------------------------------------


def random_gap(r):
    k = r.random()
    if k < 0.08:
        return timedelta(0)  # a tie: the uuids decide the order
    if k < 0.55:
        return timedelta(seconds=r.randint(1, 120), milliseconds=r.randint(0, 999))
    if k < 0.88:
        return timedelta(seconds=r.randint(120, 1790))
    if k < 0.94:
        return THIRTY_MIN + timedelta(milliseconds=r.choice([0, 0, 0, -1, 1, -1000]))
    return timedelta(seconds=r.randint(1801, 7200))


def random_event(r):
    k = r.random()
    if k < 0.02:
        return PV, {}  # no `$current_url`: the item is ''
    if k < 0.5:
        return PV, {"$current_url": r.choice(URLS)}
    if k < 0.75:
        return SCREEN, {"$screen_name": r.choice(SCREENS)}
    return r.choice(CUSTOMS), {}


def make_events(r):
    """Events of 1–10 persons; some persons are two distinct ids joined by an `$identify`. Most persons
    follow the case's common journey (with noise, after 0–2 other events), so edges are shared, values
    differ and a small edge limit cuts paths apart. One step of the journey has alternatives: the paths
    part there and meet again after it, so a later edge can outweigh the ones leading to it."""
    journey = [random_event(r) for _ in range(r.randint(4, 10))]
    fork = r.randrange(1, len(journey) - 1)
    alternatives = [random_event(r) for _ in range(r.randint(1, 3))]
    events = []
    for p in range(r.randint(1, 10)):
        ids = [f"p{p}"] + ([f"p{p}_anon"] if r.random() < 0.4 else [])
        n = r.randint(0, 30)
        offset = r.choice([0, 0, 1, 1, 1, 2]) if r.random() < 0.75 else None
        identify_at = r.randint(0, n) if len(ids) == 2 else None
        ts = BASE + timedelta(seconds=r.randint(0, 3 * 3600))
        for i in range(n + (identify_at is not None)):
            if i:
                ts += random_gap(r)
            if i == identify_at:
                name, props, did = "$identify", {"$anon_distinct_id": ids[1]}, ids[0]
            elif offset is not None and 0 <= i - offset < len(journey) and r.random() < 0.8:
                step = i - offset
                if step == fork and r.random() < 0.7:
                    (name, props), did = r.choice(alternatives), r.choice(ids)
                else:
                    (name, props), did = journey[step], r.choice(ids)
            else:
                (name, props), did = random_event(r), r.choice(ids)
            events.append({"event": name, "distinct_id": did, "ts": ts, "properties": props,
                           "uuid": str(uuid.UUID(int=r.getrandbits(128), version=4))})
    r.shuffle(events)  # arrival order differs from time order
    return events


# ---------------------------------------------------------------------------------------------
# Reference
# ---------------------------------------------------------------------------------------------


def strip_slash(s):
    """One trailing `/` removed (`(.)/$` → `\\1`): `/` stays `/`, `/a//` becomes `/a/`."""
    return s[:-1] if len(s) > 1 and s.endswith("/") else s


def included(e, spec):
    """The event is of an included type and in the date range (whole days in the project's zone)."""
    day = e["ts"].astimezone(ZoneInfo(spec["tz"])).date().isoformat()
    if not spec["date_from"] <= day <= spec["date_to"]:
        return False
    types = spec["types"]
    if not types:
        return True
    name = e["event"]
    return ((PV in types and name == PV) or (SCREEN in types and name == SCREEN)
            or (CUSTOM in types and not name.startswith("$")))


def item_of(e, spec):
    """The final item of an event (after naming, cleaning and grouping)."""
    name, types, excludes = e["event"], spec["types"], spec["exclude"]
    if name == PV and (types or PV not in excludes):
        item = strip_slash(e["properties"].get("$current_url", ""))
    elif name == SCREEN and (types or SCREEN not in excludes):
        item = e["properties"].get("$screen_name", "")
    else:
        item = name
    rules = (spec["team_rules"] if spec["path_replacements"] else []) + spec["local_rules"]
    for rule in rules:
        item = re.sub(rule["regex"], rule["alias"], item)
    for pattern in spec["groupings"]:
        if re.search(re.escape(pattern).replace("\\*", ".*"), item):
            return pattern
    return item


def sessions(events, person_of, spec):
    """The collapsed paths: lists of (item, time) per person session."""
    per_person = {}
    for e in events:
        if not included(e, spec):
            continue
        item = item_of(e, spec)
        if item in spec["exclude"]:
            continue
        per_person.setdefault(person_of[e["distinct_id"]], []).append((e["ts"], e["uuid"], item))
    paths = []
    for rows in per_person.values():
        rows.sort()
        current, prev = [], None
        for ts, _, item in rows:
            if prev is not None and ts - prev >= THIRTY_MIN:
                paths.append(current)
                current = []
            if current and current[-1][0] == item:
                current[-1] = (item, ts)  # a repeat: its last event counts
            else:
                current.append((item, ts))
            prev = ts
        if current:
            paths.append(current)
    return paths


def cut(path, spec):
    """Start / end points and the step limit; None when the path is dropped."""
    L = spec["step_limit"] or 5
    names = [i for i, _ in path]
    start = strip_slash(spec["start"]) if spec["start"] else None  # '' is no point (PostHog's truthiness)
    end = strip_slash(spec["end"]) if spec["end"] else None
    if start is not None and end is not None:
        if start not in names:
            return None
        i = names.index(start)
        rest = names[i + 1:]
        if end not in rest:
            return None
        j = i + 1 + rest.index(end)
        part = path[i:j + 1]
        if len(part) > L:
            h = L // 2
            part = part[:h] + [("...", part[h][1])] + part[len(part) - h:]
        return part
    if start is not None:
        if start not in names:
            return None
        i = names.index(start)
        return path[i:i + L]
    if end is not None:
        if end not in names:
            return None
        j = names.index(end)
        return path[max(0, j - L + 1):j + 1]
    return path[:L]


def ref_paths(events, person_of, spec):
    acc = {}  # (source, target) → [count, total ms]
    for path in sessions(events, person_of, spec):
        part = cut(path, spec)
        if part is None:
            continue
        for k in range(len(part) - 1):
            (a, ta), (b, tb) = part[k], part[k + 1]
            key = (f"{k + 1}_{a}", f"{k + 2}_{b}")
            slot = acc.setdefault(key, [0, 0.0])
            slot[0] += 1
            slot[1] += (tb - ta) / timedelta(milliseconds=1)
    rows = [(s, t, n, total / n) for (s, t), (n, total) in acc.items()]
    lo, hi = spec["min_weight"], spec["max_weight"]
    rows = [x for x in rows if (lo is None or x[2] >= lo) and (hi is None or x[2] <= hi)]
    rows.sort(key=lambda x: (-x[2], x[0].encode(), x[1].encode()))
    both = bool(spec["start"]) and bool(spec["end"])
    limit = spec["edge_limit"]
    if both and limit in (None, 50):
        limit = None
    elif limit is None:
        limit = 50
    if limit is not None:
        rows = rows[:limit]
    if lo is None and hi is None:
        reached, kept = set(), []
        for x in sorted(rows, key=lambda x: int(x[0].split("_", 1)[0])):  # sources in step order
            if x[0].startswith("1_") or x[0] in reached:
                kept.append(x)
                reached.add(x[1])
        keep = set(kept)
        rows = [x for x in rows if x in keep]
    return [{"source": s, "target": t, "value": n, "average_conversion_time": avg} for s, t, n, avg in rows]


# ---------------------------------------------------------------------------------------------
# Random queries
# ---------------------------------------------------------------------------------------------


def scenario(seed):
    r = random.Random(seed)
    events = make_events(r)
    spec = {
        "types": list(r.choice(TYPE_CHOICES)),
        "step_limit": r.choice([None, 2, 3, 4, 5, 6, 6]),
        "local_rules": r.sample(LOCAL_RULES, r.randint(0, 3)) if r.random() < 0.6 else [],
        "team_rules": r.sample(TEAM_RULES, r.randint(1, 2)) if r.random() < 0.4 else [],
        "path_replacements": r.random() < 0.5,
        "groupings": r.sample(GROUPINGS, r.randint(1, 3)) if r.random() < 0.4 else [],
        "exclude": list(dict.fromkeys(r.sample(EXCLUDE_POOL, r.choice([1, 1, 2])))) if r.random() < 0.3 else [],
        "start": None, "end": None, "edge_limit": None, "min_weight": None, "max_weight": None,
        "node": r.random() < 0.3,
        "tz": r.choice(["UTC", "UTC", "America/New_York", "Asia/Kolkata"]),
    }
    spec["date_from"], spec["date_to"] = r.choice(RANGES)
    # The legacy single `path_type` stands for `include_event_types: [path_type]`.
    spec["path_type"] = not spec["node"] and len(spec["types"]) == 1 and r.random() < 0.4
    # Points from the items that occur (sometimes with a trailing `/`, sometimes one that never occurs).
    items = sorted(item_of(e, spec) for e in events if included(e, spec))
    items = [i for i in items if i not in spec["exclude"]]  # one entry per event: common items come up more

    def point():
        if not items or r.random() < 0.05:
            return "/nowhere"
        p = r.choice(items)
        return p + "/" if r.random() < 0.2 else p

    k = r.random()
    if k < 0.25:
        spec["start"] = point()
    elif k < 0.4:
        spec["end"] = point()
    elif k < 0.75:
        # Two different points (the same one twice would hinge on what "after it" means), and mostly a
        # small step limit so that long start → end parts are cut with `...`.
        spec["start"] = point()
        candidates = [i for i in items if strip_slash(i) != strip_slash(spec["start"])]
        spec["end"] = r.choice(candidates) if candidates else "/nowhere2"
        spec["step_limit"] = r.choice([None, 2, 3, 3, 4, 4, 5])
    k = r.random()
    spec["edge_limit"] = None if k < 0.2 else 1000 if k < 0.55 else 50 if k < 0.65 else r.randint(2, 5)
    if r.random() < 0.25:
        spec["min_weight"] = r.choice([1, 2, 2, 3])
    if r.random() < 0.2:
        spec["max_weight"] = r.randint(spec["min_weight"] or 1, 4)
    return spec, events


def build_query(spec):
    keys = [("types", "include_event_types", "includeEventTypes"), ("step_limit", "step_limit", "stepLimit"),
            ("groupings", "path_groupings", "pathGroupings"), ("exclude", "exclude_events", "excludeEvents"),
            ("local_rules", "local_path_cleaning_filters", "localPathCleaningFilters"),
            ("start", "start_point", "startPoint"), ("end", "end_point", "endPoint"),
            ("edge_limit", "edge_limit", "edgeLimit"), ("min_weight", "min_edge_weight", "minEdgeWeight"),
            ("max_weight", "max_edge_weight", "maxEdgeWeight")]
    node = spec["node"]
    f = {(camel if node else legacy): spec[k] for k, legacy, camel in keys if spec[k] not in (None, [])}
    if spec["path_type"]:
        del f["include_event_types"]
        f["path_type"] = spec["types"][0]
    if spec["path_replacements"]:
        f["pathReplacements" if node else "path_replacements"] = True
    if node:
        return {"kind": "PathsQuery", "dateRange": {"date_from": spec["date_from"], "date_to": spec["date_to"]},
                "pathsFilter": f}
    return {"insight": "PATHS", "date_from": spec["date_from"], "date_to": spec["date_to"], **f}


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def iso_ms(ts):
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def setup(db, make_project, spec, events):
    project = make_project(timezone=spec["tz"])
    if spec["team_rules"]:
        sql(db, "UPDATE insights.projects SET path_cleaning_filters = %s::jsonb WHERE id = %s",
            json.dumps(spec["team_rules"]), project["id"])
    payload = [{"event": e["event"], "distinct_id": e["distinct_id"], "timestamp": iso_ms(e["ts"]),
                "uuid": e["uuid"], "properties": e["properties"]} for e in events]
    if payload:
        sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(payload))
    person_of = dict(sql(db, "SELECT distinct_id, person_id FROM insights.person_distinct_ids "
                             "WHERE project_id = %s", project["id"]))
    assert {e["distinct_id"] for e in events} <= set(person_of)  # `$anon_distinct_id`s too
    return project, person_of


def describe(spec, query, events, person_of, expected, got):
    lines = [f"spec={spec}", f"query={json.dumps(query)}", "events (person, time, uuid):"]
    for e in sorted(events, key=lambda e: (person_of[e["distinct_id"]], e["ts"], e["uuid"])):
        lines.append(f"  {person_of[e['distinct_id']]:>6} {iso_ms(e['ts'])} {e['uuid'][:8]} {e['distinct_id']:8} "
                     f"{e['event']:10} {e['properties']}")
    lines.append("expected:")
    lines += [f"  {x}" for x in expected]
    lines.append("got:")
    lines += [f"  {x}" for x in got]
    return "\n".join(lines)


def same(got, expected):
    if len(got) != len(expected):
        return False
    for g, x in zip(got, expected):
        if (g["source"], g["target"], g["value"]) != (x["source"], x["target"], x["value"]):
            return False
        if not math.isclose(g["average_conversion_time"], x["average_conversion_time"], rel_tol=1e-6, abs_tol=1e-6):
            return False
    return True


@pytest.mark.parametrize("seed", SEEDS)
def test_paths_match_reference(db, make_project, seed):
    spec, events = scenario(seed)
    project, person_of = setup(db, make_project, spec, events)
    query = build_query(spec)
    body = sql(db, "SELECT insights.paths_json(%s, %s::jsonb)", project["id"], json.dumps(query))[0][0]
    assert body["timezone"] == spec["tz"]
    got = body["result"]
    expected = ref_paths(events, person_of, spec)
    assert same(got, expected), describe(spec, query, events, person_of, expected, got)
