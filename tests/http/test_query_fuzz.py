"""Fuzzing the query paths (parse → compile → execute) of funnels, stickiness, lifecycle and
paths with random and hostile input.

Seeded (`PGI_FUZZ_SEED`, default below), so every case id names one fixed input. Cases:
* `filters-NNN`: random property filters (every type and operator plus garbage, hostile keys and
  values, nested AND/OR groups up to depth 6, wrong shapes) inside a small funnel, via SQL;
* `funnel-NNN`: random funnels (1–25 steps, events/actions/all events, windows, dates,
  exclusions, breakdowns, attribution, order, viz, aggregation; legacy and FunnelsQuery forms,
  JSON-as-string encodings), via SQL `insights.funnel_json` / `insights.funnel`;
* `actors-NNN`: random funnels with a random step and breakdown, via `insights.funnel_actors`;
* `http-NNN`: a subset through nginx → PostgREST (`/insights/funnel/` and `/persons/funnel/`,
  GET with legacy query parameters and POST with JSON bodies, raw bodies and query strings,
  hostile or foreign project ids);
* `stickiness-NNN` / `lifecycle-NNN`: random stickiness and lifecycle queries, legacy filters
  (`insight` and/or `shown_as`) and StickinessQuery/LifecycleQuery nodes: series of events,
  actions, all events and hostile names with random maths (unique_group, hogql, property maths…),
  intervals, intervalCount, dates, compare/compare_to, stickinessCriteria, computedAs,
  toggledLifecycles, filter_test_accounts, aggregation_group_type_index and the random property
  filters above, via SQL `insights.<kind>_json`, the typed `insights.<kind>` and `trend_json`;
* `paths-NNN`: random paths queries (legacy and PathsQuery): include_event_types (also hogql with
  random and hostile paths_hogql_expression), start/end points, step_limit, groupings and
  exclusions with regex metacharacters, local_path_cleaning_filters with valid, hostile and
  invalid regexes and aliases with `\\1` / `$1` (their growth is capped: BUG_PATHS_GROWTH), team
  rules through path_replacements, edge limits and weights (also max < min), funnel paths with a
  random funnel and funnel_step (also garbage), via `insights.paths_json` / `insights.paths`;
* `periods-actors-NNN`: `insights.stickiness_actors` (random interval counts, entity_id /
  entity_type), `insights.lifecycle_actors` (random target dates and statuses) and
  `insights.paths_actors` (random start / end / drop-off keys);
* `periods-http-NNN`: a subset through nginx → PostgREST: `/insights/trend/` and
  `/insights/path/` (GET with JSON-encoded parameters, POST), `POST /query/` with random refresh
  modes, `persons/stickiness/`, `persons/lifecycle/`, `persons/path/` (GET and POST, random keys,
  dates, statuses, limit/offset), raw bodies and query strings, foreign project ids.

The fuzz project also holds ~10 weeks of sessions (pageviews with hostile URLs, $screen events
with hostile names, custom events) and team path cleaning rules with group references.

For every case: SQL errors must be client errors (SQLSTATE class 22 or 42, never XX000 or
anything else); HTTP answers 200, or 400/404 with PostHog's error body; every call returns within
10 s (injected `pg_sleep` guard); the planted canary table `public.canary_<random>` still holds its
row; and neither the canary's value nor a secret planted in another project ever appears in an
answer. Injection payloads name the real canary table (`__CANARY__` is substituted at run time).

Known product bugs are xfail(strict=True) on the exact case (KNOWN_BUGS) and as minimal
cases (`regression-*`: OPEN_BUGS are xfail(strict=True), REGRESSIONS are fixed bugs).
"""

import json
import os
import random
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import requests
from psycopg.types.json import Jsonb

from conftest import BASE_URL, sql

DEFAULT_SEED = 20250611
SEED = int(os.environ.get("PGI_FUZZ_SEED", DEFAULT_SEED))
N_FILTER_CASES = 200
N_FUNNEL_CASES = 300
N_ACTOR_CASES = 60
N_HTTP_CASES = 120
N_STICKINESS_CASES = 150
N_LIFECYCLE_CASES = 120
N_PATHS_CASES = 200
N_PERIODS_ACTOR_CASES = 80
N_PERIODS_HTTP_CASES = 120
CALL_LIMIT_S = 10.0
CANARY = "__CANARY__"  # replaced by the real canary table name at run time
ACTION_ID = "__ACTION_ID__"  # replaced by the id of an action of the fuzz project
COHORT_ID = "__COHORT_ID__"  # … a property cohort of the fuzz project
STATIC_COHORT_ID = "__STATIC_COHORT_ID__"  # … a static cohort of the fuzz project
ACTION_ID_STR = "__ACTION_ID_STR__"  # … the action id as a string
OTHER_PROJECT = "__OTHER_PROJECT__"  # … the id of another project (the key has no access to it)
OTHER_ACTION_ID = "__OTHER_ACTION__"  # … an action of that other project (named after its secret)
OTHER_COHORT_ID = "__OTHER_COHORT__"  # … a cohort of that other project (named after its secret)

# ------------------------------------------------------------------------------------------------
# Hostile material

INJECTIONS = [
    f"'; DROP TABLE public.{CANARY}; --",
    f"$$; DROP TABLE public.{CANARY}; --",
    f"$x$; DROP TABLE public.{CANARY}; $x$",
    '") OR 1=1 --',
    "\\'; SELECT pg_sleep(5); --",
    "'; SELECT pg_sleep(5); --",
    "1); SELECT pg_sleep(5); --",
    f"' UNION SELECT x::text FROM public.{CANARY} --",
    f"'||(SELECT x::text FROM public.{CANARY})||'",
    "' OR '1'='1",
    "1 OR 1=1",
    "\"; DELETE FROM insights.events WHERE false; --",
    f"E'\\''; DROP TABLE public.{CANARY}; --",
    "*/ SELECT 1; /*",
    ":1; $1; %s; %(x)s; ?",
    "properties.$browser == 'Chrome'",
    "toString(1); SELECT 1",
]

WEIRD_STRINGS = [
    "", " ", "'", '"', ";", "--", "$$", "$", "\\", "\\\\", "%", "_", "%_%", "a%b_c", "\\%",
    "null", "NULL", "true", "false", "NaN", "Infinity", "-Infinity", "1e308", "-0", "0x10",
    "42", "3.14", " 7 ", "1e400", "{}", "[]", "[1,2]", '{"a":1}', '["$pageview"]',
    "ünïcödé ✓ 中文 🎉", "\u202eevil", "\t\n\r", "\u00a0", "\x01\x1f\x7f", "e\u0301",
    "a" * 5000, "'" * 300, "%" * 200, "(" * 100,
    "(", "[a-", "(?i)(", "a{99999}", "(a+)+$", "\\1", "[[:alpha:]]", "^.*$", ".*",
    "-7d", "-1mStart", "dStart", "all", "2024-01-01", "2021-13-45", "9999-12-31", "0001-01-01",
    "1.2.3", "v2.0", "^1.2.3", "~1.2", "1.2.*",
    "Chrome", "pro", "/x", "$pageview", "signup", "we'ird", "sem;colon", 'quo"te',
]

STRINGS = INJECTIONS + WEIRD_STRINGS

DATA_KEYS = [
    "edge", "$browser", "amount", "is_active", "nested", "tags", "ünï", "we'ird", "sem;colon",
    "$dollar", 'quo"te', "version", "created", "$current_url", "$session_id", "empty",
    "nullprop", "plan",
    "email", "age", "$elements_chain", "name", "industry",
]

VALID_OPERATORS = [
    "exact", "is_not", "icontains", "not_icontains", "regex", "not_regex", "gt", "gte", "lt",
    "lte", "min", "max", "is_date_exact", "is_date_before", "is_date_after", "between",
    "not_between", "is_set", "is_not_set", "in", "not_in", "is_cleaned_path_exact", "semver_eq",
    "semver_neq", "semver_gt", "semver_gte", "semver_lt", "semver_lte", "semver_tilde",
    "semver_caret", "semver_wildcard",
]
GARBAGE_OPERATORS = ["EXACT", "Exact", "equals", "drop", "", None, 7, ["exact"], {"op": 1},
                     "exact; --", "gt'", "is_set OR 1=1"]

TYPE_KEYS = {
    "element": ["tag_name", "selector", "href", "text"],
    "session": ["$session_duration", "$start_timestamp", "$end_timestamp", "$pageview_count",
                "$entry_current_url", "$end_current_url", "$session_id"],
    "event_metadata": ["distinct_id", "event", "timestamp", "uuid", "person_id", "$session_id",
                       "elements_chain", "$group_0", "$group_1", "$group_4"],
}
BAD_TYPE_KEYS = ["attr_class", "nth", "$channel_type", "$group_5", "properties", "$browser"]

HOSTILE_CHAINS = [
    'a.btn.primary:attr__href="/x"href="/x"nth-child="1"nth-of-type="1"'
    'text="Click \'me\'";div.container:nth-child="2"nth-of-type="1"',
    'a.btn:href="/a;b:c"text="say \\"hi\\"; now"nth-child="1";div:nth-child="2"',
    'a:text="unterminated;div.x:nth-child="1"', '"', ';;;', ':::', '.*+?(){}[]|^$\\',
    "a:text=\"'; DROP TABLE insights.events; --\"", 'span:text="\u00e9\u2603\U0001f600"',
    'div:x="' + "y" * 20000 + '"', 'a:nth-child="99999999999999999999"nth-of-type="-1"', None,
]
SELECTORS = ["a", "*", ".btn", "#main", "div > a.btn", "a[href]", "a[href='/x']",
             'a[href="/x"]', "div a:nth-child(1)", "a:nth-of-type(99999999999)", "[", ">>",
             "a[href='", ".", "#", ":nth-child(-1)", "div > > a", "a" * 3000, "a.b.c.d.e.f.g"]

EVENT_NAMES = ["$pageview", "signup", "purchase", "$autocapture", "we'ird\"ev;ent --",
               "ünïcödé 🎉 事件", "$$dollar$$", "back\\slash", "100%_off", "$identify"]

DATE_STRINGS = [
    "-7d", "-1d", "-24h", "-1w", "-1m", "-1q", "-1y", "-30M", "-90s", "dStart", "-1dStart",
    "wStart", "mStart", "-1mStart", "qStart", "yStart", "hStart", "-1dEnd", "-1mEnd", "-1yEnd",
    "all", "-3650d", "-100y", "2024-01-01", "2021-5-1", "2021-05-01T13:45:00",
    "2021-05-01 13:45:00", "2021-05-01T13:45:00Z", "2021-05-01T13:45:00+02:00", "0001-01-01",
    "1000-01-01", "9999-12-31", "2999-01-01",
]
BAD_DATE_STRINGS = [
    "7d", "-0d", "d", "-", "--7d", "-7x", "-7dStartEnd", "-999999999999d",
    "-99999999999999999999h", "-100000y", "-2147483648d", "2021-13-45", "294277-01-01",
    "-4713-01-01", "2024-02-30", "today", "yesterday", "now", "2024", "1700000000", "",
]

WINDOW_UNITS = ["second", "minute", "hour", "day", "week", "month", "Days", "HOUR", "weeks",
                "MONTHS", "year", "quarter", "fortnight", "", "d", "s", None, 5, ["day"]]

# Stickiness, lifecycle and paths

INTERVALS = ["day", "day", "hour", "week", "month", "minute"]
BAD_INTERVALS = ["year", "quarter", "", "Day", "days", "second", "hour; --", 5, ["day"], {"i": 1}]
COMPARE_TO = ["-1d", "-1w", "-2w", "-1m", "-1y", "-7d", "-24h", "-1q", "-1h", "-3650d"]
LIFECYCLE_STATUSES = ["new", "returning", "resurrecting", "dormant"]
PERIODS_MATHS = ["dau", "total", "weekly_active", "monthly_active", "unique_group", None, "sum",
                 "min_count_per_actor", "hogql", "unique_session", "first_time_for_user", "avg"]

