"""Funnel correlation (docs/funnels.md#correlation): /insights/funnel/correlation/ and
/persons/funnel/correlation/.

One hand-built fixture, with every count and odds ratio computed here by hand:

* funnel `signed up` → `paid`, 14-day window, 2021-05-01 .. 2021-05-20;
* s1..s4 convert (S = 4), f1..f6 enter but do not (F = 6);
* events inside each person's window (after entry; before `paid` for converters, before entry +
  14 days otherwise):
    - `watched video` ({"quality": "hd"}): s1, s2, s3; ({"quality": "sd"}): f1
    - `read docs`: s4, f1, f2, f3, f4
    - `contacted support`: f5
    - `$pageview`: s1, f1
* events outside the windows, which must not count: `late` (s1 after converting, f6 sixteen days
  after entry), `early` (s2 before entering);
* person property `plan`: pro for s1, s2, s3, f5; free for s4, f1..f4; missing for f6.

Odds ratio with a prior of 1: ((s+1)(F−f+1)) / ((S−s+1)(f+1)).
"""

import json

import psycopg
import pytest
import requests
from conftest import api, assert_error, sql

SIGNUP, PAID = "signed up", "paid"
S_TOTAL, F_TOTAL = 4, 6


def odds(s, f, S=S_TOTAL, F=F_TOTAL):
    return ((s + 1) * (F - f + 1)) / ((S - s + 1) * (f + 1))


def ev(distinct_id, event, ts, props=None):
    return {"event": event, "distinct_id": distinct_id, "timestamp": ts.replace(" ", "T") + "Z",
            "properties": dict(props or {})}


def ingest(db, project, events):
    return sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(events))[0][0]


PLAN = {"s1": "pro", "s2": "pro", "s3": "pro", "s4": "free",
        "f1": "free", "f2": "free", "f3": "free", "f4": "free", "f5": "pro"}


def fixture_events():
    evs = []
    for p in ["s1", "s2", "s3", "s4", "f1", "f2", "f3", "f4", "f5", "f6"]:
        props = {"$set": {"plan": PLAN[p]}} if p in PLAN else {}
        evs.append(ev(p, SIGNUP, "2021-05-02 10:00:00", props))
        if p.startswith("s"):
            evs.append(ev(p, PAID, "2021-05-02 12:00:00"))
    for p in ["s1", "s2", "s3"]:
        evs.append(ev(p, "watched video", "2021-05-02 10:30:00", {"quality": "hd", "duration": 5}))
    evs.append(ev("f1", "watched video", "2021-05-03 10:30:00", {"quality": "sd", "duration": 5}))
    for p in ["s4", "f1", "f2", "f3", "f4"]:
        evs.append(ev(p, "read docs", "2021-05-02 11:00:00"))
    evs.append(ev("f5", "contacted support", "2021-05-10 09:00:00"))
    for p in ["s1", "f1"]:
        evs.append(ev(p, "$pageview", "2021-05-02 11:30:00"))
    # Outside the windows.
    evs.append(ev("s1", "late", "2021-05-02 13:00:00"))
    evs.append(ev("f6", "late", "2021-05-18 10:00:00"))
    evs.append(ev("s2", "early", "2021-05-02 09:00:00"))
    return evs


@pytest.fixture
def corr(db, project):
    ingest(db, project, fixture_events())
    return project


def legacy(**kw):
    f = {"insight": "FUNNELS", "date_from": "2021-05-01", "date_to": "2021-05-20",
         "events": [{"id": SIGNUP, "type": "events", "order": 0}, {"id": PAID, "type": "events", "order": 1}],
         "funnel_window_interval": 14, "funnel_window_interval_unit": "day"}
    f.update(kw)
    return f


def encode(params):
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}


def corr_http(project, query, method="POST", prefix="projects", key=None):
    path = f"/api/{prefix}/{project['id']}/insights/funnel/correlation/"
    key = key or project["key"]
    if method == "POST":
        return api("POST", path, key, json=query)
    return api("GET", path, key, params=encode(query))


def corr_sql(db, project, query):
    return sql(db, "SELECT insights.funnel_correlation_json(%s, %s::jsonb)", project["id"], json.dumps(query))[0][0]


def persons_http(project, query, method="GET", key=None, prefix="projects"):
    path = f"/api/{prefix}/{project['id']}/persons/funnel/correlation/"
    key = key or project["key"]
    if method == "POST":
        return api("POST", path, key, json=query)
    return api("GET", path, key, params=encode(query))


def names(body):
    return {min(p["distinct_ids"]) for p in body["results"][0]["people"]}


def people_at(project, url, key=None):
    r = api("GET", url, key or project["key"])
    assert r.status_code == 200, r.text
    return names(r.json())


