"""Autocapture elements (issue 16): the chain store fed by ingestion, and PostHog's elements API
(elements/, elements/:id/, elements/stats/, elements/values/). docs/api.md#elements."""

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest

from conftest import api, assert_error, sql

# What posthog-js sends as `$elements` for a click on <a> inside <div> inside <body>.
JS_ELEMENTS = [
    {"tag_name": "a", "$el_text": 'Pay "now"', "attr__href": "/pay;x", "attr__class": "btn primary",
     "attr__id": "pay", "nth_child": 1, "nth_of_type": 2, "classes": ["btn", "primary"]},
    {"tag_name": "div", "attr__class": "md:flex", "nth_child": 3, "nth_of_type": 1},
    {"tag_name": "body", "nth_child": 2, "nth_of_type": 1},
]
# The same chain as PostHog renders it (elements_to_string): sorted keys, `"` escaped.
CHAIN = ('a.btn.primary:attr__class="btn primary"attr__href="/pay;x"attr__id="pay"attr_id="pay"'
         'href="/pay;x"nth-child="1"nth-of-type="2"text="Pay \\"now\\"";'
         'div.md:flex:attr__class="md:flex"nth-child="3"nth-of-type="1";'
         'body:nth-child="2"nth-of-type="1"')
RAGE_CHAIN = 'button:nth-child="1"nth-of-type="1"text="Go";form:nth-child="1"nth-of-type="1"'
BROKEN = 'x:text="unterminated;;"a'

ELEMENTS = [
    {"text": 'Pay "now"', "tag_name": "a", "attr_class": ["btn", "primary"], "href": "/pay;x",
     "attr_id": "pay", "nth_child": 1, "nth_of_type": 2,
     "attributes": {"attr__class": "btn primary", "attr__href": "/pay;x", "attr__id": "pay"}, "order": 0},
    {"text": None, "tag_name": "div", "attr_class": ["md:flex"], "href": None, "attr_id": None,
     "nth_child": 3, "nth_of_type": 1, "attributes": {"attr__class": "md:flex"}, "order": 1},
    {"text": None, "tag_name": "body", "attr_class": None, "href": None, "attr_id": None,
     "nth_child": 2, "nth_of_type": 1, "attributes": {}, "order": 2},
]


def element_group_hash(elements):
    """PostHog's ElementGroup.hash, computed independently of the server."""
    return hashlib.md5(json.dumps(elements, sort_keys=True, default=str).encode()).hexdigest()


def iso(days_ago=0):
    t = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return t.isoformat()


def capture(project, events):
    r = api("POST", "/batch/", json={"api_key": project["token"], "batch": events})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": 1}


@pytest.fixture
def clicks(project, db):
    """4 autocaptures of CHAIN (3 as $elements, 1 as the chain string), 2 rage clicks, a broken
    chain, a $pageview with CHAIN, one old autocapture, one by a test account."""
    ev = []
    for i in range(3):
        ev.append({"event": "$autocapture", "distinct_id": f"u{i}", "timestamp": iso(1),
                   "properties": {"$elements": JS_ELEMENTS, "$event_type": "click"}})
    ev.append({"event": "$autocapture", "distinct_id": "u0", "timestamp": iso(2),
               "properties": {"$elements_chain": CHAIN}})
    ev.append({"event": "$rageclick", "distinct_id": "u1", "timestamp": iso(1),
               "properties": {"$elements_chain": RAGE_CHAIN}})
    ev.append({"event": "$rageclick", "distinct_id": "u2", "timestamp": iso(3),
               "properties": {"$elements_chain": RAGE_CHAIN}})
    ev.append({"event": "$autocapture", "distinct_id": "u1", "timestamp": iso(1),
               "properties": {"$elements_chain": BROKEN}})
    ev.append({"event": "$pageview", "distinct_id": "u1", "timestamp": iso(1),
               "properties": {"$elements_chain": CHAIN}})
    ev.append({"event": "$autocapture", "distinct_id": "u1", "timestamp": iso(10),
               "properties": {"$elements_chain": CHAIN}})
    ev.append({"event": "$autocapture", "distinct_id": "tester", "timestamp": iso(1),
               "properties": {"$elements_chain": RAGE_CHAIN, "$set": {"email": "t@test.com"}}})
    capture(project, ev)
    sql(db, "UPDATE insights.projects SET test_account_filters = %s::jsonb WHERE id = %s",
        json.dumps([{"key": "email", "value": "@test.com", "operator": "not_icontains", "type": "person"}]),
        project["id"])
    return project