# HogQL path items (`paths_hogql_expression`): the safe subset, its edges, and what it rejects.
HOGQL_EXPRESSIONS = [
    "event", "properties.$current_url", "properties.$screen_name", "distinct_id", "person_id",
    "concat(event, ' → ', properties.$browser)", "lower(properties.$current_url)",
    "path(properties.$current_url)", "domain(properties.$current_url)", "properties.edge",
    "coalesce(properties.nope, event)", "if(event = '$pageview', properties.$current_url, event)",
    "replaceAll(event, '$', '')", "substring(event, 1, 3)", "properties['we''ird']",
    "properties.nested.a.b", "toString(toDate(timestamp))", "toString(timestamp)",
    "multiIf(event = 'signup', 'S', event = 'purchase', 'P', 'other')", "$group_0",
    "person.properties.email", "match(event, '^\\\\$')", "toString(length(properties.edge))",
    "concat(properties.edge, properties.edge, properties.edge)", "'constant'", "null",
    "toString(1 / 0)", "toString(properties.amount * 1e300)",
    "toString(dateDiff('day', timestamp, now()))",
    "group_0.properties.name", "properties.`sem;colon`", "toString(toInt(properties.amount))",
    "match(event, '(')", "match(properties.$current_url, '(a+)+$')", "startsWith(event, '$')",
    "toString(toStartOfWeek(timestamp))", "`event`", "\"distinct_id\"",
]
BAD_HOGQL_EXPRESSIONS = [
    "", "count()", "sum(properties.amount)", f"event; DROP TABLE public.{CANARY}",
    f"(SELECT x FROM public.{CANARY})", "event -- comment", "/* x */ event", "event::text",
    "arrayJoin([1, 2])", "'unterminated", "(((((", "a" * 4001, "(" * 70 + "event" + ")" * 70,
    "toString(" * 70 + "event" + ")" * 70, "x -> x", "event || 'x'", "pg_sleep(5)",
    "sleep(5)", "concat()", "if(event)", "properties.$current_url ? 'a' : 'b'",
    "event FROM insights.events", "toString(timestamp) AT TIME ZONE 'UTC'", "1 +", "properties.",
    "properties[1]", "e.properties", "current_setting('x')", "CASE WHEN 1 THEN 2 END",
    "event BETWEEN 'a' AND 'b'", "INTERVAL 1 DAY", "toString(10000000000000000000000)",
]

# Cleaning rules `{regex, alias}` (RE2 syntax): valid, hostile and invalid regexes; aliases with
# group references in both spellings.
PATH_REGEXES = [
    "\\?(.*)", "/\\d+(/|\\?)?", "^https?://[^/]+", "(.)", "(?i)PAGE", "[0-9]+", "x\\.test", "^",
    "$", "", ".*", "(a|b)*", "(?P<name>x)", "\\b", "\\p{L}+", "[[:alpha:]]", "(?s).", "é", "🎉",
    "a{0,100}", "(?:x)+", "/$", "^/", "\\$", "'", ";", "--", "\\\\", "[$]", "(.*)(.*)",
    "((((((((((x))))))))))", "\\w+", "[^/]+$", "(?m)^a", "\\Q(\\E",
]
BAD_PATH_REGEXES = [
    "(", "[a-", "a{99999}", "(?<=x)", "(?!x)", "\\x{110000}", "(?P<1>x)", "*", "a**", "\\",
    "(?z)", "\\1", "(?P<n>a)(?P<n>b)", "[z-a]", "\\p{Nope}", "(" * 300 + ")" * 300,
    "\\w{1000}{1000}", "(?:a{1000}){1000}", "[[:nope:]]", ")", "a{2,1}",
]
PATH_ALIASES = [
    "", "/<id>", "?<param>", "\\1", "$1", "${1}", "\\0", "\\\\1", "$$", "$name", "${name}", "\\9",
    "\\", "$", "x\\1y$1z${1}", "\\1\\1", "<\\2>", "${0}", "$0", "\\a", "🎉", "'", "\\'", "%s",
]

PATH_GROUPINGS = [
    "/about*", "*", "**", "https://x.test/*", "*test*", "(.*)", "[a-", "\\*", "^$", "a{99999}",
    "/bar/*/foo", "$pageview", "*?*", "(?i)x", "%", "_", "\\", "*" * 300, "*.*", "$*", "|", "{",
    "/x%_", "/(a+)+$", "\\1", "$1", "Home*", "*🎉*",
]
PATH_POINTS = [
    "/", "https://x.test", "https://x.test/", "https://x.test/a?q='1'", "$pageview", "signup",
    "purchase", "/x%_", "...", "Home", "Settings", "(", "*", "/(a+)+$", "/[a-", "",
]
# Path items the fuzz data produces, to build node keys ("<step>_<item>") of paths actors.
PATH_ITEMS = PATH_POINTS + ["$autocapture", "$identify", "$screen", "Home*", "https://x.test/*",
                           "/about*"]


# ------------------------------------------------------------------------------------------------
# Random generators (pure functions of the Random they get: a seed names a fixed set of cases)