def summary(result):
    return [(e["event"]["event"], e["success_count"], e["failure_count"], e["odds_ratio"], e["correlation_type"])
            for e in result["events"]]


# ---------------------------------------------------------------------------------------------
# Event correlation
# ---------------------------------------------------------------------------------------------

EVENTS_EXPECTED = [
    # success candidates, odds descending
    ("watched video", 3, 1, odds(3, 1), "success"),   # (4·6)/(2·2) = 6.0
    # failure candidates, odds ascending
    ("read docs", 1, 4, odds(1, 4), "failure"),       # (2·3)/(4·5) = 0.3
    ("contacted support", 0, 1, odds(0, 1), "failure"),  # (1·6)/(5·2) = 0.6
]


def test_event_correlation_counts_and_odds(db, corr):
    r = corr_http(corr, legacy(funnel_correlation_exclude_event_names=["$pageview"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"result", "last_refresh", "is_cached"}
    result = body["result"]
    assert result["skewed"] is False
    assert summary(result) == EVENTS_EXPECTED
    assert [e[3] for e in EVENTS_EXPECTED] == [6.0, 0.3, 0.6]
    item = result["events"][0]
    assert item["event"] == {"event": "watched video", "properties": {}, "elements": []}
    assert set(item) == {"event", "success_count", "failure_count", "odds_ratio", "correlation_type",
                         "success_people_url", "failure_people_url"}


def test_event_correlation_without_exclusion_includes_pageview(db, corr):
    result = corr_sql(db, corr, legacy())["result"]
    # $pageview: s = 1, f = 1 → (2·6)/(4·2) = 1.5, a success candidate below watched video.
    assert summary(result) == [EVENTS_EXPECTED[0], ("$pageview", 1, 1, odds(1, 1), "success")] + EVENTS_EXPECTED[1:]
    assert odds(1, 1) == 1.5
    # Funnel steps and events outside the windows are never candidates.
    assert not {SIGNUP, PAID, "late", "early"} & {e["event"]["event"] for e in result["events"]}


def test_exclude_several_event_names(db, corr):
    result = corr_sql(db, corr, legacy(funnel_correlation_exclude_event_names=["$pageview", "read docs"]))["result"]
    assert summary(result) == [EVENTS_EXPECTED[0], EVENTS_EXPECTED[2]]


def test_get_post_sql_and_node_forms_agree(db, corr):
    q = legacy(funnel_correlation_exclude_event_names=["$pageview"], funnel_correlation_type="events")
    get = corr_http(corr, q, method="GET")
    post = corr_http(corr, q)
    env = corr_http(corr, q, prefix="environments")
    for r in (get, post, env):
        assert r.status_code == 200, r.text
        assert summary(r.json()["result"]) == EVENTS_EXPECTED
    node = {"kind": "FunnelCorrelationQuery", "funnelCorrelationType": "events",
            "funnelCorrelationExcludeEventNames": ["$pageview"],
            "source": {"kind": "FunnelsActorsQuery", "funnelStep": 1,
                       "source": {"kind": "FunnelsQuery",
                                  "series": [{"kind": "EventsNode", "event": SIGNUP},
                                             {"kind": "EventsNode", "event": PAID}],
                                  "dateRange": {"date_from": "2021-05-01", "date_to": "2021-05-20"},
                                  "funnelsFilter": {"funnelWindowInterval": 14, "funnelWindowIntervalUnit": "day"}}}}
    assert summary(corr_sql(db, corr, node)["result"]) == EVENTS_EXPECTED
    r = corr_http(corr, node)
    assert r.status_code == 200, r.text
    assert summary(r.json()["result"]) == EVENTS_EXPECTED


def test_short_window_drops_late_failures(db, corr):
    # A 1-day window: f5's `contacted support` (8 days after entry) and f1's `watched video`
    # (24.5 h after entry) fall outside it; converters are bounded by their conversion anyway.
    result = corr_sql(db, corr, legacy(funnel_window_interval=1,
                                       funnel_correlation_exclude_event_names=["$pageview"]))["result"]
    assert summary(result) == [
        ("watched video", 3, 0, odds(3, 0), "success"),  # (4·7)/(2·1) = 14.0
        ("read docs", 1, 4, odds(1, 4), "failure"),
    ]
    assert odds(3, 0) == 14.0


def test_skewed_and_empty_totals(db, project):
    # Nobody fails: no candidates, skewed.
    ingest(db, project, [ev("a", SIGNUP, "2021-05-02 10:00:00"), ev("a", "x", "2021-05-02 10:01:00"),
                         ev("a", PAID, "2021-05-02 10:02:00")])
    assert corr_sql(db, project, legacy())["result"] == {"events": [], "skewed": True}
    # 1 success against 11 failures: skewed, but still scored.
    evs = [ev(f"f{i}", SIGNUP, "2021-05-02 10:00:00") for i in range(11)]
    evs += [ev("f0", "x", "2021-05-02 10:05:00")]
    ingest(db, project, evs)
    result = corr_sql(db, project, legacy())["result"]
    assert result["skewed"] is True
    # x: s = 1 (a), f = 1 (f0); S = 1, F = 11 → (2·11)/(1·2) = 11.0.
    assert summary(result) == [("x", 1, 1, odds(1, 1, 1, 11), "success")]
    assert odds(1, 1, 1, 11) == 11.0
    # No funnel entries at all: empty and skewed.
    assert corr_sql(db, project, legacy(date_from="2020-01-01", date_to="2020-01-10"))["result"] == \
        {"events": [], "skewed": True}


def test_insignificant_candidates_are_dropped_and_lists_are_limited(db, project):
    # 30 converters and 30 drop-offs: candidates need s + f ≥ min(25, 0.02 · 60) = 1.2.
    evs = []
    for i in range(30):
        evs += [ev(f"s{i}", SIGNUP, "2021-05-02 10:00:00"), ev(f"s{i}", PAID, "2021-05-02 12:00:00"),
                ev(f"f{i}", SIGNUP, "2021-05-02 10:00:00")]
    evs.append(ev("s0", "rare", "2021-05-02 11:00:00"))  # s + f = 1: dropped
    # 12 success candidates: good_k done by k + 2 converters (2..13), no drop-off.
    for k in range(12):
        evs += [ev(f"s{i}", f"good_{k:02}", "2021-05-02 11:00:00") for i in range(k + 2)]
    # 12 failure candidates: bad_k done by k + 2 drop-offs.
    for k in range(12):
        evs += [ev(f"f{i}", f"bad_{k:02}", "2021-05-02 11:00:00") for i in range(k + 2)]
    ingest(db, project, evs)
    result = corr_sql(db, project, legacy())["result"]
    assert result["skewed"] is False
    got = summary(result)
    assert len(got) == 20
    expected_good = [(f"good_{k:02}", k + 2, 0, odds(k + 2, 0, 30, 30), "success") for k in range(11, 1, -1)]
    expected_bad = [(f"bad_{k:02}", 0, k + 2, odds(0, k + 2, 30, 30), "failure") for k in range(11, 1, -1)]
    assert got == expected_good + expected_bad
    assert "rare" not in {g[0] for g in got}


def test_action_step_events_are_not_candidates(db, project):
    action = sql(db, "INSERT INTO insights.actions (project_id, name, steps) VALUES (%s, 'bought', %s::jsonb) "
                 "RETURNING id", project["id"], json.dumps([{"event": "purchase"}]))[0][0]
    ingest(db, project, [
        ev("a", SIGNUP, "2021-05-02 10:00:00"), ev("a", "purchase", "2021-05-02 10:05:00", {"x": "1"}),
        ev("a", "y", "2021-05-02 10:01:00"),
        ev("b", SIGNUP, "2021-05-02 10:00:00"), ev("b", "purchase", "2021-05-02 10:05:00"),  # not x=1: no step 2
        ev("b", "y", "2021-05-02 10:01:00"),
    ])
    q = {"insight": "FUNNELS", "date_from": "2021-05-01", "date_to": "2021-05-20",
         "events": [{"id": SIGNUP, "order": 0}],
         "actions": [{"id": action, "type": "actions", "order": 1,
                      "properties": [{"key": "x", "value": "1", "type": "event"}]}]}
    result = corr_sql(db, project, q)["result"]
    # S = 1 (a), F = 1 (b); y: s = 1, f = 1 → 1.0 (failure); `purchase` is the action's event.
    assert summary(result) == [("y", 1, 1, 1.0, "failure")]


# ---------------------------------------------------------------------------------------------
# Event property correlation
# ---------------------------------------------------------------------------------------------


def test_event_with_properties(db, corr):
    q = legacy(funnel_correlation_type="event_with_properties", funnel_correlation_event_names=["watched video"])
    r = corr_http(corr, q)
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    # quality=hd: s = 3, f = 0 → (4·7)/(2·1) = 14.0. quality=sd (s + f = 1 ≤ 2) is dropped; the
    # numeric `duration` is not a string property.
    assert summary(result) == [("watched video::quality::hd", 3, 0, 14.0, "success")]
    assert result["events"][0]["event"] == {"event": "watched video::quality::hd", "properties": {}, "elements": []}
    # Its people URL lists the three converters.
    assert people_at(corr, result["events"][0]["success_people_url"]) == {"s1", "s2", "s3"}
    assert people_at(corr, result["events"][0]["failure_people_url"]) == set()
    # Excluded keys disappear.
    q["funnel_correlation_event_exclude_property_names"] = ["quality"]
    assert corr_sql(db, corr, q)["result"] == {"events": [], "skewed": False}


def test_event_with_properties_autocapture_elements(db, project):
    def click(p, ts, text):
        return ev(p, "$autocapture", ts, {"$event_type": "click", "$elements": [
            {"tag_name": "button", "$el_text": text, "attr_class": ["btn"], "nth_child": 1, "nth_of_type": 1,
             "attributes": {"attr__class": "btn"}},
            {"tag_name": "div", "nth_child": 2, "nth_of_type": 1}]})

    evs = []
    for p in ["s1", "s2", "s3", "s4", "f1", "f2"]:
        evs.append(ev(p, SIGNUP, "2021-05-02 10:00:00"))
        if p.startswith("s"):
            evs.append(ev(p, PAID, "2021-05-02 12:00:00"))
    evs += [click(p, "2021-05-02 11:00:00", "Pay") for p in ["s1", "s2", "s3"]]
    evs += [click("f1", "2021-05-02 11:00:00", "Cancel")]
    ingest(db, project, evs)
    (chain,) = sql(db, "SELECT DISTINCT elements_chain FROM insights.events WHERE project_id = %s "
                   "AND event = '$autocapture' AND properties->'$elements'->0->>'$el_text' = 'Pay'", project["id"])[0]
    q = legacy(funnel_correlation_type="event_with_properties", funnel_correlation_event_names=["$autocapture"])
    result = corr_sql(db, project, q)["result"]
    # S = 4, F = 2. The Pay click: s = 3, f = 0 → (4·3)/(2·1) = 6.0; the Cancel click has s + f = 1 ≤ 2.
    name = f"$autocapture::elements_chain::click__~~__{chain}"
    assert summary(result) == [(name, 3, 0, odds(3, 0, 4, 2), "success")]
    assert odds(3, 0, 4, 2) == 6.0
    event = result["events"][0]["event"]
    assert event["properties"] == {"$event_type": "click"}
    assert [(e["tag_name"], e["text"], e["attr_class"], e["nth_child"], e["order"]) for e in event["elements"]] == [
        ("button", "Pay", ["btn"], 1, 0), ("div", None, None, 2, 1)]
    assert people_at(project, result["events"][0]["success_people_url"]) == {"s1", "s2", "s3"}
    assert people_at(project, result["events"][0]["failure_people_url"]) == set()


# ---------------------------------------------------------------------------------------------
# Person property correlation
# ---------------------------------------------------------------------------------------------

PROPS_EXPECTED = [
    ("plan::pro", 3, 1, odds(3, 1), "success"),    # s1, s2, s3 / f5 → 6.0
    ("plan::free", 1, 4, odds(1, 4), "failure"),   # s4 / f1..f4 → 0.3
    ("plan::", 0, 1, odds(0, 1), "failure"),       # f6 has no plan → 0.6
]


def test_person_property_correlation(db, corr):
    r = corr_http(corr, legacy(funnel_correlation_type="properties", funnel_correlation_names=["plan"]),
                  method="GET")
    assert r.status_code == 200, r.text
    assert summary(r.json()["result"]) == PROPS_EXPECTED


def test_person_property_all_and_exclude_names(db, corr):
    all_ = corr_sql(db, corr, legacy(funnel_correlation_type="properties", funnel_correlation_names=["$all"]))
    got = [e for e in summary(all_["result"]) if e[0].startswith("plan::")]
    # With $all only actors that have the property produce a pair (no "plan::" for f6).
    assert got == PROPS_EXPECTED[:2]
    excluded = corr_sql(db, corr, legacy(funnel_correlation_type="properties", funnel_correlation_names=["$all"],
                                         funnel_correlation_exclude_names=["plan"]))
    assert not [e for e in summary(excluded["result"]) if e[0].startswith("plan::")]


# ---------------------------------------------------------------------------------------------
# Persons behind a correlation
# ---------------------------------------------------------------------------------------------


def test_event_people_urls(db, corr):
    result = corr_http(corr, legacy(funnel_correlation_exclude_event_names=["$pageview"])).json()["result"]
    by_name = {e["event"]["event"]: e for e in result["events"]}
    assert people_at(corr, by_name["watched video"]["success_people_url"]) == {"s1", "s2", "s3"}
    assert people_at(corr, by_name["watched video"]["failure_people_url"]) == {"f1"}
    assert people_at(corr, by_name["read docs"]["success_people_url"]) == {"s4"}
    assert people_at(corr, by_name["read docs"]["failure_people_url"]) == {"f1", "f2", "f3", "f4"}
    assert "/persons/funnel/correlation/" in by_name["read docs"]["failure_people_url"]


def test_property_people_urls(db, corr):
    result = corr_sql(db, corr, legacy(funnel_correlation_type="properties",
                                       funnel_correlation_names=["plan"]))["result"]
    by_name = {e["event"]["event"]: e for e in result["events"]}
    assert people_at(corr, by_name["plan::pro"]["success_people_url"]) == {"s1", "s2", "s3"}
    assert people_at(corr, by_name["plan::pro"]["failure_people_url"]) == {"f5"}
    assert people_at(corr, by_name["plan::free"]["failure_people_url"]) == {"f1", "f2", "f3", "f4"}


def test_persons_endpoint_forms_and_paging(db, corr):
    entity = {"id": "read docs", "type": "events"}
    r = persons_http(corr, legacy(funnel_correlation_person_entity=entity))
    assert r.status_code == 200, r.text
    body = r.json()
    # Without funnel_correlation_person_converted: converters and drop-offs.
    assert names(body) == {"s4", "f1", "f2", "f3", "f4"}
    assert body["results"][0]["count"] == 5 and body["missing_persons"] == 0 and body["next"] is None
    person = body["results"][0]["people"][0]
    assert {"id", "uuid", "distinct_ids", "properties"} <= set(person)
    # POST, /environments/, and paging.
    q = legacy(funnel_correlation_person_entity=entity, funnel_correlation_person_converted="false")
    assert names(persons_http(corr, q, method="POST").json()) == {"f1", "f2", "f3", "f4"}
    assert names(persons_http(corr, q, prefix="environments").json()) == {"f1", "f2", "f3", "f4"}
    page = persons_http(corr, {**q, "limit": 3}).json()
    assert page["results"][0]["count"] == 3 and page["next"]
    rest = requests.get(page["next"], headers={"Authorization": f"Bearer {corr['key']}"}, timeout=60).json()
    assert names(page) | names(rest) == {"f1", "f2", "f3", "f4"}
    # PostHog's own page parameters.
    page = persons_http(corr, {**q, "funnel_correlation_person_limit": 2, "funnel_correlation_person_offset": 1}).json()
    assert page["results"][0]["count"] == 2 and names(page) < {"f1", "f2", "f3", "f4"}
    # Event property filter on the entity.
    hd = {"id": "watched video", "type": "events",
          "properties": [{"key": "quality", "value": "sd", "type": "event", "operator": "exact"}]}
    assert names(persons_http(corr, legacy(funnel_correlation_person_entity=hd)).json()) == {"f1"}
    # Property form.
    q = legacy(funnel_correlation_type="properties", funnel_correlation_person_converted="true",
               funnel_correlation_property_values=[{"key": "plan", "value": "free", "type": "person",
                                                    "operator": "exact"}])
    assert names(persons_http(corr, q).json()) == {"s4"}
    # SQL form.
    ids = sql(db, "SELECT count(*) FROM insights.funnel_correlation_actors(%s, %s::jsonb)", corr["id"],
              json.dumps(legacy(funnel_correlation_person_entity=entity, funnel_correlation_person_converted=True)))
    assert ids == [(1,)]


# ---------------------------------------------------------------------------------------------
# Bad input and permissions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra, attr", [
    ({"funnel_correlation_type": "bogus"}, "funnel_correlation_type"),
    ({"funnel_correlation_type": "properties"}, "funnel_correlation_names"),
    ({"funnel_correlation_type": "event_with_properties"}, "funnel_correlation_event_names"),
    ({"funnel_correlation_names": [{"a": 1}], "funnel_correlation_type": "properties"}, "funnel_correlation_names"),
    ({"funnel_step": "0"}, "funnel_step"),
    ({"funnel_window_interval_unit": "fortnight"}, "funnel_window_interval_unit"),
], ids=["type", "names-missing", "event-names-missing", "names-not-strings", "funnel-step", "window-unit"])
def test_bad_input_is_400(corr, extra, attr):
    for method in ("GET", "POST"):
        body = assert_error(corr_http(corr, legacy(**extra), method=method), 400, "validation_error",
                            "invalid_input", attr=attr)
        assert body["detail"]