def stats(project, query="", key=None, prefix="projects"):
    return api("GET", f"/api/{prefix}/{project['id']}/elements/stats/{query}", key or project["key"])


def test_ingestion_renders_and_shares_chains(clicks, db):
    chains = sql(db, "SELECT DISTINCT elements_chain FROM insights.events WHERE project_id = %s "
                     "AND event = '$autocapture' AND distinct_id IN ('u0', 'u2')", clicks["id"])
    assert chains == [(CHAIN,)]
    store = sql(db, "SELECT hash, chain FROM insights.element_chains WHERE project_id = %s ORDER BY chain",
                clicks["id"])
    # One row per distinct chain, whatever the number of events or event types carrying it.
    assert sorted(c for _, c in store) == sorted([CHAIN, RAGE_CHAIN, BROKEN])
    assert dict((c, h) for h, c in store)[CHAIN] == element_group_hash(ELEMENTS)
    rows = sql(db, 'SELECT "order", tag_name, text, href, attr_id, attr_class, nth_child, nth_of_type, '
                   "attributes FROM insights.elements WHERE project_id = %s AND chain_hash = %s "
                   'ORDER BY "order"', clicks["id"], element_group_hash(ELEMENTS))
    assert [list(r) for r in rows] == [
        [e["order"], e["tag_name"], e["text"], e["href"], e["attr_id"], e["attr_class"], e["nth_child"],
         e["nth_of_type"], e["attributes"]] for e in ELEMENTS]


def test_malformed_chain_is_kept_and_never_fails_the_batch(project, db):
    hostile = ['"', ';;;', ':::"', 'a:text="\\', 'a:nth-child="99999999999999"', "\u00e9\u2603;\U0001f600",
               'a:x="' + "y" * 5000]
    capture(project, [{"event": "$autocapture", "distinct_id": "d", "properties": {"$elements_chain": h}}
                      for h in hostile] + [{"event": "$autocapture", "distinct_id": "d",
                                            "properties": {"$elements": ["not an element", 5]}}])
    stored = sql(db, "SELECT elements_chain FROM insights.events WHERE project_id = %s", project["id"])
    assert sorted(c for (c,) in stored) == sorted(hostile + [""])
    (n,) = sql(db, "SELECT count(*) FROM insights.element_chains WHERE project_id = %s", project["id"])[0]
    # '"' and ';;;' hold no element: they share the hash of an empty chain (one store row).
    assert n == len(hostile) - 1
    r = stats(project)
    assert r.status_code == 200
    assert sum(x["count"] for x in r.json()["results"]) == len(hostile)


def test_stats_hashes_and_header(clicks):
    r = stats(clicks, "?include=$autocapture&include=$rageclick")
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "public, max-age=30"
    body = r.json()
    assert body["next"] is None and body["previous"] is None
    assert body["results"][0] == {"count": 4, "hash": element_group_hash(ELEMENTS), "type": "$autocapture",
                                  "elements": ELEMENTS}
    # Every hash is PostHog's ElementGroup hash of the elements served with it.
    assert all(x["hash"] == element_group_hash(x["elements"]) for x in body["results"])


def test_stats_exact_rows(clicks):
    body = stats(clicks, "?include=$autocapture&include=$rageclick").json()
    rows = [(x["type"], x["count"], x["elements"][0]["tag_name"]) for x in body["results"]]
    # count desc; ties by chain text (BROKEN 'x:…' after RAGE 'button:…'), then type.
    assert rows == [("$autocapture", 4, "a"), ("$rageclick", 2, "button"),
                    ("$autocapture", 1, "button"), ("$autocapture", 1, "x")]
    assert body["results"][1]["elements"] == [
        {"text": "Go", "tag_name": "button", "attr_class": None, "href": None, "attr_id": None,
         "nth_child": 1, "nth_of_type": 1, "attributes": {}, "order": 0},
        {"text": None, "tag_name": "form", "attr_class": None, "href": None, "attr_id": None,
         "nth_child": 1, "nth_of_type": 1, "attributes": {}, "order": 1}]
    # The broken chain is served as PostHog's regexes read it.
    assert body["results"][3]["elements"][0]["tag_name"] == "x"