class Gen:
    """Random inputs. Every choice is valid-looking with probability 1 − `bad` and garbage
    otherwise; the rate varies per case, so many cases get through parsing to compile and run."""

    def __init__(self, rng, small=False):
        self.r = rng
        self.small = small  # keep strings short (GET query strings must fit nginx's header buffers)
        self.bad = 0.0
        self.n = 2  # step count of the funnel being generated

    def new_case(self):
        self.bad = self.pick([0.0, 0.0, 0.01, 0.03, 0.03, 0.08, 0.2])

    def chance(self, p):
        return self.r.random() < p

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def vg(self, valid, garbage):
        """A valid choice, or (rate `bad`) a garbage one; callables are called."""
        v = self.pick(garbage) if self.chance(self.bad) else self.pick(valid)
        return v() if callable(v) else v

    def string(self):
        s = self.pick(STRINGS)
        if self.chance(0.15):
            s = self.pick(STRINGS) + self.pick(STRINGS)
        if self.small and len(s) > 200:
            s = s[:200]
        return s

    def number(self):
        if self.chance(0.01):  # beyond float64: valid JSON, and valid jsonb
            return self.pick([10**400, -(10**400)])
        return self.pick([0, 1, -1, 5, 3.14, -2.5, 1e308, -1e308, 5e-324, 1e-300, 2**63,
                          -(2**63) - 1, 10**30, 123456789012345678901234567890, 1.0, 0.1, 42,
                          1700000000, 1700000000000, 20, 28])

    def scalar(self):
        roll = self.r.random()
        if roll < 0.55:
            return self.string()
        if roll < 0.85:
            return self.number()
        if roll < 0.95:
            return self.pick([True, False])
        return None

    def value(self, depth=0):
        roll = self.r.random()
        if roll < 0.75 or depth > 2:
            return self.scalar()
        if roll < 0.95:
            return [self.scalar() for _ in range(self.r.randrange(0, 5))]
        if self.chance(0.08):  # deeply nested, still well within jsonb's limits
            deep = self.scalar()
            for _ in range(self.pick([100, 127, 128, 200, 500])):
                deep = [deep]
            return deep
        return self.vg([lambda: [self.value(depth + 1)]],
                       [lambda: {self.string()[:50]: self.value(depth + 1)}])

    def key(self, ptype=None):
        if isinstance(ptype, str) and ptype in TYPE_KEYS:
            return self.vg(TYPE_KEYS[ptype], BAD_TYPE_KEYS + [self.string])
        return self.vg([lambda: self.pick(DATA_KEYS), self.string],
                       [None, 5, ["$browser"], {"k": 1}, True, ""])

    def operator(self):
        return self.vg(VALID_OPERATORS, GARBAGE_OPERATORS)

    def filter_value(self, op, ptype, key):
        if ptype in ("cohort", "static-cohort", "precalculated-cohort"):
            return self.vg([COHORT_ID, COHORT_ID, STATIC_COHORT_ID],
                           [999999999, 0, -1, 2**63 - 1, 2**63, 10**30, "abc", None, [1, 2],
                            self.string(),
                            1.5, "1"])
        if ptype == "element" and key == "selector" and self.chance(0.8):
            return self.pick(SELECTORS)
        if op in ("between", "not_between") and self.chance(0.8):
            a, b = self.number(), self.number()
            return self.vg([[min(a, b), max(a, b)], [0, 100], [-1e308, 1e308]],
                           [[a, b], [a], [a, b, a], [str(a), "x"], [None, b], "1,2", a])
        if op in ("in", "not_in") and self.chance(0.8):
            return [self.scalar() for _ in range(self.r.randrange(0, 4))]
        if isinstance(op, str) and op.startswith("is_date") and self.chance(0.8):
            return self.pick(DATE_STRINGS + BAD_DATE_STRINGS)
        if isinstance(op, str) and op.startswith("semver") and self.chance(0.8):
            return self.pick(["1.2.3", "v1", "0.0.1", "^1.2.3", "~1.2", "1.*", "1.2.*",
                              "999999999999999999999.1", "x.y.z", "1..2", "", "99999999999999.1"])
        if op in ("regex", "not_regex") and self.chance(0.8):
            return self.pick(["^Chr", "(", "[a-", "a{99999}", "(a+)+$", "(?i)chrome", "\\",
                              "\\d+", ".*", "[[:alpha:]]", "(?<=x)", "a|", "*", "\\x{110000}",
                              "((((((((((((((((((((x))))))))))))))))))))",
                              "(.*){1,200}(.*){1,200}z"])
        return self.value()

    def ptype(self):
        return self.vg(["event", "event", "person", "person", "cohort", "element", "group",
                        "session", "event_metadata", "static-cohort", "precalculated-cohort"],
                       ["hogql", "behavioral", "data_warehouse", "recording", "feature",
                        "EVENT", "unknown", "", None, 5, ["event"]])

    def leaf(self):
        ptype = self.ptype()
        key = self.key(ptype)
        op = self.operator()
        f = {"key": key, "value": self.filter_value(op, ptype, key), "operator": op,
             "type": ptype}
        if ptype in ("cohort", "static-cohort", "precalculated-cohort"):
            f["key"] = "id"
            f["operator"] = self.vg(["in", "not_in", "exact", "is_not"], [op])
        for field in ("key", "value", "operator", "type"):
            if self.chance(self.bad / 2 + (0.1 if field == "operator" else 0.02)):
                del f[field]
        if ptype == "group" or self.chance(self.bad):
            f["group_type_index"] = self.vg([0, 0, 1, 4], [5, -1, 99, 2**40, "0", "x", None])
        if self.chance(0.05 + self.bad):
            f["negation"] = self.vg([True, False], ["yes", 1, None])
        if self.chance(self.bad):
            f[self.string()[:40]] = self.value()
        return f

    def filters(self, depth=0, max_depth=6):
        roll = self.r.random()
        if depth < max_depth and roll < 0.35:
            group = {"type": self.vg(["AND", "OR", "and", "Or"],
                                     ["XOR", "", None, 5, "AND; --", ["AND"]]),
                     "values": [self.filters(depth + 1, max_depth)
                                for _ in range(self.r.randrange(0, 4))]}
            if self.chance(self.bad):
                group["values"] = self.pick(["notalist", 5, {"a": 1}, None])
            if self.chance(0.05):
                del group["type"]
            return group
        if not self.chance(self.bad):
            return self.leaf()
        # wrong shapes
        return self.pick([self.string, self.number, lambda: None, list, dict,
                          lambda: [self.string()], lambda: [[self.leaf()]],
                          lambda: {"values": self.leaf()}, lambda: json.dumps([self.leaf()]),
                          lambda: True])()

    def properties(self, max_depth=6):
        roll = self.r.random()
        if roll < 0.4:
            return [self.filters(1, max_depth) for _ in range(self.r.randrange(0, 4))]
        if roll < 0.85:
            return self.filters(0, max_depth)
        if roll < 0.95:  # JSON as a string, as GET query strings carry it
            return json.dumps(self.filters(0, max_depth))
        return self.vg([None, "", "[]", [None]], ["{", 5, {"type": "OR"}, True])

    # --- funnels --------------------------------------------------------------------------------

    def event_name(self):
        return self.vg([lambda: self.pick(EVENT_NAMES), lambda: self.pick(EVENT_NAMES),
                        self.string, lambda: None],
                       [5, ["$pageview"], {"e": 1}, True])

    def action_id(self):
        return self.vg([ACTION_ID, ACTION_ID, ACTION_ID, ACTION_ID_STR],
                       [999999999, 0, -1, 2**63 - 1, 2**63, 10**30, "abc", None, 1.5, [1],
                        self.string])

    def math(self):
        return self.vg(["first_time_for_user", "first_time_for_user_with_filters", "dau",
                        "total", "weekly_active", None],
                       ["sum", "garbage", "", 5, "hogql"])

    def legacy_entity(self, order):
        if self.chance(0.8):
            e = {"id": self.event_name(), "type": "events", "order": order}
        else:
            e = {"id": self.action_id(), "type": "actions", "order": order}
        if self.chance(0.25):
            e["properties"] = self.properties(max_depth=3)
        if self.chance(0.1):
            e["math"] = self.math()
        if self.chance(0.1):
            e["custom_name"] = self.string()
        if self.chance(self.bad):
            e["order"] = self.pick([None, -1, "x", 2**63, 1.5])
        if self.chance(0.05):
            e["optional_in_funnel"] = self.vg([True, False], ["yes"])
        if self.chance(self.bad):
            del e["type"]
        return e

    def node_entity(self):
        if self.chance(0.8):
            e = {"kind": "EventsNode", "event": self.event_name()}
            if self.chance(0.3):
                e["name"] = self.string()
        else:
            e = {"kind": "ActionsNode", "id": self.action_id()}
        if self.chance(self.bad):
            e["kind"] = self.pick(["DataWarehouseNode", "PersonsNode", "", None, "EventsNode'"])
        if self.chance(0.25):
            e["properties"] = self.properties(max_depth=3)
        if self.chance(0.1):
            e["math"] = self.math()
        if self.chance(0.1):
            e["optionalInFunnel"] = self.vg([True, False, None], ["yes"])
        if self.chance(0.1):
            e["custom_name"] = self.string()
        return e

    def n_steps(self):
        return self.vg([2, 2, 2, 3, 3, 4, 5, 8, 20], [1, 21, 25, 0])

    def window(self):
        return self.vg([1, 14, 2**31, 2**53, 2**63 - 1, "14", 106751991, 3000000, 10**6],
                       [0, -1, 10**30, "abc", 1.5, "", 1e308, -(2**63), None])

    def date(self):
        if self.chance(0.1):
            return self.pick(BAD_DATE_STRINGS)
        return self.vg(DATE_STRINGS, [None, 5, self.string, ["-7d"], {"d": 1}, 1e308])

    def step_index(self, lo=0, hi=None):
        """A 0-based step index, mostly within [lo, hi] of the current funnel."""
        hi = max(lo, self.n - 1 if hi is None else hi)
        return self.vg([lambda: self.r.randint(lo, hi), lambda: str(self.r.randint(lo, hi))],
                       [-1, 24, 2**32, 2**63, "x", None, 1.5, self.n, 0])

    def step_range(self):
        """(from, to) of an exclusion or funnelFromStep/ToStep."""
        a = self.step_index(0, self.n - 2)
        b = self.step_index(a + 1 if isinstance(a, int) and 0 <= a < self.n - 1 else 1)
        return a, b

    def breakdown(self):
        return self.vg([lambda: self.pick(DATA_KEYS), self.string,
                        lambda: [self.pick(DATA_KEYS)], lambda: [self.string(), self.string()],
                        lambda: json.dumps([self.pick(DATA_KEYS)])],
                       [None, 5, ["all", COHORT_ID], [COHORT_ID, 999999], "all", {"k": 1},
                        [[1]], ""])

    def breakdown_type(self):
        return self.vg(["event", "event", "person", "group", "cohort", "event_metadata",
                        "session", "events"],
                       ["hogql", "data_warehouse", "EVENT", "garbage", "", None, 5])

    def attribution(self):
        return self.vg(["first_touch", "last_touch", "all_events", "step"],
                       ["FIRST_TOUCH", "garbage", "", None, 3])

    def order_type(self):
        return self.vg(["ordered", "strict", "unordered"], ["ORDERED", "random", "", None, 1])

    def viz_type(self):
        return self.vg(["steps", "trends", "time_to_convert"], ["STEPS", "pie", "", None, 1])

    def group_index(self):
        return self.vg([None, 0, 1, 4], [5, -1, 99, 2**40, "0", "x", 1.5])

    def window_unit(self):
        return self.vg(WINDOW_UNITS[:10], WINDOW_UNITS[10:])

    def bin_count(self):
        return self.vg([None, 1, 90, 91, "auto"], [0, -1, "x", 2**40])

    def exclusion_legacy(self):
        a, b = self.step_range()
        e = {"id": self.event_name(), "type": self.vg(["events", "events", "actions"], ["x"]),
             "funnel_from_step": a, "funnel_to_step": b}
        if e["type"] == "actions":
            e["id"] = self.action_id()
        for k in ("funnel_from_step", "funnel_to_step"):
            if self.chance(self.bad):
                del e[k]
        return e

    def exclusion_node(self):
        if self.chance(0.8):
            e = {"kind": "FunnelExclusionEventsNode", "event": self.event_name()}
        else:
            e = {"kind": "FunnelExclusionActionsNode", "id": self.action_id()}
        e["funnelFromStep"], e["funnelToStep"] = self.step_range()
        return e

    def legacy_funnel(self, steps=None):
        n = self.n = self.n_steps() if steps is None else steps
        entities = [self.legacy_entity(i) for i in range(n)]
        q = {"insight": self.vg(["FUNNELS", "funnels"], ["TRENDS", "garbage", None])}
        q["events"] = [e for e in entities if e.get("type") != "actions"]
        actions = [e for e in entities if e.get("type") == "actions"]
        if actions or self.chance(0.3):
            q["actions"] = actions
        opts = {
            "funnel_window_interval": self.window,
            "funnel_window_interval_unit": self.window_unit,
            "funnel_window_interval_type": self.window_unit,
            "funnel_window_days": self.window,
            "funnel_order_type": self.order_type,
            "funnel_viz_type": self.viz_type,
            "date_from": self.date,
            "date_to": lambda: self.date() if self.chance(0.5) else None,
            "explicit_date": lambda: self.vg([True, False, "true"], ["x"]),
            "interval": lambda: self.vg(["day", "hour", "week", "month", "minute"],
                                        ["year", "", "x"]),
            "exclusions": lambda: [self.exclusion_legacy() for _ in range(self.r.randrange(0, 3))],
            "breakdown": self.breakdown,
            "breakdown_type": self.breakdown_type,
            "breakdown_group_type_index": self.group_index,
            "breakdown_limit": lambda: self.vg([1, 25, 1000, None], [0, -1, "x", 2**40]),
            "breakdown_attribution_type": self.attribution,
            "breakdown_attribution_value": self.step_index,
            "funnel_from_step": lambda: self.step_range()[0],
            "funnel_to_step": lambda: self.step_range()[1],
            "bin_count": self.bin_count,
            "funnel_step_reference": lambda: self.vg(["total", "previous", None], ["x"]),
            "aggregation_group_type_index": self.group_index,
            "funnel_aggregate_by_hogql": lambda: self.vg(
                [None, "properties.$session_id", "person_id"], [self.string]),
            "filter_test_accounts": lambda: self.vg([True, False, "true", None], [1, "x"]),
            "properties": self.properties,
            "breakdowns": lambda: [{"property": self.key(), "type": self.breakdown_type(),
                                    "group_type_index": self.group_index()}
                                   for _ in range(self.r.randrange(0, 3))],
        }
        for name, make in opts.items():
            if self.chance(0.25):
                q[name] = make()
        if self.chance(0.2):  # GET-style: JSON-encoded values in strings
            for k in ("events", "actions", "exclusions", "properties", "breakdown"):
                if k in q and not isinstance(q[k], str) and self.chance(0.7):
                    q[k] = json.dumps(q[k])
        if self.chance(0.1):
            q[self.string()[:60]] = self.value()
        return q

    def node_funnel(self, steps=None):
        n = self.n = self.n_steps() if steps is None else steps
        q = {"kind": self.vg(["FunnelsQuery"], ["TrendsQuery", "Funnels", None, ""]),
             "series": [self.node_entity() for _ in range(n)]}
        ff = {}
        opts = {
            "funnelWindowInterval": self.window,
            "funnelWindowIntervalUnit": self.window_unit,
            "funnelOrderType": self.order_type,
            "funnelVizType": self.viz_type,
            "exclusions": lambda: [self.exclusion_node() for _ in range(self.r.randrange(0, 3))],
            "breakdownAttributionType": self.attribution,
            "breakdownAttributionValue": self.step_index,
            "funnelFromStep": lambda: self.step_range()[0],
            "funnelToStep": lambda: self.step_range()[1],
            "binCount": self.bin_count,
            "funnelStepReference": lambda: self.vg(["total", "previous", None], ["x"]),
        }
        for name, make in opts.items():
            if self.chance(0.25):
                ff[name] = make()
        if ff or self.chance(0.5):
            q["funnelsFilter"] = ff if not self.chance(self.bad) else self.pick(["x", [], 5])
        if self.chance(0.5):
            dr = {"date_from": self.date(), "date_to": self.date() if self.chance(0.4) else None}
            if self.chance(0.3):
                dr["explicitDate"] = self.vg([True, False], ["x"])
            q["dateRange"] = dr if not self.chance(self.bad) else self.pick(["-7d", [], 5])
        if self.chance(0.35):
            bf = {"breakdown": self.breakdown(), "breakdown_type": self.breakdown_type()}
            if bf["breakdown_type"] == "group" or self.chance(0.2):
                bf["breakdown_group_type_index"] = self.group_index()
            if bf["breakdown_type"] == "cohort":
                bf["breakdown"] = self.vg([["all", COHORT_ID], [COHORT_ID], [STATIC_COHORT_ID]],
                                          [[999999], "x", [COHORT_ID, "x"]])
            if self.chance(0.3):
                bf["breakdown_limit"] = self.vg([1, 25, 1000, None], [0, -1, "x", 2**40])
            if self.chance(0.2):
                bf["breakdowns"] = [{"property": self.key(), "type": self.breakdown_type()}
                                    for _ in range(self.r.randrange(0, 3))]
            q["breakdownFilter"] = bf
        if self.chance(0.15):
            q["aggregation_group_type_index"] = self.group_index()
        if self.chance(0.1):
            q["funnelAggregateByHogQL"] = self.vg([None, "properties.$session_id"],
                                                  [self.string])
        if self.chance(0.3):
            q["properties"] = self.properties()
        if self.chance(0.15):
            q["filterTestAccounts"] = self.vg([True, False], ["x"])
        if self.chance(0.1):
            q["interval"] = self.vg(["day", "hour", "week", "month", "minute"], ["x", None])
        if self.chance(0.1):
            q = {"kind": "InsightVizNode", "source": q}
        if self.chance(self.bad / 2):
            q["series"] = self.pick([json.dumps(q.get("series", [])), None, "x", {}])
        return q

    def funnel(self, steps=None, bad=None):
        self.new_case()
        if bad is not None:
            self.bad = bad
        if self.chance(self.bad / 3):  # the whole query in a wrong shape
            return self.pick([lambda: json.dumps(self.legacy_funnel(steps)), lambda: None, list,
                              lambda: 5, lambda: "x", dict])()
        if self.chance(0.5):
            return self.legacy_funnel(steps)
        return self.node_funnel(steps)

    # --- stickiness and lifecycle ---------------------------------------------------------------

    def short(self, v):
        """`v` cut to 200 characters when strings must stay short (GET)."""
        return v[:200] if self.small and isinstance(v, str) else v

    def interval(self):
        return self.vg(INTERVALS, BAD_INTERVALS)

    def periods_date(self):
        """A date_from that mostly covers the fuzz data (the last ~10 weeks), else any date."""
        return self.vg([lambda: self.pick(["-7d", "-14d", "-30d", "-90d", "all", "-1w", "-1m",
                                           "-3m", "mStart", "-1mStart", "-2w", "-24h"]),
                        self.date], [self.date])

    def interval_count(self):
        return self.vg([1, 1, 2, 3, 7, 24, 100, "2", None],
                       [0, -1, 2**32, 2**63, 1.5, "x", 10**30, [2]])

    def compare_to(self):
        return self.vg(COMPARE_TO + [None], [self.date, "", "1d", "-0d", "+1d", 5, ["-1d"]])

    def hogql(self):
        """A HogQL expression: mostly valid, often rejected or hostile."""
        return self.short(self.vg(
            [lambda: self.pick(HOGQL_EXPRESSIONS), lambda: self.pick(HOGQL_EXPRESSIONS),
             lambda: self.pick(BAD_HOGQL_EXPRESSIONS), self.string],
            [5, None, ["event"], {"e": 1}]))

    def periods_math(self, entity):
        """Series math for stickiness/lifecycle, with the arguments it needs (or not)."""
        entity["math"] = self.vg(PERIODS_MATHS, ["garbage", "", 5, "DAU", ["dau"]])
        if entity["math"] == "unique_group" or self.chance(0.1):
            entity["math_group_type_index"] = self.group_index()
        if entity["math"] in ("sum", "avg") or self.chance(0.05):
            entity["math_property"] = self.key()
        if entity["math"] == "hogql" or self.chance(0.05):
            entity["math_hogql"] = self.hogql()

    def foreign(self, target):
        """Sometimes name the other project's action or cohort instead (must not leak)."""
        if isinstance(target, dict) and self.chance(0.04):
            if self.chance(0.5):
                target["properties"] = [{"key": "id", "value": OTHER_COHORT_ID,
                                         "type": "cohort"}]
            elif "kind" in target:
                target.update(kind="ActionsNode", id=OTHER_ACTION_ID)
                target.pop("event", None)
            else:
                target.update(type="actions", id=OTHER_ACTION_ID)

    def periods_entity(self, node, order):
        e = self.node_entity() if node else self.legacy_entity(order)
        self.foreign(e)
        if self.chance(0.4):
            self.periods_math(e)
        if isinstance(e.get("custom_name"), str):
            e["custom_name"] = self.short(e["custom_name"])
        return e

    def criteria(self):
        c = {"operator": self.vg(["gte", "lte", "exact"], ["GT", "eq", "", None, 5, "gte; --"]),
             "value": self.vg([0, 1, 2, 3, 10, 2**31, "2", 2**63 - 1],
                              [-1, 2**63, 10**30, "x", 1.5, None, [1]])}
        for k in ("operator", "value"):
            if self.chance(0.1):
                del c[k]
        return c if not self.chance(self.bad) else self.pick(["x", [], 5, None, "{}"])

    def legacy_periods(self, insight):
        """A legacy STICKINESS or LIFECYCLE filter (`/insights/trend/`)."""
        sticky = insight == "STICKINESS"
        n = self.vg([1, 1, 1, 2, 3, 5] if sticky else [1, 1, 1, 1, 2], [0, 12])
        entities = [self.periods_entity(False, i) for i in range(n)]
        q = {}
        roll = self.r.random()
        if roll < 0.6:
            q["insight"] = self.vg([insight, insight.lower()], ["TRENDS", "RETENTION", "", None,
                                                               5, insight + "; --"])
        elif roll < 0.85:
            q["shown_as"] = self.vg([insight.title()], [insight, "stickiness", "", None, 5])
            if self.chance(0.5):
                q["insight"] = "TRENDS"
        elif roll < 0.95:
            q["insight"], q["shown_as"] = insight, insight.title()
        q["events"] = [e for e in entities if e.get("type") != "actions"]
        actions = [e for e in entities if e.get("type") == "actions"]
        if actions or self.chance(0.3):
            q["actions"] = actions
        opts = {
            "date_from": self.periods_date,
            "date_to": lambda: self.date() if self.chance(0.3) else None,
            "explicit_date": lambda: self.vg([True, False, "true"], ["x", 5]),
            "interval": self.interval,
            "interval_count": self.interval_count,
            "properties": self.properties,
            "filter_test_accounts": lambda: self.vg([True, False, "true", None], [1, "x"]),
            "aggregation_group_type_index": self.group_index,
            "breakdown": self.breakdown,
            "display": lambda: self.vg(["ActionsLineGraph", "ActionsTable", "BoldNumber"],
                                       ["Nope", 5]),
        }
        if sticky:
            opts.update({
                "compare": lambda: self.vg([True, True, False, "true"], ["x", 5]),
                "compare_to": self.compare_to,
                "computed_as": lambda: self.vg(["non_cumulative", "cumulative"],
                                               ["CUMULATIVE", "", None, 5]),
                "stickiness_criteria": self.criteria,
            })
        else:
            opts["toggled_lifecycles"] = lambda: self.vg(
                [lambda: self.r.sample(LIFECYCLE_STATUSES, self.r.randrange(0, 5))],
                [["nope"], "new", [5], [None, "new"], ["new; --"]])
        for name, make in opts.items():
            if self.chance(0.3):
                q[name] = make()
        if self.chance(0.2):  # GET-style: JSON-encoded values in strings
            for k in ("events", "actions", "properties", "stickiness_criteria"):
                if k in q and not isinstance(q[k], str) and self.chance(0.7):
                    q[k] = json.dumps(q[k])
        if self.chance(0.1):
            q[self.short(self.string())[:60]] = self.value()
        return q

    def node_periods(self, kind):
        """A StickinessQuery or LifecycleQuery (maybe in an InsightVizNode)."""
        sticky = kind == "StickinessQuery"
        n = self.vg([1, 1, 1, 2, 3, 5] if sticky else [1, 1, 1, 1, 2], [0, 12])
        q = {"kind": self.vg([kind], ["TrendsQuery", "FunnelsQuery", kind.lower(), None, ""]),
             "series": [self.periods_entity(True, i) for i in range(n)]}
        if self.chance(0.6):
            dr = {"date_from": self.periods_date(),
                  "date_to": self.date() if self.chance(0.3) else None}
            if self.chance(0.3):
                dr["explicitDate"] = self.vg([True, False], ["x"])
            q["dateRange"] = dr if not self.chance(self.bad) else self.pick(["-7d", [], 5])
        if self.chance(0.4):
            q["interval"] = self.interval()
        if self.chance(0.3):
            q["intervalCount"] = self.interval_count()
        if self.chance(0.3):
            q["properties"] = self.properties()
        if self.chance(0.2):
            q["filterTestAccounts"] = self.vg([True, False], ["x", 1])
        if self.chance(0.15):
            q["aggregation_group_type_index"] = self.group_index()
        options = {}
        if sticky:
            if self.chance(0.3):
                cf = {"compare": self.vg([True, True, False], ["x"])}
                if self.chance(0.5):
                    cf["compare_to"] = self.compare_to()
                q["compareFilter"] = cf if not self.chance(self.bad) else self.pick(["x", []])
            if self.chance(0.3):
                options["computedAs"] = self.vg(["non_cumulative", "cumulative"],
                                                ["Cumulative", "", None, 5])
            if self.chance(0.3):
                options["stickinessCriteria"] = self.criteria()
            if self.chance(0.05):  # the older placement of compare
                options["compare"] = True
        else:
            if self.chance(0.3):
                options["toggledLifecycles"] = self.vg(
                    [lambda: self.r.sample(LIFECYCLE_STATUSES, self.r.randrange(0, 5))],
                    [["nope"], "new", [5]])
            if self.chance(0.1):
                options["showValuesOnSeries"] = self.vg([True, False], ["x"])
        if options or self.chance(0.2):
            key = "stickinessFilter" if sticky else "lifecycleFilter"
            q[key] = options if not self.chance(self.bad) else self.pick(["x", [], 5])
        if self.chance(0.1):
            q = {"kind": "InsightVizNode", "source": q}
        if self.chance(self.bad / 2):
            q["series"] = self.pick([json.dumps(q.get("series", [])), None, "x", {}])
        return q

    def periods(self, insight, bad=None):
        """A random stickiness ("STICKINESS") or lifecycle ("LIFECYCLE") query, either form."""
        self.new_case()
        if bad is not None:
            self.bad = bad
        if self.chance(self.bad / 3):
            return self.pick([lambda: json.dumps(self.legacy_periods(insight)), lambda: None,
                              list, lambda: 5, lambda: "x", dict])()
        if self.chance(0.5):
            return self.legacy_periods(insight)
        return self.node_periods("StickinessQuery" if insight == "STICKINESS"
                                 else "LifecycleQuery")

    # --- paths ----------------------------------------------------------------------------------

    def path_types(self):
        types = self.r.sample(["$pageview", "$screen", "custom_event", "hogql"],
                              self.r.randrange(0, 4))
        return self.vg([types, types, types, ["hogql"], json.dumps(types)],
                       [["$nope"], [""], [None], [5], ["PAGEVIEW"], ["$pageview; --"], "x", 5,
                        {"a": 1}, "$pageview"])

    def path_point(self):
        return self.short(self.vg([lambda: self.pick(PATH_POINTS), self.string,
                                   lambda: self.pick(EVENT_NAMES), None],
                                  [5, ["/"], {"a": 1}, True]))

    def path_list(self, material):
        """groupings / exclude_events: a list of strings (or its JSON text)."""
        items = [self.short(self.vg([lambda: self.pick(material), self.string],
                                    [None, 5, ["x"], {"a": 1}]))
                 for _ in range(self.r.randrange(0, 4))]
        return self.vg([items, items, lambda: json.dumps(items)], ["x", 5, {"a": 1}, [[1]]])

    def edge_number(self):
        return self.vg([None, 0, 1, 2, 3, 5, 50, 1000, 2**31 - 1, 2**32 - 1, "3"],
                       [-1, 2**32, 2**63, 1.5, "x", 10**30, [1]])

    def cleaning_rules(self, growth_limit=400):
        """`local_path_cleaning_filters`. Each rule can multiply an item's length by at most
        len(alias) + 1, so aliases are cut to keep the product under `growth_limit` (an unbounded
        product exhausts the backend: see BUG_PATHS_GROWTH)."""
        rules, growth = [], 1
        for _ in range(self.r.randrange(0, 5)):
            rule = {"regex": self.short(self.vg(
                        [lambda: self.pick(PATH_REGEXES), lambda: self.pick(PATH_REGEXES),
                         lambda: self.pick(PATH_REGEXES), lambda: self.pick(BAD_PATH_REGEXES),
                         self.string], [5, None, ["x"], {"r": 1}])),
                    "alias": self.vg([lambda: self.pick(PATH_ALIASES),
                                      lambda: self.pick(PATH_ALIASES) + self.pick(PATH_ALIASES),
                                      self.string], [None, 5, ["x"]])}
            if self.chance(0.05):
                del rule[self.pick(["regex", "alias"])]
            if isinstance(rule.get("alias"), str):
                rule["alias"] = rule["alias"][:max(0, growth_limit // growth - 1)]
                growth *= len(rule["alias"]) + 1
            rules.append(rule if not self.chance(self.bad) else self.pick(["x", 5, None, []]))
        return rules if not self.chance(self.bad) else self.pick(["x", 5, {"regex": "x"}])

    def funnel_for_paths(self, node):
        """The funnel of funnel paths: a random funnel (2–4 steps) with a random funnel_step."""
        steps = self.pick([2, 2, 3, 4])
        bad = self.bad
        f = self.node_funnel(steps) if node else self.legacy_funnel(steps)
        self.bad = bad
        step = self.vg([1, 2, -2, 3, -3, "2", steps, -steps],
                       [0, -1, 99, -99, 2**63, -(2**63) - 1, "x", None, 1.5, [1], " 2 "])
        return f, step

    def legacy_paths(self):
        q = {}
        if self.chance(0.8):
            q["insight"] = self.vg(["PATHS", "paths"], ["TRENDS", "FUNNELS", None, "PATH", 5])
        types = self.path_types() if self.chance(0.5) else None
        if types is not None:
            q["include_event_types"] = types
        opts = {
            "path_type": lambda: self.vg(["$pageview", "$screen", "custom_event"],
                                         ["hogql", "$nope", 5, None]),
            "paths_hogql_expression": self.hogql,
            "start_point": self.path_point,
            "end_point": self.path_point,
            "step_limit": lambda: self.vg([1, 2, 3, 5, 10, 20, 2**32 - 1, "4"],
                                          [0, -1, 2**32, "many", 1.5, None]),
            "path_groupings": lambda: self.path_list(PATH_GROUPINGS),
            "exclude_events": lambda: self.path_list(PATH_ITEMS),
            "edge_limit": self.edge_number,
            "min_edge_weight": self.edge_number,
            "max_edge_weight": self.edge_number,
            "local_path_cleaning_filters": self.cleaning_rules,
            "path_replacements": lambda: self.vg([True, False, "true"], ["x", 5]),
            "date_from": self.periods_date,
            "date_to": lambda: self.date() if self.chance(0.3) else None,
            "explicit_date": lambda: self.vg([True, False], ["x"]),
            "properties": self.properties,
            "filter_test_accounts": lambda: self.vg([True, False, None], [1, "x"]),
            "interval": self.interval,
        }
        for name, make in opts.items():
            if self.chance(0.3):
                q[name] = make()
        if isinstance(types, list) and "hogql" in types and self.chance(0.8):
            q["paths_hogql_expression"] = self.hogql()
        if self.chance(0.04):  # the other project's cohort (must not leak)
            q["properties"] = [{"key": "id", "value": OTHER_COHORT_ID, "type": "cohort"}]
        if self.chance(0.07):
            q["min_edge_weight"], q["max_edge_weight"] = self.pick([(5, 2), (2, 1), (1, 0),
                                                                    (2**32 - 1, 0), (3, 3)])
        if self.chance(0.15):  # funnel paths
            q["funnel_paths"] = self.vg(["funnel_path_after_step", "funnel_path_before_step",
                                         "funnel_path_between_steps"],
                                        ["funnel_path_sideways", "", None, 5, "AFTER"])
            f, step = self.funnel_for_paths(node=False)
            f["funnel_step"] = step
            q["funnel_filter"] = self.vg([f, f, lambda: json.dumps(f)],
                                         ["{", "[]", 5, "x", None, {}, '{"a": 1}', " {}"])
        if self.chance(0.2):  # GET-style: JSON-encoded values in strings
            for k in ("include_event_types", "path_groupings", "exclude_events", "properties",
                      "local_path_cleaning_filters"):
                if k in q and not isinstance(q[k], str) and self.chance(0.7):
                    q[k] = json.dumps(q[k])
        if self.chance(0.1):
            q[self.short(self.string())[:60]] = self.value()
        return q

    def node_paths(self):
        pf = {}
        opts = {
            "includeEventTypes": self.path_types,
            "pathsHogQLExpression": self.hogql,
            "startPoint": self.path_point,
            "endPoint": self.path_point,
            "stepLimit": lambda: self.vg([1, 2, 3, 5, 10, 2**32 - 1], [0, -1, "many", None]),
            "pathGroupings": lambda: self.path_list(PATH_GROUPINGS),
            "excludeEvents": lambda: self.path_list(PATH_ITEMS),
            "edgeLimit": self.edge_number,
            "minEdgeWeight": self.edge_number,
            "maxEdgeWeight": self.edge_number,
            "localPathCleaningFilters": self.cleaning_rules,
            "pathReplacements": lambda: self.vg([True, False], ["x"]),
        }
        for name, make in opts.items():
            if self.chance(0.3):
                pf[name] = make()
        if isinstance(pf.get("includeEventTypes"), list) and "hogql" in pf["includeEventTypes"] \
                and self.chance(0.8):
            pf["pathsHogQLExpression"] = self.hogql()
        q = {"kind": self.vg(["PathsQuery"], ["TrendsQuery", "pathsQuery", None, ""])}
        if pf or self.chance(0.5):
            q["pathsFilter"] = pf if not self.chance(self.bad) else self.pick(["x", [], 5])
        if self.chance(0.5):
            q["dateRange"] = {"date_from": self.periods_date(),
                              "date_to": self.date() if self.chance(0.3) else None}
        if self.chance(0.3):
            q["properties"] = self.properties()
        if self.chance(0.15):
            q["filterTestAccounts"] = self.vg([True, False], ["x"])
        if self.chance(0.04):  # the other project's cohort (must not leak)
            q["properties"] = [{"key": "id", "value": OTHER_COHORT_ID, "type": "cohort"}]
        if self.chance(0.15):
            f, step = self.funnel_for_paths(node=True)
            fpf = {"funnelPathType": self.vg(["funnel_path_after_step", "funnel_path_before_step",
                                              "funnel_path_between_steps"],
                                             ["funnel_path_sideways", "", None, 5]),
                   "funnelStep": step, "funnelSource": f}
            if self.chance(0.3):  # a legacy funnel filter as the source
                fpf["funnelSource"] = self.legacy_funnel(self.pick([2, 3]))
            for k in ("funnelPathType", "funnelStep", "funnelSource"):
                if self.chance(self.bad):
                    del fpf[k]
            q["funnelPathsFilter"] = fpf if not self.chance(self.bad) else self.pick(["x", 5])
        if self.chance(0.1):
            q = {"kind": "InsightVizNode", "source": q}
        return q

    def paths(self, bad=None):
        self.new_case()
        if bad is not None:
            self.bad = bad
        if self.chance(self.bad / 3):
            return self.pick([lambda: json.dumps(self.legacy_paths()), lambda: None, list,
                              lambda: 5, lambda: "x", dict])()
        if self.chance(0.5):
            return self.legacy_paths()
        return self.node_paths()

    def path_key(self):
        """A node key "<step>_<item>" of a paths result, or garbage."""
        return self.short(self.vg(
            [lambda: f"{self.pick([1, 1, 2, 3, 4, 5])}_{self.pick(PATH_ITEMS)}",
             lambda: f"{self.pick([1, 2])}_{self.string()}", None],
            ["", " ", "abc", "1_", "_x", "0_x", "-1_x", "99999999999999999999999_x", "1", "1__",
             self.string]))

    def periods_actor_extra(self, kind, query):
        """The actor parameters of one kind: (SQL argument values, HTTP parameters)."""
        if kind == "stickiness":
            k = self.vg([1, 1, 2, 3, 5, 10, 100], [0, -1, 2**63 - 1, -(2**63)])
            extra = {"stickiness_days": self.vg([k, str(k)],
                                                ["x", "", None, 2**40, "1; --", 1.5, "-1"])}
            if self.chance(0.3):
                extra["entity_id"] = self.vg(
                    [lambda: self.pick(EVENT_NAMES), ACTION_ID, ACTION_ID_STR],
                    [5, None, [1], {"a": 1}, self.string, 999999999])
                extra["entity_type"] = self.vg(["events", "actions"],
                                               ["x", None, 5, "ACTIONS"])
            return (k,), extra
        if kind == "lifecycle":
            date = self.short(self.vg(DATE_STRINGS, BAD_DATE_STRINGS + [self.string]))
            status = self.short(self.vg(LIFECYCLE_STATUSES, ["NEW", "", "x", "dormant; --",
                                                             self.string, "new ", "Returning"]))
            if self.chance(0.05):
                date, status = self.pick([(None, status), (date, None)])
            return (date, status), {"target_date": date, "lifecycle_type": status}
        keys = [self.path_key(), self.path_key(), self.path_key()]
        for i in range(3):
            if self.chance(0.5):
                keys[i] = None
        return tuple(keys), dict(zip(("path_start_key", "path_end_key", "path_dropoff_key"), keys))


def filter_case(g):
    """A two-step funnel whose global, step or exclusion filters are random."""
    g.new_case()
    where = g.pick(["global", "global", "step", "both", "exclusion"])
    legacy = g.chance(0.5)
    props = g.properties()
    if legacy:
        q = {"insight": "FUNNELS", "date_from": "-30d",
             "events": [{"id": "$pageview", "order": 0}, {"id": "purchase", "order": 1}]}
        if where in ("global", "both"):
            q["properties"] = props
        if where in ("step", "both"):
            q["events"][g.pick([0, 1])]["properties"] = g.properties()
        if where == "exclusion":
            q["events"].append({"id": "signup", "order": 2})
            q["exclusions"] = [{"id": "$autocapture", "type": "events", "funnel_from_step": 0,
                                "funnel_to_step": 1, "properties": props}]
    else:
        q = {"kind": "FunnelsQuery", "dateRange": {"date_from": "-30d"},
             "series": [{"kind": "EventsNode", "event": "$pageview"},
                        {"kind": "EventsNode", "event": "purchase"}]}
        if where in ("global", "both"):
            q["properties"] = props
        if where in ("step", "both"):
            q["series"][g.pick([0, 1])]["properties"] = g.properties()
        if where == "exclusion":
            q["series"].append({"kind": "EventsNode", "event": "signup"})
            q["funnelsFilter"] = {"exclusions": [
                {"kind": "FunnelExclusionEventsNode", "event": "$autocapture",
                 "funnelFromStep": 0, "funnelToStep": 1, "properties": props}]}
    if g.chance(0.2):
        bf = {"breakdown": g.pick(DATA_KEYS), "breakdown_type": g.pick(["event", "person"])}
        if legacy:
            q.update(bf)
        else:
            q["breakdownFilter"] = bf
    return q


def generate_cases(seed):
    cases = []
    g = Gen(random.Random(f"{seed}-filters"))
    for i in range(N_FILTER_CASES):
        q = filter_case(g)
        cases.append({"id": f"filters-{i:03d}", "kind": "funnel_json", "query": q, "bad": g.bad})
    g = Gen(random.Random(f"{seed}-funnels"))
    for i in range(N_FUNNEL_CASES):
        kind = "funnel_rows" if g.chance(0.1) else "funnel_json"
        q = g.funnel(steps=2 if g.chance(0.3) else None)
        cases.append({"id": f"funnel-{i:03d}", "kind": kind, "query": q, "bad": g.bad})
    g = Gen(random.Random(f"{seed}-actors"))
    for i in range(N_ACTOR_CASES):
        q = g.funnel(steps=g.pick([2, 2, 3, 4, None]), bad=g.pick([0.0, 0.0, 0.0, 0.02]))
        step = g.vg([1, 2, 3, -2, -3, g.n, -g.n], [0, -1, 25, -25, 2**31 - 1, -(2**31)])
        bd = None if g.chance(0.6) else g.pick(["Chrome", ["Chrome"], [""], g.string(), 5,
                                                {"a": 1}, [g.string()], None, ["None"],
                                                g.number(), g.value()])
        if bd is not None and isinstance(q, dict):  # a step breakdown needs a breakdown
            src = q.get("source", q) if isinstance(q.get("source"), dict) else q
            if "kind" in src:
                src.setdefault("breakdownFilter", {"breakdown": "$browser"})
            else:
                src.setdefault("breakdown", "$browser")
        cases.append({"id": f"actors-{i:03d}", "kind": "actors", "query": q, "step": step,
                      "breakdown": bd})
    g = Gen(random.Random(f"{seed}-http"))
    small = Gen(random.Random(f"{seed}-http-get"), small=True)
    for i in range(N_HTTP_CASES):
        roll = g.r.random()
        small.new_case()
        case = {"id": f"http-{i:03d}"}
        if roll < 0.4:
            case.update(kind="http_post", query=g.chance(0.3) and filter_case(g) or g.funnel())
        elif roll < 0.7:
            q = small.legacy_funnel() if small.chance(0.7) else filter_case(small)
            if "kind" in q:  # GET carries the legacy form
                q = small.legacy_funnel()
            case.update(kind="http_get", query=q)
        elif roll < 0.88:
            q = g.funnel(steps=g.pick([2, 3, None]))
            case.update(kind=g.pick(["http_persons_post", "http_persons_get"]), query=q,
                        step=g.pick([1, 2, -2, 0, -1, 99, "x", "1; --", 2**40, None]),
                        breakdown=g.pick([None, "Chrome", '["Chrome"]', g.string()[:100],
                                          ["x"], 5, "[1e400]", "[" * 200 + "]" * 200]))
            if g.chance(0.3):
                case["limit"] = g.pick(["abc", "-1", "0", "1", "99999999999999", "1.5", "", "1;--"])
            if g.chance(0.3):
                case["offset"] = g.pick(["abc", "-5", "0", "3", "99999999999999", "2147483648"])
            if case["kind"] == "http_persons_get":
                case["query"] = small.legacy_funnel(steps=small.pick([2, 3]))
                case["breakdown"] = small.pick([None, None, small.string()[:100], "[1e400]",
                                                '["Chrome"]', "[" * 200 + "]" * 200])
        elif roll < 0.9:
            case.update(kind="http_qs", path=g.pick(["insights/funnel/", "persons/funnel/"]),
                        qs=g.pick(["events=%00", "x%00y=1", "events=%ZZ", "events=%C3",
                                   "events=%FF%FE", "&&&=&", "a[b]=c", "events=%5B",
                                   "funnel_step=%00", "events=" + "%5B" * 1000,
                                   "properties=%5B%7B%22key%22%3A%22a%5Cu0000%22%7D%5D",
                                   "events=%5B%7B%22id%22%3A%22a%5Cu0000b%22%7D%5D",
                                   "insight=FUNNELS&insight=TRENDS", "events=1e400",
                                   "funnel_window_interval=1e400&events=%5B%5D",
                                   "date_from=%27%3B%20DROP%20TABLE%20public.__CANARY__%3B%20--"]))
        elif roll < 0.93:
            case.update(kind="http_project", query=small.legacy_funnel(steps=2),
                        project=g.pick([OTHER_PROJECT, "abc", "-1", "0", "99999999999999999999",
                                        "1'; DROP TABLE public.__CANARY__; --", "$$", "1 OR 1=1",
                                        "0x1", "1.0", "%27", "..%2F..%2F", "999999999"]),
                        path=g.pick(["insights/funnel/", "persons/funnel/"]))
        else:
            body = g.pick([
                b"{not json", b"", b"[]", b"null", b'"a string"', b"5",
                json.dumps(json.dumps(g.legacy_funnel(2))).encode(),
                b'{"events": [{"id": "$pageview"}, {"id": "purchase"}], "x": 1e400}',
                b'{"events": "[{\\"id\\": \\"$pageview\\"}, {\\"id\\": \\"signup\\"}]"}',
                b"\xff\xfe\x00garbage", ("{" * 5000).encode(), b'{"a":' * 300 + b"1" + b"}" * 300,
                json.dumps(g.funnel()).encode() + b"trailing",
                b"events=%5B%5D&insight=FUNNELS",
            ])
            case.update(kind="http_raw", body=body,
                        content_type=g.pick(["application/json", "text/plain",
                                             "application/x-www-form-urlencoded"]))
        cases.append(case)
    cases += generate_periods_cases(seed)
    return cases


PERIODS_SQL = {"stickiness": "STICKINESS", "lifecycle": "LIFECYCLE"}
PERSONS_PATHS = {"stickiness": "persons/stickiness/", "lifecycle": "persons/lifecycle/",
                 "paths": "persons/path/"}
PERIODS_QS = [
    "events=%00", "insight=STICKINESS&events=%ZZ", "insight=LIFECYCLE&events=%5B",
    "insight=STICKINESS&insight=LIFECYCLE", "shown_as=Stickiness&events=1e400",
    "insight=STICKINESS&stickiness_criteria=%7B%22value%22%3A1e400%7D",
    "insight=LIFECYCLE&events=%5B%7B%22id%22%3A%22a%5Cu0000b%22%7D%5D",
    "insight=STICKINESS&interval_count=1e400", "insight=STICKINESS&compare=true&compare_to=%00",
    "local_path_cleaning_filters=%5B%7B%22regex%22%3A%22(%22%7D%5D",
    "local_path_cleaning_filters=" + "%5B" * 1000,
    "path_groupings=%5B%22%5Cu0000%22%5D", "include_event_types=%5B%22hogql%22%5D"
    "&paths_hogql_expression=%27%3B%20DROP%20TABLE%20public.__CANARY__%3B%20--",
    "funnel_paths=funnel_path_after_step&funnel_filter=%7B", "step_limit=1e400",
    "funnel_paths=funnel_path_after_step&funnel_filter=%7B%22funnel_step%22%3A1e400%7D",
    "stickiness_days=%00", "stickiness_days=1e400", "target_date=%00&lifecycle_type=new",
    "target_date=-7d&lifecycle_type=%C3", "path_start_key=%00", "path_end_key=" + "%5B" * 500,
    "date_from=%27%3B%20DROP%20TABLE%20public.__CANARY__%3B%20--",
]


def generate_periods_cases(seed):
    """Stickiness, lifecycle and paths cases (see the module docstring)."""
    cases = []
    for kind, n in (("stickiness", N_STICKINESS_CASES), ("lifecycle", N_LIFECYCLE_CASES)):
        g = Gen(random.Random(f"{seed}-{kind}"))
        for i in range(n):
            q = g.periods(PERIODS_SQL[kind])
            roll = g.r.random()
            fn = (f"{kind}_rows" if roll < 0.12 else
                  "trend_json" if roll < 0.24 and isinstance(q, dict) and "kind" not in q else
                  f"{kind}_json")
            cases.append({"id": f"{kind}-{i:03d}", "kind": fn, "query": q, "bad": g.bad})
    g = Gen(random.Random(f"{seed}-paths"))
    for i in range(N_PATHS_CASES):
        q = g.paths()
        kind = "paths_rows" if g.chance(0.15) else "paths_json"
        cases.append({"id": f"paths-{i:03d}", "kind": kind, "query": q, "bad": g.bad})
    g = Gen(random.Random(f"{seed}-periods-actors"))
    for i in range(N_PERIODS_ACTOR_CASES):
        which = g.pick(["stickiness", "lifecycle", "paths"])
        bad = g.pick([0.0, 0.0, 0.0, 0.02])
        q = g.paths(bad=bad) if which == "paths" else g.periods(PERIODS_SQL[which], bad=bad)
        args, extra = g.periods_actor_extra(which, q)
        if which == "stickiness" and isinstance(q, dict):  # the series, named in the query
            q.update({k: v for k, v in extra.items() if k.startswith("entity_")})
        cases.append({"id": f"periods-actors-{i:03d}", "kind": f"{which}_actors", "query": q,
                      "args": list(args)})
    g = Gen(random.Random(f"{seed}-periods-http"))
    small = Gen(random.Random(f"{seed}-periods-http-get"), small=True)
    for i in range(N_PERIODS_HTTP_CASES):
        roll = g.r.random()
        small.new_case()
        which = g.pick(["stickiness", "lifecycle", "paths"])
        path = "insights/path/" if which == "paths" else "insights/trend/"
        case = {"id": f"periods-http-{i:03d}"}
        if roll < 0.25:
            q = g.paths() if which == "paths" else g.periods(PERIODS_SQL[which])
            case.update(kind="http_post", path=path, query=q)
        elif roll < 0.45:
            if which == "paths":
                q = small.legacy_paths()
            else:
                q = small.legacy_periods(PERIODS_SQL[which])
            case.update(kind="http_get", path=path, query=q)
        elif roll < 0.6:
            g.new_case()
            q = (g.node_paths() if which == "paths" else
                 g.node_periods("StickinessQuery" if which == "stickiness" else "LifecycleQuery"))
            body = {"query": q}
            if g.chance(0.6):
                body["refresh"] = g.pick(["blocking", "force_blocking", True, False, "garbage", 5,
                                          "force_cache", "", None])
            case.update(kind="http_query", body_json=body)
        elif roll < 0.82:
            method = g.pick(["http_persons_post", "http_persons_get"])
            gen = small if method == "http_persons_get" else g
            if which == "paths":
                q = gen.paths(bad=gen.pick([0.0, 0.0, 0.02]))
            else:
                q = gen.periods(PERIODS_SQL[which], bad=gen.pick([0.0, 0.0, 0.02]))
            if method == "http_persons_get" and (not isinstance(q, dict) or "kind" in q):
                q = small.legacy_paths() if which == "paths" else \
                    small.legacy_periods(PERIODS_SQL[which])
            _, extra = gen.periods_actor_extra(which, q)
            case.update(kind=method, query=q, persons_path=PERSONS_PATHS[which], extra=extra)
            if g.chance(0.2):
                case["limit"] = g.pick(["abc", "-1", "0", "1", "99999999999999", "1.5", ""])
            if g.chance(0.2):
                case["offset"] = g.pick(["abc", "-5", "0", "3", "99999999999999", "2147483648"])
        elif roll < 0.88:
            case.update(kind="http_qs", qs=g.pick(PERIODS_QS),
                        path=g.pick([path, PERSONS_PATHS[which]]))
        elif roll < 0.92:
            q = (small.legacy_paths() if which == "paths" else
                 small.legacy_periods(PERIODS_SQL[which]))
            case.update(kind="http_project", query=q,
                        project=g.pick([OTHER_PROJECT, "abc", "-1", "0", "99999999999999999999",
                                        "1'; DROP TABLE public.__CANARY__; --", "$$", "1 OR 1=1",
                                        "999999999"]),
                        path=g.pick([path, PERSONS_PATHS[which]]))
        else:
            body = g.pick([
                b"{not json", b"", b"[]", b"null", b'"a string"', b"5",
                json.dumps(json.dumps(g.legacy_paths())).encode(),
                b'{"insight": "STICKINESS", "events": [{"id": "$pageview"}], "x": 1e400}',
                b'{"insight": "LIFECYCLE", "events": "[{\\"id\\": \\"$pageview\\"}]"}',
                b'{"query": {"kind": "PathsQuery", "pathsFilter": {"stepLimit": 1e400}}}',
                b'{"query": {"kind": "StickinessQuery", "series": []}, "refresh": 1e400}',
                b"\xff\xfe\x00garbage", ("{" * 5000).encode(), b'{"a":' * 300 + b"1" + b"}" * 300,
                b"insight=PATHS&step_limit=3",
            ])
            case.update(kind="http_raw", body=body, path=g.pick([path, "query/"]),
                        content_type=g.pick(["application/json", "text/plain",
                                             "application/x-www-form-urlencoded"]))
        cases.append(case)
    return cases


# ------------------------------------------------------------------------------------------------
# Known product bugs: case id → reason (with the exact failing input). Only valid for the default
# seed; regression cases below pin the same bugs with minimal inputs.

_TWO_STEPS = {"insight": "FUNNELS", "events": [{"id": "$pageview", "order": 0},
                                                {"id": "purchase", "order": 1}]}
_TWO_STEPS_QS = ("events=%5B%7B%22id%22%3A%22%24pageview%22%7D%2C%7B%22id%22%3A%22purchase%22%7D"
                 "%5D&breakdown=%24browser")


def _nested(depth):
    v = 1
    for _ in range(depth):
        v = [v]
    return v


BUG_NUMBER = ("BUG-1 a JSON number outside float64 (e.g. 1e400, valid jsonb) anywhere in a jsonb "
              "argument of insights.funnel_json/funnel/funnel_actors raises SQLSTATE XX000 'a text "
              "version of jsonb must be a valid json: Error(\"number out of range\")' (pgrx JsonB "
              "decoding panics) instead of a 22xxx client error")
BUG_DEPTH = ("BUG-2 jsonb nested 128+ levels deep (valid jsonb) in a jsonb argument of "
             "insights.funnel_json/funnel/funnel_actors raises SQLSTATE XX000 'a text version of "
             "jsonb must be a valid json: Error(\"recursion limit exceeded\")' instead of 22xxx")
BUG_HTTP = ("BUG-3 GET|POST /api/projects/:id/persons/funnel/ with funnel_step_breakdown=[1e400] "
            "or a JSON list nested 128+ deep answers HTTP 500 server_error (BUG-1/BUG-2 reached "
            "through api.persons_funnel's ::jsonb cast) instead of 400")

BUG_LIFECYCLE_GROUPS = (
    "BUG-4 lifecycle with a series math unique_group (math_group_type_index N, no "
    "aggregation_group_type_index) raises SQLSTATE 42883 'operator does not exist: bigint = text' "
    "(core/src/lifecycle.rs build(): the actor is the group key, but its creation period is looked "
    "up as insights.persons.id = s.actor); from SQL insights.lifecycle_json/lifecycle/"
    "lifecycle_actors and trend_json that is a class-42 error, over HTTP (/insights/trend/, "
    "POST /query/, persons/lifecycle/) an HTTP 500 server_error instead of a result or a 400")
BUG_PATHS_GROWTH = (
    "BUG-5 paths cleaning rules (local_path_cleaning_filters, and the team's path_cleaning_filters "
    "with path_replacements) lengthen an item without bound: one rule can make it len(alias)+1 "
    "times longer (regex '(.)' with alias '\\1' ten times: x10), so k rules give x10^k, in time "
    "and memory. The Rust loop that applies them (core/src/paths.rs PathRules::item) never checks "
    "for interrupts, so statement_timeout does not stop it (with statement_timeout 1s, 7 such "
    "rules on a 4-character item ran 11 s and were cancelled only afterwards). Each further rule "
    "multiplies time and memory by 10 again: a handful of rules in one request can exhaust the "
    "backend. /insights/path/, POST /query/ and persons/path/ run the same code. The fuzz "
    "generator caps the product of len(alias)+1 at 400 so that random cases cannot take the "
    "stack down")

# Generated cases that hit known bugs: case id → reason. Keys are case ids of the default seed,
# or "<seed>:<case id>" for the PGI_FUZZ_SEED runs they were seen in. BUG-1..5 are fixed (BUG-1..3:
# the extension parses jsonb arguments itself and answers 22P02; BUG-4: lifecycle ignores a
# series math, as PostHog does; BUG-5: cleaning rules cut an item at 8 KiB after each rule), so
# no case is expected to fail; their minimal cases stay as regression tests. Seeds 1–75 hit BUG-4
# in periods-http cases before the fix.
KNOWN_BUGS: dict[str, str] = {}

_LIFECYCLE_GROUPS = {"insight": "LIFECYCLE", "date_from": "-14d",
                     "events": [{"id": "$pageview", "math": "unique_group",
                                 "math_group_type_index": 0}]}

# Open bugs as minimal, exact inputs: xfail(strict=True) until fixed (then move them to
# REGRESSIONS).
OPEN_BUGS: list = []

# The fixed bugs as minimal, exact inputs (regression tests).
REGRESSIONS = [
    ("regression-lifecycle-unique-group-trend",
     {"kind": "http_post", "path": "insights/trend/", "query": _LIFECYCLE_GROUPS},
     BUG_LIFECYCLE_GROUPS + "; input: POST /insights/trend/ {\"insight\": \"LIFECYCLE\", "
     "\"events\": [{\"id\": \"$pageview\", \"math\": \"unique_group\", "
     "\"math_group_type_index\": 0}]} → HTTP 500 "
     "(SQL: insights.lifecycle_json(p, the same) → 42883)"),
    ("regression-lifecycle-unique-group-query",
     {"kind": "http_query", "body_json": {"query": {
         "kind": "LifecycleQuery", "series": [{"kind": "EventsNode", "event": "$pageview",
                                               "math": "unique_group",
                                               "math_group_type_index": 0}]}}},
     BUG_LIFECYCLE_GROUPS + "; input: POST /query/ {\"query\": {\"kind\": \"LifecycleQuery\", "
     "\"series\": [{\"kind\": \"EventsNode\", \"event\": \"$pageview\", \"math\": "
     "\"unique_group\", \"math_group_type_index\": 0}]}} → HTTP 500"),
    ("regression-lifecycle-unique-group-persons",
     {"kind": "http_persons_post", "persons_path": "persons/lifecycle/", "query": _LIFECYCLE_GROUPS,
      "extra": {"target_date": "-1d", "lifecycle_type": "new"}},
     BUG_LIFECYCLE_GROUPS + "; input: POST /persons/lifecycle/ {…the same filter…, "
     "\"target_date\": \"-1d\", \"lifecycle_type\": \"new\"} → HTTP 500"),
    ("regression-paths-cleaning-growth",
     {"kind": "paths_json", "query": {
         "insight": "PATHS", "include_event_types": ["hogql"],
         "paths_hogql_expression": "'abcde'",
         "local_path_cleaning_filters": [{"regex": "(.)", "alias": "\\1" * 10}] * 7}},
     BUG_PATHS_GROWTH + "; input: insights.paths_json(p, {\"insight\": \"PATHS\", "
     "\"include_event_types\": [\"hogql\"], \"paths_hogql_expression\": \"'abcde'\", "
     "\"local_path_cleaning_filters\": 7 × {\"regex\": \"(.)\", \"alias\": "
     "\"\\\\1\\\\1…\" (\\1 ten times)}}) takes > 10 s (one 50 MB item; the answer is [])"),

    ("regression-number-funnel_json",
     {"kind": "funnel_json", "query": dict(_TWO_STEPS, x=10**400)},
     BUG_NUMBER + "; input: insights.funnel_json(p, '{\"insight\":\"FUNNELS\",\"events\":"
     "[{\"id\":\"$pageview\",\"order\":0},{\"id\":\"purchase\",\"order\":1}],"
     "\"x\":1e400}')"),
    ("regression-number-filter-value",
     {"kind": "funnel_json", "query": dict(_TWO_STEPS, properties=[
         {"key": "amount", "value": 10**400, "operator": "gt", "type": "event"}])},
     BUG_NUMBER + "; input: properties=[{key: amount, value: 1e400, operator: gt}]"),
    ("regression-number-funnel-rows",
     {"kind": "funnel_rows", "query": dict(_TWO_STEPS, x=10**400)},
     BUG_NUMBER + "; input: insights.funnel(p, two steps + \"x\":1e400)"),
    ("regression-number-actors-breakdown",
     {"kind": "actors", "query": dict(_TWO_STEPS, breakdown="$browser"), "step": 1,
      "breakdown": [10**400]},
     BUG_NUMBER + "; input: insights.funnel_actors(p, two steps + breakdown $browser, 1, "
     "'[1e400]')"),
    ("regression-depth-128",
     {"kind": "funnel_json", "query": dict(_TWO_STEPS, x=_nested(127))},
     BUG_DEPTH + "; input: two steps + \"x\": 127 nested lists (128 levels with the query)"),
    ("regression-http-persons-breakdown-number",
     {"kind": "http_qs", "path": "persons/funnel/",
      "qs": _TWO_STEPS_QS + "&funnel_step_breakdown=%5B1e400%5D"},
     BUG_HTTP + "; input: GET persons/funnel/?events=[$pageview,purchase]&breakdown=$browser"
     "&funnel_step_breakdown=[1e400]"),
    ("regression-http-persons-breakdown-deep",
     {"kind": "http_qs", "path": "persons/funnel/",
      "qs": _TWO_STEPS_QS + "&funnel_step_breakdown=" + "%5B" * 200 + "%5D" * 200},
     BUG_HTTP + "; input: GET persons/funnel/?…&funnel_step_breakdown=[[[…]]] (200 deep)"),
    ("regression-http-persons-post-breakdown-number",
     {"kind": "http_persons_post", "query": dict(_TWO_STEPS, breakdown="$browser"),
      "step": 1, "breakdown": "[1e400]"},
     BUG_HTTP + "; input: POST persons/funnel/ {…two steps…, \"breakdown\": \"$browser\", "
     "\"funnel_step\": 1, \"funnel_step_breakdown\": \"[1e400]\"}"),
]


def _params():
    out = []
    for c in generate_cases(SEED):
        marks = []
        key = c["id"] if SEED == DEFAULT_SEED else f"{SEED}:{c['id']}"
        if key in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[key]))
        out.append(pytest.param(c, id=c["id"], marks=marks))
    for rid, case, reason in REGRESSIONS:
        # Fixed bugs: each minimal input must now be a clean client error (or a result).
        out.append(pytest.param(dict(case, id=rid, fixed_bug=reason), id=rid))
    for rid, case, reason in OPEN_BUGS:
        out.append(pytest.param(dict(case, id=rid), id=rid,
                                marks=pytest.mark.xfail(strict=True, reason=reason)))
    return out


