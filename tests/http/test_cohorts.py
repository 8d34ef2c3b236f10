"""Cohorts resource over HTTP (docs/api.md#cohorts): property cohorts (nested AND/OR), behavioural
cohorts, static cohorts from person ids and CSV uploads, the members page, soft delete, bad input,
scopes and project isolation. Members are checked against a brute-force reference computed here in
Python, and insights filtered by a cohort against the equivalent inline filter.
"""

import json
from datetime import datetime, timedelta, timezone

import pytest
from conftest import api, assert_error, sql

NOW = datetime.now(timezone.utc)
PEOPLE = {
    # distinct id: person properties
    "ann": {"email": "ann@acme.com", "plan": "pro", "age": 31},
    "bob": {"email": "bob@acme.com", "plan": "free", "age": 25},
    "cyd": {"email": "cyd@other.org", "plan": "pro", "age": 44},
    "dan": {"email": "dan@other.org", "plan": "team", "age": 19},
    "eve": {"email": "eve@acme.com", "plan": "team"},
    "fay": {"plan": "free", "age": 52},
}
# distinct id: days ago of each `purchase` event (and one `$pageview` per person today).
PURCHASES = {"ann": [1, 2, 3], "bob": [1], "cyd": [20, 40], "dan": [2, 9], "eve": [], "fay": [5, 6, 7, 8]}