def test_bad_funnel_and_body_are_400(db, corr):
    r = corr_http(corr, {"insight": "FUNNELS", "events": [{"id": SIGNUP, "order": 0}],
                         "exclusions": [{"id": "x", "funnel_from_step": 1, "funnel_to_step": 1}]})
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "validation_error"
    r = api("POST", f"/api/projects/{corr['id']}/insights/funnel/correlation/", corr["key"], data=b"{bad",
            headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_request", "parse_error")
    r = corr_http(corr, {"kind": "TrendsQuery", "series": []})
    assert_error(r, 400, "validation_error", "invalid_input", attr="kind")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        sql(db, "SELECT insights.funnel_correlation_json(%s, %s::jsonb)", corr["id"],
            json.dumps(legacy(funnel_correlation_type="nope")))


@pytest.mark.parametrize("extra, attr", [
    ({}, "funnel_correlation_person_entity"),
    ({"funnel_correlation_type": "properties"}, "funnel_correlation_property_values"),
    ({"funnel_correlation_person_entity": {"id": "x"}, "funnel_correlation_person_converted": "maybe"},
     "funnel_correlation_person_converted"),
    ({"funnel_correlation_person_entity": 7}, "funnel_correlation_person_entity"),
    ({"funnel_correlation_type": "properties",
      "funnel_correlation_property_values": [{"key": "k", "value": "v", "type": "event"}]},
     "funnel_correlation_property_values"),
], ids=["no-entity", "no-property-values", "converted", "entity-type", "event-filter-in-property-values"])
def test_persons_bad_input_is_400(corr, extra, attr):
    assert_error(persons_http(corr, legacy(**extra)), 400, "validation_error", "invalid_input", attr=attr)


def test_method_not_allowed(corr):
    r = api("DELETE", f"/api/projects/{corr['id']}/insights/funnel/correlation/", corr["key"])
    assert_error(r, 405, "invalid_request", "method_not_allowed")


def test_scopes(db, make_project):
    p = make_project(scopes=["person:read"])
    ingest(db, p, fixture_events())
    body = assert_error(corr_http(p, legacy()), 403, "authentication_error", "permission_denied")
    assert body["detail"] == "API key missing required scope 'insight:read'"
    p2 = make_project(scopes=["insight:read"])
    ingest(db, p2, fixture_events())
    r = corr_http(p2, legacy())
    assert r.status_code == 200, r.text
    url = r.json()["result"]["events"][0]["success_people_url"]
    body = assert_error(api("GET", url, p2["key"]), 403, "authentication_error", "permission_denied")
    assert body["detail"] == "API key missing required scope 'person:read'"
    # Another project's key, and no key.
    assert_error(corr_http(p2, legacy(), key=p["key"]), 403, "authentication_error", "permission_denied")
    r = api("GET", f"/api/projects/{p2['id']}/insights/funnel/correlation/")
    assert_error(r, 401, "authentication_error", "not_authenticated")


# ---------------------------------------------------------------------------------------------
# Population variants: funnel_step, three steps, strict and unordered funnels, groups
# ---------------------------------------------------------------------------------------------


def three_step_events():
    """a → b → c: p1, p2 reach c; p3, p4 stop at b; p5, p6 stop at a. `x` done by p1, p3, p5."""
    evs = []
    for p, n in [("p1", 3), ("p2", 3), ("p3", 2), ("p4", 2), ("p5", 1), ("p6", 1)]:
        for i, step in enumerate(["a", "b", "c"][:n]):
            evs.append(ev(p, step, f"2021-05-02 1{i}:00:00"))
    for p in ["p1", "p3", "p5"]:
        evs.append(ev(p, "x", "2021-05-02 10:30:00"))
    return evs


def three_steps(**kw):
    return legacy(events=[{"id": s, "order": i} for i, s in enumerate(["a", "b", "c"])], **kw)


def test_funnel_step_selects_the_population(db, project):
    ingest(db, project, three_step_events())
    # Everyone who entered: S = 2, F = 4; x: s = 1 (p1), f = 2 (p3, p5) → (2·3)/(2·3) = 1.0.
    assert summary(corr_sql(db, project, three_steps())["result"]) == [("x", 1, 2, 1.0, "failure")]
    assert odds(1, 2, 2, 4) == 1.0
    # funnel_step=2: those who reached b: S = 2, F = 2 (p3, p4); x: s = 1, f = 1 → (2·2)/(2·2) = 1.0.
    assert summary(corr_sql(db, project, three_steps(funnel_step=2))["result"]) == [("x", 1, 1, 1.0, "failure")]
    # funnel_step=-2: only those who dropped before b: nobody converts → empty and skewed.
    assert corr_sql(db, project, three_steps(funnel_step=-2))["result"] == {"events": [], "skewed": True}
    # The persons endpoint uses the same population.
    r = persons_http(project, three_steps(funnel_step=2, funnel_correlation_person_entity={"id": "x"}))
    assert names(r.json()) == {"p1", "p3"}


@pytest.mark.parametrize("order", ["strict", "unordered"])
def test_strict_and_unordered_funnels(db, project, order):
    ingest(db, project, three_step_events())
    # In a strict funnel, p1's x between a and b breaks the chain: p1 stops at a (F = 5, S = 1).
    result = corr_sql(db, project, three_steps(funnel_order_type=order))["result"]
    if order == "strict":
        # x: s = 0, f = 3 → (1·3)/(2·4) = 0.375.
        assert summary(result) == [("x", 0, 3, odds(0, 3, 1, 5), "failure")]
        assert odds(0, 3, 1, 5) == 0.375
    else:
        assert summary(result) == [("x", 1, 2, 1.0, "failure")]


def test_group_aggregation(db, project):
    def grp(key, industry):
        return ev("admin", "$groupidentify", "2021-05-01 00:00:00", {"$group_type": "organization",
                                                                    "$group_key": key,
                                                                    "$group_set": {"industry": industry}})

    def e(did, name, ts, org):
        return ev(did, name, ts, {"$groups": {"organization": org}})

    ingest(db, project, [
        grp("org:1", "finance"), grp("org:2", "tech"), grp("org:3", "tech"),
        e("u1", "a", "2021-05-02 10:00:00", "org:1"), e("u2", "x", "2021-05-02 10:30:00", "org:1"),
        e("u1", "b", "2021-05-02 11:00:00", "org:1"),
        e("u3", "a", "2021-05-02 10:00:00", "org:2"), e("u3", "x", "2021-05-02 10:30:00", "org:2"),
        e("u4", "a", "2021-05-02 10:00:00", "org:3"),
    ])
    q = legacy(events=[{"id": "a", "order": 0}, {"id": "b", "order": 1}], aggregation_group_type_index=0)
    # Groups: org:1 converts (S = 1); org:2, org:3 do not (F = 2). x: s = 1, f = 1 → (2·2)/(1·2) = 2.0.
    assert summary(corr_sql(db, project, q)["result"]) == [("x", 1, 1, 2.0, "success")]
    props = corr_sql(db, project, {**q, "funnel_correlation_type": "properties",
                                   "funnel_correlation_names": ["industry"]})["result"]
    # industry=finance: s = 1, f = 0 → (2·3)/(1·1) = 6.0; tech: s = 0, f = 2 → (1·1)/(2·3).
    assert summary(props) == [("industry::finance", 1, 0, 6.0, "success"),
                              ("industry::tech", 0, 2, odds(0, 2, 1, 2), "failure")]
    r = persons_http(project, {**q, "funnel_correlation_person_entity": {"id": "x"},
                               "funnel_correlation_person_converted": "false"})
    assert r.status_code == 200, r.text
    people = r.json()["results"][0]["people"]
    assert [(p["type"], p["group_key"]) for p in people] == [("group", "org:2")]


# ---------------------------------------------------------------------------------------------
# Randomised cross-check against a reference written here
# ---------------------------------------------------------------------------------------------


def test_random_data_matches_reference(db, project):
    import random
    from datetime import datetime, timedelta

    rnd = random.Random(20211)
    start, window = datetime(2021, 5, 2), timedelta(days=1)
    evs, people = [], {}
    for i in range(80):
        p = f"u{i}"
        t0 = start + timedelta(minutes=rnd.randrange(0, 6 * 24 * 60))
        paid = t0 + timedelta(minutes=rnd.randrange(1, 2 * 24 * 60)) if rnd.random() < 0.5 else None
        evs.append(ev(p, SIGNUP, t0.strftime("%Y-%m-%d %H:%M:%S")))
        if paid:
            evs.append(ev(p, PAID, paid.strftime("%Y-%m-%d %H:%M:%S")))
        others = []
        for _ in range(rnd.randrange(0, 6)):
            t = t0 + timedelta(minutes=rnd.randrange(-600, 3 * 24 * 60))
            name = rnd.choice(["e1", "e2", "e3", "e4", "e5"])
            others.append((name, t))
            evs.append(ev(p, name, t.strftime("%Y-%m-%d %H:%M:%S")))
        converted = paid is not None and paid <= t0 + window
        end = paid if converted else t0 + window
        people[p] = (converted, {n for n, t in others if t0 < t < end})
    ingest(db, project, evs)

    S = sum(1 for c, _ in people.values() if c)
    F = len(people) - S
    expected = []
    for name in ["e1", "e2", "e3", "e4", "e5"]:
        s = sum(1 for c, seen in people.values() if c and name in seen)
        f = sum(1 for c, seen in people.values() if not c and name in seen)
        if s + f == 0 or s + f < min(25, 0.02 * (S + F)):
            continue
        o = odds(s, f, S, F)
        expected.append((name, s, f, o, "success" if o > 1 else "failure"))
    expected = (sorted([e for e in expected if e[4] == "success"], key=lambda e: (-e[3], e[0]))
                + sorted([e for e in expected if e[4] == "failure"], key=lambda e: (e[3], e[0])))
    q = legacy(funnel_window_interval=1)
    result = corr_sql(db, project, q)["result"]
    assert result["skewed"] == (S / F > 10 or F / S > 10)
    assert summary(result) == expected
    for item in result["events"]:
        name = item["event"]["event"]
        for converted, url in ((True, item["success_people_url"]), (False, item["failure_people_url"])):
            want = {p for p, (c, seen) in people.items() if c == converted and name in seen}
            assert people_at(project, url) == want, (name, converted)


# ---------------------------------------------------------------------------------------------
# Odd input never makes a server error
# ---------------------------------------------------------------------------------------------

ODD_VALUES = ["", "null", "[]", "{}", "[1,2]", "true", "-5", "99999999999999999999", "\u0000", "'; DROP TABLE x; --",
              "[\"$all\"]", "{\"id\": null}", "{\"id\": [1]}", "[{\"key\": null}]", "[{\"type\": \"cohort\", \"value\": 999}]"]
ODD_KEYS = ["funnel_correlation_type", "funnel_correlation_names", "funnel_correlation_exclude_names",
            "funnel_correlation_event_names", "funnel_correlation_exclude_event_names",
            "funnel_correlation_event_exclude_property_names", "funnel_correlation_person_entity",
            "funnel_correlation_property_values", "funnel_correlation_person_converted", "funnel_step",
            "aggregation_group_type_index"]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_values_never_500(corr, key):
    for value in ODD_VALUES:
        for typ in ("events", "properties", "event_with_properties"):
            q = legacy(funnel_correlation_type=typ, funnel_correlation_names=["plan"],
                       funnel_correlation_event_names=["watched video"],
                       funnel_correlation_person_entity={"id": "read docs"},
                       funnel_correlation_property_values=[{"key": "plan", "value": "pro", "type": "person"}])
            q[key] = value
            for r in (corr_http(corr, q, method="GET"), persons_http(corr, q)):
                assert r.status_code in (200, 400), (key, value, typ, r.status_code, r.text)
                if r.status_code == 400:
                    assert r.json()["type"] in ("validation_error", "invalid_request"), r.text


def test_node_actors_query_and_plain_name_parameter(db, corr):
    source = {"kind": "FunnelsQuery",
              "series": [{"kind": "EventsNode", "event": SIGNUP}, {"kind": "EventsNode", "event": PAID}],
              "dateRange": {"date_from": "2021-05-01", "date_to": "2021-05-20"}}
    actors = {"kind": "FunnelCorrelationActorsQuery", "funnelCorrelationPersonConverted": True,
              "funnelCorrelationPersonEntity": {"kind": "EventsNode", "event": "watched video"},
              "source": {"kind": "FunnelCorrelationQuery", "funnelCorrelationType": "events",
                         "source": {"kind": "FunnelsActorsQuery", "funnelStep": 1, "source": source}}}
    r = persons_http(corr, actors, method="POST")
    assert r.status_code == 200, r.text
    assert names(r.json()) == {"s1", "s2", "s3"}
    # A plain (not JSON-encoded) name in a GET query string is one name.
    r = api("GET", f"/api/projects/{corr['id']}/insights/funnel/correlation/", corr["key"],
            params={**encode(legacy()), "funnel_correlation_type": "properties", "funnel_correlation_names": "plan"})
    assert r.status_code == 200, r.text
    assert summary(r.json()["result"]) == PROPS_EXPECTED


def test_property_persons_with_cohort_filters(db, corr):
    (dynamic,), = sql(db, "INSERT INTO insights.cohorts (project_id, name, filters) VALUES (%s, 'pro', %s::jsonb) "
                          "RETURNING id", corr["id"], json.dumps({"properties": {"type": "AND", "values": [
                              {"key": "plan", "value": "pro", "type": "person"}]}}))
    (static,), = sql(db, "INSERT INTO insights.cohorts (project_id, name, is_static) VALUES (%s, 'st', true) "
                         "RETURNING id", corr["id"])
    sql(db, "INSERT INTO insights.cohort_people (cohort_id, person_id) SELECT %s, person_id "
            "FROM insights.person_distinct_ids WHERE project_id = %s AND distinct_id IN ('s4', 'f2')", static, corr["id"])
    for cohort, converted, expected in [(dynamic, "false", {"f5"}), (dynamic, "true", {"s1", "s2", "s3"}),
                                        (static, "false", {"f2"})]:
        q = legacy(funnel_correlation_type="properties", funnel_correlation_person_converted=converted,
                   funnel_correlation_property_values=[{"key": "id", "value": cohort, "type": "cohort"}])
        r = persons_http(corr, q)
        assert r.status_code == 200, r.text
        assert names(r.json()) == expected