# ------------------------------------------------------------------------------------------------
# Fixtures: a fresh project with ~200 hostile events, a second project with a secret, a canary


def _dataset(rng, now):
    ids = [f"user-{i}" for i in range(20)] + ["o'neil", 'dq"user', "semi;colon", "ünï 🎉",
                                                "$$", "back\\slash"]
    events = []
    for n in range(200):
        did = rng.choice(ids)
        ts = now - timedelta(seconds=rng.randrange(0, 3 * 86400))
        name = rng.choice(EVENT_NAMES[:-1])
        props = {
            "$browser": rng.choice(["Chrome", "Firefox", "Safari", "O'Reilly", None]),
            "amount": rng.choice([1, 2.5, -3, 0, 1e308, -1e308, 10**20, "42", "nan?", None]),
            "is_active": rng.choice([True, False, None, "true"]),
            "nested": {"a": {"b": [1, 2, {"c": rng.choice(["d", "'", None])}]}},
            "tags": rng.choice([["x", "y"], [], [None], "x"]),
            "ünï": rng.choice(["cödé", "中文", "🎉"]),
            "we'ird": rng.choice(["va'lue", "x"]),
            "sem;colon": "x;y --",
            "$dollar": "$$ $1",
            'quo"te': 'q"q\\',
            "version": rng.choice(["1.2.3", "v2.0", "0.0.1-beta", "garbage", "10.20.30"]),
            "created": rng.choice(["2024-01-01", "2024-01-01T10:00:00Z", 1700000000,
                                   1700000000000, "not a date"]),
            "$current_url": rng.choice(["https://x.test/", "https://x.test/a?q='1'", "/x%_"]),
            "$session_id": f"s{n // 7}",
            "empty": "",
            "nullprop": None,
            # stored values that pass the number / date / semver guards at their limits
            "edge": rng.choice(["1e999", "-1e999", "1e-999", "2024-02-30", "2023-02-29T10:00:00",
                                "2999-12-31T23:59:59+23:59", "1000-01-01T00:00:00-23:59",
                                "9999999999999", "99999999999", "999999999999999.999999999999999.1",
                                "x" * 5000, "'; DROP TABLE x; --", "", None]),
        }
        if rng.random() < 0.3:
            props["$groups"] = {"company": rng.choice(["acme", "O'Corp", "co;--"])}
        if name == "$autocapture":
            # Chains with hostile text (picked by position: the rng stream stays as it was):
            # quotes, ';' and ':' inside values, unterminated quotes, regex and SQL syntax,
            # non-BMP text, a huge element, and a `$elements` array instead of a string.
            props["$elements_chain"] = HOSTILE_CHAINS[n % len(HOSTILE_CHAINS)]
            if props["$elements_chain"] is None:
                del props["$elements_chain"]
                props["$elements"] = [{"tag_name": "a", "$el_text": "x\"; DROP TABLE y; --",
                                       "attr__href": "/x;y:z", "attr__class": "btn  primary"},
                                      "not an element", {"tag_name": None, "nth_child": "9" * 30}]
        ev = {"event": name, "distinct_id": did, "timestamp": ts.isoformat(), "properties": props}
        if rng.random() < 0.3:
            ev["properties"]["$set"] = {"plan": rng.choice(["pro", "free", "we'ird", None]),
                                        "email": f"{did}@example.com",
                                        "age": rng.choice([20, "28", None, 1e308])}
        events.append(ev)
        if rng.random() < 0.1:  # a tie: another event of the same person at the same instant
            events.append({"event": rng.choice(EVENT_NAMES[:4]), "distinct_id": did,
                           "timestamp": ts.isoformat(), "properties": {"edge": "tie"}})
    events.append({"event": "$identify", "distinct_id": "user-1", "timestamp": now.isoformat(),
                   "properties": {"$anon_distinct_id": "user-2"}})
    events.append({"event": "$groupidentify", "distinct_id": "user-3",
                   "timestamp": now.isoformat(),
                   "properties": {"$group_type": "company", "$group_key": "acme",
                                  "$group_set": {"name": "Acme 'n' Co", "industry": "x;--"}}})
    return events