def test_stats_parameters(clicks):
    def counts(q):
        r = stats(clicks, q)
        assert r.status_code == 200, r.text
        return [(x["type"], x["count"]) for x in r.json()["results"]]

    # Default include: $autocapture only; default date_from -7d drops the 10-day-old click.
    assert counts("") == [("$autocapture", 4), ("$autocapture", 1), ("$autocapture", 1)]
    assert counts("?date_from=-30d") == [("$autocapture", 5), ("$autocapture", 1), ("$autocapture", 1)]
    assert counts("?include=$dead_click") == []
    assert counts("?include=$autocapture&filter_test_accounts=true") == [("$autocapture", 4), ("$autocapture", 1)]
    props = json.dumps([{"key": "tag_name", "value": "form", "type": "element"}])
    assert counts(f"?include=$rageclick&include=$autocapture&properties={props}") == [
        ("$rageclick", 2), ("$autocapture", 1)]
    text = json.dumps([{"key": "text", "value": 'Pay "now"', "type": "element"}])
    assert counts(f"?properties={text}") == [("$autocapture", 4)]
    # date_to before the newest clicks.
    d = (datetime.now(timezone.utc) - timedelta(days=2)).strftime("%Y-%m-%d")
    assert counts(f"?date_to={d}") == [("$autocapture", 1)]
    # Paging.
    r = stats(clicks, "?limit=1&offset=1").json()
    assert [(x["type"], x["count"]) for x in r["results"]] == [("$autocapture", 1)]
    assert "offset=2" in r["next"] and "offset=0" in r["previous"]
    assert counts("?sampling_factor=0.5") == counts("")


def test_stats_bad_input(clicks):
    assert_error(stats(clicks, "?include=$pageview"), 400, "validation_error", "invalid_input", "include")
    assert_error(stats(clicks, "?date_from=yesterday-ish"), 400, "validation_error", "invalid_input", "date_from")
    assert_error(stats(clicks, "?date_to=2024-13-45"), 400, "validation_error", "invalid_input", "date_to")
    assert_error(stats(clicks, "?properties={oops"), 400, "validation_error", "invalid_input", "properties")
    bad = json.dumps([{"key": "selector", "value": "a", "operator": "icontains", "type": "element"}])
    assert stats(clicks, f"?properties={bad}").json()["attr"].startswith("properties")
    assert_error(stats(clicks, "?limit=abc"), 400, "validation_error", "invalid_input", "limit")
    assert_error(stats(clicks, "?sampling_factor=2"), 400, "validation_error", "invalid_input", "sampling_factor")
    assert_error(stats(clicks, "?filter_test_accounts=maybe"), 400, "validation_error", "invalid_input",
                 "filter_test_accounts")


def test_values(clicks):
    def values(q):
        r = api("GET", f"/api/projects/{clicks['id']}/elements/values/{q}", clicks["key"])
        assert r.status_code == 200, r.text
        return [v["name"] for v in r.json()]

    assert values("?key=tag_name") == ["a", "button", "x"]
    assert values("?key=tag_name&value=ut") == ["button"]
    assert values("?key=text") == ['Pay "now"', "Go", "unterminated;;"]
    assert values("?key=text&value=Go") == ["Go"]
    assert values("?key=href") == ["/pay;x"]
    assert values("?key=attr_id") == ["pay"]
    assert values("?key=email") == []
    assert values("") == []
    assert values("?key=text&value=.*") == []  # a value is a literal, not a regex