def ts(days_ago, hours=0):
    return (NOW - timedelta(days=days_ago, hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def crowd(db, make_project):
    p = make_project()
    events = []
    for d, props in PEOPLE.items():
        events.append({"event": "$pageview", "distinct_id": d, "timestamp": ts(0, 1), "properties": {"$set": props}})
        for k, days in enumerate(PURCHASES[d]):
            events.append({"event": "purchase", "distinct_id": d, "timestamp": ts(days, 2),
                           "properties": {"amount": 10 * (k + 1)}})
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", p["id"], json.dumps(events))
    p["person"] = dict(sql(db, "SELECT distinct_id, person_id FROM insights.person_distinct_ids WHERE project_id = %s",
                           p["id"]))
    p["uuid"] = dict(sql(db, "SELECT d.distinct_id, p.uuid::text FROM insights.person_distinct_ids d "
                             "JOIN insights.persons p ON p.id = d.person_id WHERE d.project_id = %s", p["id"]))
    return p


def path(project, rest=""):
    return f"/api/projects/{project['id']}/cohorts/{rest}"


def create(project, body, key=None, **kw):
    return api("POST", path(project), key or project["key"], json=body, **kw)


def members(project, cohort_id):
    r = api("GET", path(project, f"{cohort_id}/persons/"), project["key"], params={"limit": 1000})
    assert r.status_code == 200, r.text
    return sorted(d for p in r.json()["results"] for d in p["distinct_ids"])


def who(pred):
    return sorted(d for d in PEOPLE if pred(d))


def person_filter(key, value, operator="exact", **kw):
    return {"key": key, "value": value, "operator": operator, "type": "person", **kw}


NESTED = {"type": "OR", "values": [
    {"type": "AND", "values": [person_filter("email", "acme.com", "icontains"), person_filter("age", 30, "gt")]},
    {"type": "AND", "values": [person_filter("plan", ["team", "free"]), person_filter("age", "is_set", "is_set")]},
]}


def nested_reference(d):
    p = PEOPLE[d]
    return ("acme.com" in p.get("email", "") and p.get("age", 0) > 30) or (p["plan"] in ("team", "free") and "age" in p)


def behavioural(kind, key="purchase", **kw):
    return {"type": "behavioral", "value": kind, "key": key, "event_type": "events", **kw}


def trend_count(project, properties):
    r = api("POST", f"/api/projects/{project['id']}/insights/trend/", project["key"],
            json={"events": [{"id": "purchase", "math": "total"}], "date_from": "-60d", "properties": properties})
    assert r.status_code == 200, r.text
    return r.json()["result"][0]["count"]


def test_property_cohort_nested_and_or(crowd):
    r = create(crowd, {"name": "Nested", "filters": {"properties": NESTED}})
    assert r.status_code == 201, r.text
    c = r.json()
    expected = who(nested_reference)
    assert expected == ["ann", "bob", "dan", "fay"]
    assert c["count"] == len(expected) and c["is_static"] is False and c["is_calculating"] is False
    assert c["filters"] == {"properties": NESTED} and c["groups"] == [] and c["cohort_type"] == "person_property"
    assert c["last_calculation"] is not None and c["created_by"]["id"] == crowd["user_id"]
    assert members(crowd, c["id"]) == expected
    # An insight filtered by the cohort counts what the same filter inline counts.
    via_cohort = trend_count(crowd, [{"type": "cohort", "key": "id", "value": c["id"]}])
    assert via_cohort == trend_count(crowd, NESTED) == sum(len(PURCHASES[d]) for d in expected)
    negated = trend_count(crowd, [{"type": "cohort", "key": "id", "value": c["id"], "operator": "not_in"}])
    assert negated == sum(len(PURCHASES[d]) for d in PEOPLE if d not in expected)


def test_legacy_groups_and_nested_cohorts(crowd):
    pro = create(crowd, {"name": "Pro", "groups": [{"properties": [person_filter("plan", "pro")]}]}).json()
    assert pro["groups"] == [{"properties": [person_filter("plan", "pro")]}] and pro["filters"] is None
    assert members(crowd, pro["id"]) == ["ann", "cyd"]
    young = create(crowd, {"name": "Young or pro", "filters": {"properties": {"type": "OR", "values": [
        {"type": "cohort", "key": "id", "value": pro["id"]}, person_filter("age", 26, "lt")]}}}).json()
    assert members(crowd, young["id"]) == ["ann", "bob", "cyd", "dan"]
    # A cohort that references itself, directly or through another, or a missing cohort: 400.
    loop = {"filters": {"properties": {"type": "AND", "values": [{"type": "cohort", "value": young["id"]}]}}}
    assert_error(api("PATCH", path(crowd, f"{pro['id']}/"), crowd["key"], json=loop), 400, "validation_error",
                 "invalid_input", "filters__properties__values__0__value")
    assert_error(api("PATCH", path(crowd, f"{young['id']}/"), crowd["key"], json=loop), 400, "validation_error",
                 "invalid_input", "filters__properties__values__0__value")
    missing = {"name": "x", "groups": [{"properties": [{"type": "cohort", "value": 987654321}]}]}
    assert_error(create(crowd, missing), 400, "validation_error", "invalid_input", "groups__0__properties__0__value")
    assert members(crowd, pro["id"]) == ["ann", "cyd"]


@pytest.mark.parametrize("criterion, reference", [
    (behavioural("performed_event", time_value=4, time_interval="day"),
     lambda d: any(x < 4 for x in PURCHASES[d])),
    (behavioural("performed_event_multiple", operator="gte", operator_value=3, time_value=10, time_interval="day"),
     lambda d: sum(x < 10 for x in PURCHASES[d]) >= 3),
    (behavioural("performed_event_multiple", operator="lte", operator_value=1, time_value=30, time_interval="day"),
     lambda d: sum(x < 30 for x in PURCHASES[d]) <= 1),
    (behavioural("performed_event_multiple", operator="eq", operator_value=2, time_value=1, time_interval="week"),
     lambda d: sum(x < 7 for x in PURCHASES[d]) == 2),
    (behavioural("performed_event_first_time", time_value=10, time_interval="day"),
     lambda d: bool(PURCHASES[d]) and max(PURCHASES[d]) < 10),
    (behavioural("stopped_performing_event", time_value=30, time_interval="day", seq_time_value=15,
                 seq_time_interval="day"),
     lambda d: any(15 <= x < 30 for x in PURCHASES[d]) and not any(x < 15 for x in PURCHASES[d])),
    (behavioural("performed_event", time_value=4, time_interval="day", negation=True),
     lambda d: not any(x < 4 for x in PURCHASES[d])),
    (behavioural("performed_event", time_value=60, time_interval="day",
                 event_filters=[{"key": "amount", "value": 30, "operator": "exact", "type": "event"}]),
     lambda d: len(PURCHASES[d]) >= 3),
])
def test_behavioural_cohorts_match_the_reference(crowd, criterion, reference):
    r = create(crowd, {"name": "B", "filters": {"properties": {"type": "AND", "values": [criterion]}}})
    assert r.status_code == 201, r.text
    expected = who(reference)
    assert members(crowd, r.json()["id"]) == expected
    assert r.json()["count"] == len(expected) and r.json()["cohort_type"] == "behavioral"
    # The insight over the behavioural cohort equals the insight over a static cohort of the
    # reference's persons.
    static = create(crowd, {"name": "S", "is_static": True,
                            "_create_static_person_ids": [crowd["uuid"][d] for d in expected] or []}).json()
    assert trend_count(crowd, [{"type": "cohort", "value": r.json()["id"]}]) == \
        trend_count(crowd, [{"type": "cohort", "value": static["id"]}])


def test_behavioural_over_an_action_and_legacy_groups(crowd):
    action = api("POST", f"/api/projects/{crowd['id']}/actions/", crowd["key"],
                 json={"name": "Big purchase", "steps": [{"event": "purchase", "properties": [
                     {"key": "amount", "value": 20, "operator": "gte", "type": "event"}]}]}).json()
    c = create(crowd, {"name": "A", "filters": {"properties": {"type": "AND", "values": [
        behavioural("performed_event", key=action["id"], event_type="actions", time_value=10, time_interval="day")]}}})
    assert c.status_code == 201, c.text
    assert members(crowd, c.json()["id"]) == who(lambda d: any(x < 10 for x in PURCHASES[d][1:]))
    legacy = create(crowd, {"name": "L", "groups": [{"event_id": "purchase", "days": 10, "count": 2,
                                                      "count_operator": "gte"}]}).json()
    assert members(crowd, legacy["id"]) == who(lambda d: sum(x < 10 for x in PURCHASES[d]) >= 2)
    legacy_action = create(crowd, {"name": "LA", "groups": [{"action_id": action["id"], "days": 45}]}).json()
    assert members(crowd, legacy_action["id"]) == who(lambda d: len(PURCHASES[d]) >= 2)


@pytest.mark.parametrize("criterion, attr", [
    (behavioural("performed_event_sequence", time_value=1, time_interval="day"), "value"),
    (behavioural("restarted_performing_event", time_value=1, time_interval="day"), "value"),
    (behavioural("performed_event_regularly", time_value=1, time_interval="day"), "value"),
    (behavioural("performed_event", time_value=0, time_interval="day"), "time_value"),
    (behavioural("performed_event", time_value=3, time_interval="fortnight"), "time_interval"),
    (behavioural("performed_event_multiple", time_value=3, time_interval="day", operator="gte"), "operator_value"),
    (behavioural("performed_event", key=987654321, event_type="actions", time_value=3, time_interval="day"), "key"),
    ({"key": "$browser", "value": "x", "type": "event"}, "type"),
    (person_filter("plan", "pro", "fuzzy"), "operator"),
])
def test_bad_definitions_are_400_and_store_nothing(db, crowd, criterion, attr):
    body = {"name": "bad", "filters": {"properties": {"type": "AND", "values": [criterion]}}}
    assert_error(create(crowd, body), 400, "validation_error", "invalid_input", f"filters__properties__values__0__{attr}")
    assert sql(db, "SELECT count(*) FROM insights.cohorts WHERE project_id = %s", crowd["id"])[0][0] == 0


@pytest.mark.parametrize("body, attr, code", [
    ({"name": ["x"]}, "name", "invalid_input"),
    ({"name": "x", "filters": []}, "filters", "not_a_dict"),
    ({"name": "x", "groups": {"a": 1}}, "groups", "not_a_list"),
    ({"name": "x", "is_static": "maybe"}, "is_static", "invalid_input"),
    ({"name": "x", "query": {"kind": "HogQLQuery"}}, "query", "invalid_input"),
    ({"name": "x", "is_static": True, "_create_static_person_ids": ["00000000-0000-0000-0000-000000000000"]},
     "_create_static_person_ids", "invalid_input"),
    ({"name": "x", "_create_static_person_ids": []}, "is_static", "invalid_input"),
])
def test_bad_fields_are_400(db, crowd, body, attr, code):
    assert_error(create(crowd, body), 400, "validation_error", code, attr)
    assert sql(db, "SELECT count(*) FROM insights.cohorts WHERE project_id = %s", crowd["id"])[0][0] == 0


def test_static_cohorts_from_ids_and_add_persons(crowd):
    c = create(crowd, {"name": "S", "is_static": True,
                       "_create_static_person_ids": [crowd["uuid"]["ann"], crowd["person"]["cyd"]]}).json()
    assert c["is_static"] and c["count"] == 2 and c["cohort_type"] == "static"
    assert members(crowd, c["id"]) == ["ann", "cyd"]
    r = api("PATCH", path(crowd, f"{c['id']}/add_persons_to_static_cohort/"), crowd["key"],
            json={"person_ids": [crowd["uuid"]["bob"], crowd["uuid"]["ann"]]})
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 3 and members(crowd, c["id"]) == ["ann", "bob", "cyd"]
    # Static and dynamic do not convert into each other.
    assert_error(api("PATCH", path(crowd, f"{c['id']}/"), crowd["key"], json={"is_static": False}),
                 400, "validation_error", "invalid_input", "is_static")
    assert trend_count(crowd, [{"type": "cohort", "value": c["id"]}]) == 3 + 1 + 2
    # No cohort may name itself, static or not.
    own = {"filters": {"properties": [{"type": "cohort", "value": c["id"]}]}}
    assert_error(api("PATCH", path(crowd, f"{c['id']}/"), crowd["key"], json=own), 400, "validation_error",
                 "invalid_input", "filters__properties__0__value")


def upload(project, fields, csv_text, method="POST", rest=""):
    return api(method, path(project, rest), project["key"], data=fields,
               files={"csv": ("people.csv", csv_text.encode(), "text/csv")})


def test_static_cohort_from_csv_upload(db, crowd):
    r = upload(crowd, {"name": "From CSV", "is_static": "true"},
               'distinct_id,other\r\nann,1\r\n"bob",2\r\n\r\ncyd@other.org,3\r\n')
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["name"] == "From CSV" and c["is_static"] and c["count"] == 3
    assert members(crowd, c["id"]) == ["ann", "bob", "cyd"]
    # PATCH with another file adds members.
    r = upload(crowd, {}, "fay\n", method="PATCH", rest=f"{c['id']}/")
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 4
    # Rows that name nobody: a 400 listing them, nothing stored.
    before = sql(db, "SELECT count(*) FROM insights.cohorts WHERE project_id = %s", crowd["id"])[0][0]
    r = upload(crowd, {"name": "Bad", "is_static": "true"}, 'ann\nnobody\n"broken\n')
    body = assert_error(r, 400, "validation_error", "invalid_input", "csv")
    assert "line 2 (nobody)" in body["detail"] and "line 3 (unreadable)" in body["detail"]
    assert sql(db, "SELECT count(*) FROM insights.cohorts WHERE project_id = %s", crowd["id"])[0][0] == before
    r = upload(crowd, {}, "nobody\n", method="PATCH", rest=f"{c['id']}/")
    assert_error(r, 400, "validation_error", "invalid_input", "csv")
    assert members(crowd, c["id"]) == ["ann", "bob", "cyd", "fay"]
    assert_error(upload(crowd, {"name": "Empty", "is_static": "true"}, "\n\n"), 400, "validation_error",
                 "invalid_input", "csv")
    # A malformed multipart body is PostHog's parse error.
    r = api("POST", path(crowd), crowd["key"], data=b"--xyz\r\nContent-Disposition: form-data\r\n\r\nann\r\n--xyz--\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert_error(r, 400, "invalid_request", "parse_error")
    # A CSV for a dynamic cohort is refused.
    assert_error(upload(crowd, {"name": "Dyn"}, "ann\n"), 400, "validation_error", "invalid_input", "is_static")


def test_members_page_and_csv(crowd):
    c = create(crowd, {"name": "All", "filters": {"properties": {"type": "AND", "values": []}}}).json()
    assert c["count"] == len(PEOPLE)
    page = api("GET", path(crowd, f"{c['id']}/persons/"), crowd["key"], params={"limit": 4}).json()
    assert page["count"] == 6 and len(page["results"]) == 4 and page["previous"] is None
    assert page["next"].endswith("?limit=4&offset=4")
    ids = [p["id"] for p in page["results"]]
    assert ids == sorted(ids) and set(page["results"][0]) >= {"id", "uuid", "distinct_ids", "properties"}
    rest = api("GET", path(crowd, f"{c['id']}/persons/"), crowd["key"], params={"limit": 4, "offset": 4}).json()
    assert len(rest["results"]) == 2 and rest["next"] is None and rest["previous"].endswith("?limit=4&offset=0")
    csv = api("GET", path(crowd, f"{c['id']}/persons/"), crowd["key"], params={"format": "csv"})
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    lines = csv.text.strip().split("\r\n")
    assert len(lines) == 7 and "distinct_ids.0" in lines[0].split(",")


def test_list_soft_delete_and_insights(crowd):
    a = create(crowd, {"name": "Alpha", "groups": [{"properties": [person_filter("plan", "pro")]}]}).json()
    b = create(crowd, {"name": "beta"}).json()
    lst = api("GET", path(crowd), crowd["key"]).json()
    assert lst["count"] == 2 and [c["id"] for c in lst["results"]] == [b["id"], a["id"]]
    assert api("GET", path(crowd), crowd["key"], params={"search": "ALP"}).json()["count"] == 1
    assert_error(api("DELETE", path(crowd, f"{a['id']}/"), crowd["key"]), 405, "invalid_request", "method_not_allowed")
    r = api("PATCH", path(crowd, f"{a['id']}/"), crowd["key"], json={"deleted": True})
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert [c["id"] for c in api("GET", path(crowd), crowd["key"]).json()["results"]] == [b["id"]]
    assert api("GET", path(crowd, f"{a['id']}/"), crowd["key"]).json()["deleted"] is True
    assert_error(api("GET", path(crowd, f"{a['id']}/persons/"), crowd["key"]), 404, "invalid_request", "not_found")
    # An insight over the deleted cohort: PostHog's validation error, not a 500.
    r = api("POST", f"/api/projects/{crowd['id']}/insights/trend/", crowd["key"],
            json={"events": [{"id": "purchase"}], "date_from": "-60d",
                  "properties": [{"type": "cohort", "value": a["id"]}]})
    body = assert_error(r, 400, "validation_error", "invalid_input", r.json().get("attr"))
    assert "does not exist" in body["detail"] and body["attr"].endswith("properties__0__value")
    restored = api("PATCH", path(crowd, f"{a['id']}/"), crowd["key"], json={"deleted": False}).json()
    assert restored["deleted"] is False and restored["count"] == 2


def test_person_cohort_ids_sql(db, crowd):
    pro = create(crowd, {"name": "Pro", "filters": {"properties": {"type": "AND", "values": [
        person_filter("plan", "pro")]}}}).json()
    rich = create(crowd, {"name": "Buyers", "filters": {"properties": {"type": "AND", "values": [
        behavioural("performed_event_multiple", operator="gte", operator_value=2, time_value=60,
                    time_interval="day")]}}}).json()
    st = create(crowd, {"name": "S", "is_static": True, "_create_static_person_ids": [crowd["uuid"]["eve"]]}).json()
    got = {d: [r[0] for r in sql(db, "SELECT insights.person_cohort_ids(%s, %s)", crowd["id"], crowd["person"][d])]
           for d in PEOPLE}
    assert got == {"ann": [pro["id"], rich["id"]], "bob": [], "cyd": [pro["id"], rich["id"]], "dan": [rich["id"]],
                   "eve": [st["id"]], "fay": [rich["id"]]}


def test_scopes_and_isolation(db, make_project, crowd):
    c = create(crowd, {"name": "Mine", "is_static": True, "_create_static_person_ids": [crowd["uuid"]["ann"]]}).json()
    reader = make_project(scopes=("cohort:read",))
    assert api("GET", path(reader), reader["key"]).status_code == 200
    assert_error(create(reader, {"name": "x"}), 403, "authentication_error", "permission_denied")
    assert_error(api("PATCH", path(reader, "1/add_persons_to_static_cohort/"), reader["key"], json={}),
                 403, "authentication_error", "permission_denied")
    other = make_project(scopes=("action:write",))
    assert_error(api("GET", path(other), other["key"]), 403, "authentication_error", "permission_denied")
    theirs = make_project()
    assert api("GET", path(theirs), theirs["key"]).json()["count"] == 0
    for method, rest, body in [("GET", f"{c['id']}/", None), ("GET", f"{c['id']}/persons/", None),
                               ("PATCH", f"{c['id']}/", {"name": "stolen", "deleted": True}),
                               ("PATCH", f"{c['id']}/add_persons_to_static_cohort/", {"person_ids": []})]:
        assert_error(api(method, path(theirs, rest), theirs["key"], json=body), 404, "invalid_request", "not_found")
    assert_error(api("GET", path(crowd), theirs["key"]), 403, "authentication_error", "permission_denied")
    # Their insight cannot use my cohort, and their persons cannot join it.
    r = api("POST", f"/api/projects/{theirs['id']}/insights/trend/", theirs["key"],
            json={"events": [{"id": "purchase"}], "properties": [{"type": "cohort", "value": c["id"]}]})
    assert r.status_code == 400, r.text
    assert sql(db, "SELECT name, deleted, count FROM insights.cohorts WHERE id = %s", c["id"]) == [("Mine", False, 1)]
    assert_error(api("GET", path(crowd, "999999999/"), crowd["key"]), 404, "invalid_request", "not_found")