def _periods_dataset(rng, now):
    """Sessions over ~10 weeks for stickiness, lifecycle and paths: pageviews whose URLs hold
    regex metacharacters, group references, injections and trailing slashes; $screen events with
    such names; custom events; some with a group."""
    ids = [f"period-{i}" for i in range(14)] + ["o'neil", "ünï 🎉", "$$"]
    urls = ["/", "", "https://x.test/", "https://x.test/a/b/", "https://x.test/page/12/item?id=7",
            "https://x.test/a?q='1'", "/(a+)+$", "/[a-", "/\\1/$1/${1}", "/*", "/.../", "/x%_",
            "/ünï/🎉", "/" + "a" * 300, "/'; DROP TABLE public.x; --", "/about_1", "/about_2/",
            None]
    screens = ["Home", "Settings", "(", "$1", "\\1", "*", "", None, "we'ird\"sc;reen", "🎉",
               "Home/"]
    customs = ["signup", "purchase", "we'ird\"ev;ent --", "100%_off", "back\\slash"]
    events = []
    for _ in range(45):
        did = rng.choice(ids)
        t = now - timedelta(days=rng.choice([0, 0, 1, 2, 3, 6, 7, 8, 13, 14, 20, 29, 31, 45, 70]),
                            minutes=rng.randrange(0, 1440))
        for _ in range(rng.randrange(1, 7)):
            t += timedelta(seconds=rng.choice([0, 1, 30, 60, 600, 1799, 1800, 3600]))
            if t > now:
                break
            roll = rng.random()
            if roll < 0.5:
                name, props = "$pageview", {"$current_url": rng.choice(urls)}
            elif roll < 0.75:
                name, props = "$screen", {"$screen_name": rng.choice(screens)}
            else:
                name, props = rng.choice(customs), {}
            props = {k: v for k, v in props.items() if v is not None}
            props["$browser"] = rng.choice(["Chrome", "Firefox", "O'Reilly"])
            if rng.random() < 0.3:
                props["$groups"] = {"company": rng.choice(["acme", "O'Corp", "co;--"])}
            events.append({"event": name, "distinct_id": did, "timestamp": t.isoformat(),
                           "properties": props})
    return events