def test_crud(project, make_project):
    base = f"/api/projects/{project['id']}/elements/"
    key = project["key"]
    r = api("POST", base, key, json={"tag_name": "button", "text": "Buy", "attr_class": ["a", "b"],
                                      "nth_child": 2, "attributes": {"attr__x": "1"}, "ignored": 1})
    assert r.status_code == 201, r.text
    el = r.json()
    assert el == {"id": el["id"], "text": "Buy", "tag_name": "button", "attr_class": ["a", "b"], "href": None,
                  "attr_id": None, "nth_child": 2, "nth_of_type": None, "attributes": {"attr__x": "1"},
                  "order": None}
    one = f"{base}{el['id']}/"
    assert api("GET", one, key).json() == el
    r = api("PATCH", one, key, json={"href": "/buy", "nth_child": None, "order": "3"})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("href", "nth_child", "order", "text")} == \
        {"href": "/buy", "nth_child": None, "order": 3, "text": "Buy"}
    lst = api("GET", base, key).json()
    assert lst["count"] == 1 and lst["next"] is None and lst["results"][0]["href"] == "/buy"
    # Environments path: the same resource.
    assert api("GET", f"/api/environments/{project['id']}/elements/{el['id']}/", key).json()["href"] == "/buy"
    # Another project's key sees nothing of it.
    other = make_project()
    assert api("GET", f"/api/projects/{other['id']}/elements/", other["key"]).json()["count"] == 0
    assert_error(api("GET", f"/api/projects/{other['id']}/elements/{el['id']}/", other["key"]),
                 404, "invalid_request", "not_found")
    assert_error(api("GET", one, other["key"]), 403, "authentication_error", "permission_denied")
    # Scopes.
    reader = make_project(scopes=("element:read",))
    rb = f"/api/projects/{reader['id']}/elements/"
    assert api("GET", rb, reader["key"]).status_code == 200
    assert_error(api("POST", rb, reader["key"], json={}), 403, "authentication_error", "permission_denied")
    nobody = make_project(scopes=("insight:read",))
    assert_error(api("GET", f"/api/projects/{nobody['id']}/elements/stats/", nobody["key"]),
                 403, "authentication_error", "permission_denied")
    # Delete.
    r = api("DELETE", one, key)
    assert r.status_code == 204 and r.text == ""
    assert_error(api("GET", one, key), 404, "invalid_request", "not_found")


@pytest.mark.parametrize("body,attr", [
    ({"nth_child": "x"}, "nth_child"),
    ({"nth_of_type": 2 ** 31}, "nth_of_type"),
    ({"order": 1.5}, "order"),
    ({"attr_class": "btn"}, "attr_class"),
    ({"attr_class": [{"a": 1}]}, "attr_class"),
    ({"text": {"a": 1}}, "text"),
    ({"tag_name": "t" * 1001}, "tag_name"),
    ({"attributes": [1]}, "attributes"),
    ({"attributes": None}, "attributes"),
])
def test_create_bad_input(project, db, body, attr):
    r = api("POST", f"/api/projects/{project['id']}/elements/", project["key"], json=body)
    assert r.status_code == 400, r.text
    assert r.json()["attr"] == attr
    assert sql(db, "SELECT count(*) FROM insights.elements WHERE project_id = %s", project["id"]) == [(0,)]


def test_other_project_sees_no_stats(clicks, make_project):
    other = make_project()
    assert stats(other, "?date_from=-30d").json()["results"] == []
    r = api("GET", f"/api/projects/{other['id']}/elements/values/?key=tag_name", other["key"])
    assert r.json() == []
    assert_error(stats(clicks, key=other["key"]), 403, "authentication_error", "permission_denied")
    assert stats(clicks, prefix="environments").json()["results"][0]["count"] == 4


def test_element_filters_in_a_trend(clicks):
    def total(props):
        q = {"events": [{"id": "$autocapture", "math": "total"}], "date_from": "-7d",
             "properties": props}
        r = api("POST", f"/api/projects/{clicks['id']}/insights/trend/", clicks["key"], json=q)
        assert r.status_code == 200, r.text
        return sum(r.json()["result"][0]["data"])

    assert total([]) == 6
    assert total([{"key": "selector", "value": "div > a.btn", "type": "element"}]) == 4
    assert total([{"key": "selector", "value": "#pay", "type": "element"}]) == 4
    assert total([{"key": "text", "value": 'Pay "now"', "type": "element"}]) == 4
    assert total([{"key": "href", "value": "/pay;x", "type": "element"}]) == 4
    assert total([{"key": "tag_name", "value": "form", "type": "element"}]) == 1