class Pg:
    """The fuzz connection (transactions; rollback after each error). Reconnects when the
    connection drops (the extension may be reinstalled while the tests run)."""

    def __init__(self):
        self.conn = None

    def connect(self):
        if self.conn is not None and not self.conn.closed:
            return self.conn
        for attempt in range(30):
            try:
                self.conn = psycopg.connect(autocommit=False)
                self.conn.execute("SET statement_timeout = '30s'")
                self.conn.commit()
                return self.conn
            except psycopg.OperationalError:
                time.sleep(1 + attempt)
        raise RuntimeError("cannot reconnect to the stack's database")

    def run(self, query, params):
        """(rows, None) or (None, error). Retries a dropped connection up to three times: a drop
        that repeats on the same input is reported (it would be a backend crash)."""
        last = None
        for _ in range(3):
            conn = self.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute(query, params)
                    rows = cur.fetchall()
                conn.commit()
                return rows, None
            except psycopg.OperationalError as e:
                if conn.closed or e.sqlstate is None or e.sqlstate.startswith(("08", "57P")):
                    last = e
                    self.conn = None
                    time.sleep(2)
                    continue
                conn.rollback()
                return None, e
            except psycopg.Error as e:
                conn.rollback()
                return None, e
        return None, last

    def close(self):
        if self.conn is not None and not self.conn.closed:
            self.conn.close()


@pytest.fixture(scope="module")
def env(db):
    def new_project(label, tz="UTC"):
        name = f"fuzz-{label}-{uuid.uuid4().hex[:10]}"
        (row,) = sql(db, "SELECT project_id, api_token, user_id, personal_api_key "
                         "FROM insights.create_project_with_key(%s, %s, %s, %s)",
                     name, f"{name}@example.com", ["*"], tz)
        return {"id": row[0], "token": row[1], "user_id": row[2], "key": row[3]}

    rng = random.Random(f"{SEED}-dataset")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # A timezone with a 45-minute offset and DST, weeks starting on Monday, and hostile test
    # account filters (applied by filterTestAccounts).
    project = new_project("main", "Pacific/Chatham")
    sql(db, "UPDATE insights.projects SET week_start_day = 1, test_account_filters = %s::jsonb "
            "WHERE id = %s", json.dumps([
                {"key": "email", "value": "%_\\'; DROP TABLE x; --", "operator": "not_icontains",
                 "type": "person"},
                {"key": "$browser", "value": ["O'Reilly", "$$"], "operator": "is_not"},
                {"key": "amount", "value": "(", "operator": "not_regex", "type": "event"},
            ]), project["id"])
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"],
        json.dumps(_dataset(rng, now)))
    # Stickiness, lifecycle and paths data (own seed: the funnel data above stays as it was), and
    # team path cleaning rules (applied by path_replacements) with group references.
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"],
        json.dumps(_periods_dataset(random.Random(f"{SEED}-dataset-periods"), now)))
    sql(db, "UPDATE insights.projects SET path_cleaning_filters = %s::jsonb WHERE id = %s",
        json.dumps([{"regex": "\\?(.*)", "alias": "?<param>"},
                    {"regex": "/(\\d+)", "alias": "/<\\1>$1"},
                    {"alias": "a rule without a regex"}, {"regex": 5, "alias": "x"},
                    {"regex": "x\\.test", "alias": "'; DROP TABLE x; --"}]), project["id"])

    # A secret in another project: it must never show up in an answer about this one.
    secret = f"LEAK{uuid.uuid4().hex}"
    other = new_project("other")
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", other["id"], json.dumps([
        {"event": "$pageview", "distinct_id": "secret-user", "timestamp": now.isoformat(),
         "properties": {"$browser": secret, "plan": secret, "$set": {"plan": secret}}},
        {"event": "purchase", "distinct_id": "secret-user", "timestamp": now.isoformat(),
         "properties": {"$browser": secret}},
    ]))

    (action_id,), = sql(db, "INSERT INTO insights.actions (project_id, name, steps) "
                            "VALUES (%s, %s, %s::jsonb) RETURNING id", project["id"],
                        "fuzz 'action'; --", json.dumps([
                            {"event": "$pageview", "url": "x.test", "url_matching": "contains"},
                            {"event": "$autocapture", "selector": "div > a.btn",
                             "text": "Click", "text_matching": "contains"}]))
    (cohort_id,), = sql(db, "INSERT INTO insights.cohorts (project_id, name, filters) "
                            "VALUES (%s, %s, %s::jsonb) RETURNING id", project["id"],
                        "fuzz cohort", json.dumps({"properties": {"type": "AND", "values": [
                            {"key": "plan", "value": "pro", "type": "person"}]}}))
    (static_id,), = sql(db, "INSERT INTO insights.cohorts (project_id, name, is_static) "
                            "VALUES (%s, 'fuzz static', true) RETURNING id", project["id"])
    # The other project's action and cohort, named after its secret: naming them from the fuzz
    # project must not reach them.
    (other_action,), = sql(db, "INSERT INTO insights.actions (project_id, name, steps) "
                               "VALUES (%s, %s, %s::jsonb) RETURNING id", other["id"], secret,
                           json.dumps([{"event": "$pageview"}]))
    (other_cohort,), = sql(db, "INSERT INTO insights.cohorts (project_id, name, filters) "
                               "VALUES (%s, %s, %s::jsonb) RETURNING id", other["id"], secret,
                           json.dumps({"properties": {"type": "AND", "values": [
                               {"key": "plan", "value": secret, "type": "person"}]}}))

    canary = f"canary_{uuid.uuid4().hex[:12]}"
    canary_value = random.SystemRandom().randrange(10**8, 10**9)
    sql(db, f"CREATE TABLE public.{canary} (x int)")
    sql(db, f"INSERT INTO public.{canary} VALUES (%s)", canary_value)
    # Owned by the API role, so an injection through the HTTP layer could drop or change it too.
    if sql(db, "SELECT 1 FROM pg_roles WHERE rolname = 'pgi_api'"):
        sql(db, f"ALTER TABLE public.{canary} OWNER TO pgi_api")
    events = sql(db, "SELECT count(*) FROM insights.events WHERE project_id = %s",
                 project["id"])[0][0]
    pg = Pg()
    yield {"project": project, "other_project_id": other["id"], "secret": secret,
           "canary": canary, "canary_value": canary_value,
           "action_id": action_id, "cohort_id": cohort_id, "static_cohort_id": static_id,
           "other_action_id": other_action, "other_cohort_id": other_cohort,
           "events": events, "pg": pg}
    pg.close()
    with psycopg.connect(autocommit=True) as conn:  # a fresh connection: `db` may have dropped
        conn.execute(f"DROP TABLE IF EXISTS public.{canary}")
        for p in (project, other):  # events, persons, keys… go with them (ON DELETE CASCADE)
            conn.execute("DELETE FROM insights.projects WHERE id = %s", (p["id"],))
            conn.execute("DELETE FROM insights.users WHERE id = %s", (p["user_id"],))


def substitute(case, env):
    """The case with its placeholders replaced (also inside JSON encoded as strings). Works on
    the JSON text: cases may nest hundreds of levels deep."""
    case = dict(case)
    body = case.pop("body", None)
    txt = json.dumps(case)
    for name, key in ((ACTION_ID, "action_id"), (COHORT_ID, "cohort_id"),
                      (STATIC_COHORT_ID, "static_cohort_id"),
                      (OTHER_ACTION_ID, "other_action_id"), (OTHER_COHORT_ID, "other_cohort_id")):
        txt = txt.replace(f'"{name}"', str(env[key])).replace(f'\\"{name}\\"', str(env[key]))
    txt = txt.replace(ACTION_ID_STR, str(env["action_id"]))
    txt = txt.replace(OTHER_PROJECT, str(env["other_project_id"]))
    txt = txt.replace(CANARY, env["canary"])
    case = json.loads(txt)
    if body is not None:
        case["body"] = body.replace(CANARY.encode(), env["canary"].encode())
    return case


def check_canary(env):
    for attempt in range(10):
        try:
            with psycopg.connect(autocommit=True) as conn:
                rows = conn.execute(f"SELECT x FROM public.{env['canary']}").fetchall()
            break
        except psycopg.errors.UndefinedTable:
            pytest.fail(f"INJECTION: canary table public.{env['canary']} was dropped")
        except psycopg.OperationalError:
            time.sleep(1 + attempt)
    else:
        pytest.fail("cannot reach the database to check the canary")
    assert rows == [(env["canary_value"],)], f"INJECTION: canary table changed: {rows}"


def check_no_leak(env, text, sent):
    for planted in (env["secret"], str(env["canary_value"])):
        if planted not in sent:
            assert planted not in text, f"LEAK: planted value {planted} in the answer"


# ------------------------------------------------------------------------------------------------
# The test


def _http(env, case):
    p = env["project"]
    headers = {"Authorization": f"Bearer {p['key']}"}
    kind = case["kind"]
    if kind == "http_qs":  # a raw query string
        r = requests.get(f"{BASE_URL}/api/projects/{p['id']}/{case['path']}?{case['qs']}",
                         headers=headers, timeout=60)
        return r.request.url.encode(), r
    if kind == "http_project":
        segment = requests.utils.quote(str(case["project"]), safe="%")
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in case["query"].items()}
        r = requests.get(f"{BASE_URL}/api/projects/{segment}/{case['path']}", params=params,
                         headers=headers, timeout=60)
        return r.request.url.encode(), r
    if kind == "http_query":  # POST /query/ {"query": <node>, "refresh": …}
        data = json.dumps(case["body_json"]).encode()
        headers["Content-Type"] = "application/json"
        return data, requests.post(f"{BASE_URL}/api/projects/{p['id']}/query/", data=data,
                                   headers=headers, timeout=60)
    if kind in ("http_persons_post", "http_persons_get"):
        path = f"/api/projects/{p['id']}/{case.get('persons_path', 'persons/funnel/')}"
        for k in ("limit", "offset"):
            if k in case:
                path += ("&" if "?" in path else "?") + f"{k}={requests.utils.quote(case[k])}"
    else:
        path = f"/api/projects/{p['id']}/{case.get('path', 'insights/funnel/')}"
    if kind in ("http_post", "http_persons_post"):
        body = case["query"]
        if kind == "http_persons_post" and isinstance(body, dict):
            body = dict(body)
            if case.get("step") is not None:
                body["funnel_step"] = case["step"]
            if case.get("breakdown") is not None:
                body["funnel_step_breakdown"] = case["breakdown"]
            body.update(case.get("extra", {}))  # stickiness_days, target_date, path_*_key…
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
        return data, requests.post(BASE_URL + path, data=data, headers=headers, timeout=60)
    if kind in ("http_get", "http_persons_get"):
        params = {k: v if isinstance(v, str) else json.dumps(v)
                  for k, v in case["query"].items()}
        if kind == "http_persons_get":
            if case.get("step") is not None:
                params["funnel_step"] = str(case["step"])
            if case.get("breakdown") is not None:
                params["funnel_step_breakdown"] = case["breakdown"]
            params.update({k: v if isinstance(v, str) else json.dumps(v)
                           for k, v in case.get("extra", {}).items() if v is not None})
        r = requests.get(BASE_URL + path, params=params, headers=headers, timeout=60)
        return r.request.url.encode(), r
    assert kind == "http_raw"
    headers["Content-Type"] = case["content_type"]
    data = case["body"]
    return data, requests.post(BASE_URL + path, data=data, headers=headers, timeout=60)


SQL_JSON = ("funnel_json", "trend_json", "stickiness_json", "lifecycle_json", "paths_json")
SQL_ROWS = {"funnel_rows": "funnel", "stickiness_rows": "stickiness",
            "lifecycle_rows": "lifecycle", "paths_rows": "paths"}
SQL_ACTORS = {"stickiness_actors": "%s::bigint", "lifecycle_actors": "%s, %s",
              "paths_actors": "%s, %s, %s"}


@pytest.mark.parametrize("case", _params())
def test_fuzz(env, case):
    case = substitute(case, env)
    pid = env["project"]["id"]
    kind = case["kind"]
    started = time.monotonic()
    if kind.startswith("http"):
        sent, r = _http(env, case)
        elapsed = time.monotonic() - started
        if kind == "http_project":  # another project, or no project at all
            assert r.status_code in (403, 404), f"HTTP {r.status_code}: {r.text[:500]}"
        else:
            assert r.status_code in (200, 400, 404), f"HTTP {r.status_code}: {r.text[:500]}"
        if r.status_code != 200:
            body = r.json()
            assert set(body) == {"type", "code", "detail", "attr"}, body
            assert isinstance(body["type"], str) and isinstance(body["code"], str), body
            assert isinstance(body["detail"], str) and body["detail"], body
            assert body["attr"] is None or isinstance(body["attr"], str), body
        else:
            r.json()
        check_no_leak(env, r.text, sent.decode("utf-8", "replace"))
    else:
        query = Jsonb(case["query"])
        if kind in SQL_JSON:
            rows, err = env["pg"].run(f"SELECT insights.{kind}(%s, %s)", (pid, query))
        elif kind in SQL_ROWS:
            rows, err = env["pg"].run(f"SELECT * FROM insights.{SQL_ROWS[kind]}(%s, %s)",
                                      (pid, query))
        elif kind in SQL_ACTORS:
            rows, err = env["pg"].run(f"SELECT * FROM insights.{kind}(%s, %s, {SQL_ACTORS[kind]})",
                                      (pid, query, *case["args"]))
        else:
            bd = None if case["breakdown"] is None else Jsonb(case["breakdown"])
            rows, err = env["pg"].run("SELECT * FROM insights.funnel_actors(%s, %s, %s::int, %s)",
                                      (pid, query, case["step"], bd))
        elapsed = time.monotonic() - started
        if err is not None:
            state = getattr(err, "sqlstate", None)
            assert state is not None and state[:2] in ("22", "42"), (
                f"SQLSTATE {state}: {str(err)[:500]}")
            answer = str(err)
        else:
            answer = json.dumps(rows, default=str)
            if kind in SQL_JSON:
                assert set(rows[0][0]) >= {"result", "timezone"}, rows[0][0]
        check_no_leak(env, answer, json.dumps([case["query"], case.get("args")]))
    assert elapsed < CALL_LIMIT_S, f"call took {elapsed:.1f} s"
    check_canary(env)


def test_data_intact_after_fuzzing(db, env):
    """Runs last: the canary and the fuzz project's events are untouched."""
    check_canary(env)
    n = sql(db, "SELECT count(*) FROM insights.events WHERE project_id = %s",
            env["project"]["id"])[0][0]
    assert n == env["events"]
