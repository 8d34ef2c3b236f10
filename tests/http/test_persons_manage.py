"""Persons management over HTTP: activity log, cohorts of a person, bulk delete, distinct id reset,
the person resource (list filters, PATCH, DELETE, update_property, delete_property, split), scopes,
and that another project's key sees and changes nothing. Derived data (the person-days rollup)
is checked against a from-scratch computation after each destructive call.
"""

import json

import pytest
from conftest import api, assert_error, sql

EVENTS = [
    {"event": "$pageview", "distinct_id": "anon1", "timestamp": "2024-03-01T10:00:00Z"},
    {"event": "$identify", "distinct_id": "ann", "timestamp": "2024-03-01T10:05:00Z",
     "properties": {"$anon_distinct_id": "anon1", "$set": {"email": "ann@corp.com", "plan": "pro"}}},
    {"event": "$pageview", "distinct_id": "ann", "timestamp": "2024-03-02T10:00:00Z"},
    {"event": "$pageview", "distinct_id": "bob", "timestamp": "2024-03-01T11:00:00Z",
     "properties": {"$set": {"email": "bob@test.com", "plan": "free"}}},
    {"event": "signup", "distinct_id": "bob", "timestamp": "2024-03-03T11:00:00Z"},
    {"event": "$pageview", "distinct_id": "cid", "timestamp": "2024-03-02T12:00:00Z",
     "properties": {"$set": {"email": "cid@corp.com", "plan": "pro"}}},
]


def ingest(db, project, events=EVENTS):
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(events))


def pid_of(db, project, distinct_id):
    return sql(db, "SELECT person_id FROM insights.person_distinct_ids WHERE project_id = %s AND distinct_id = %s",
               project["id"], distinct_id)[0][0]


def rollup_exact(db, project):
    rollup = sql(db, "SELECT person_id, day, events FROM insights.person_days WHERE project_id = %s ORDER BY 1, 2",
                 project["id"])
    fresh = sql(db, "SELECT person_id, timestamp::date, count(*) FROM insights.events WHERE project_id = %s "
                    "GROUP BY 1, 2 ORDER BY 1, 2", project["id"])
    assert rollup == fresh
    return rollup


def base(project):
    return f"/api/projects/{project['id']}/persons"


def test_list_filters_and_csv(db, project):
    ingest(db, project)
    props = json.dumps([{"key": "plan", "value": "pro", "operator": "exact"}])
    r = api("GET", base(project) + "/", project["key"], params={"properties": props})
    assert r.status_code == 200, r.text
    assert sorted(p["properties"]["email"] for p in r.json()["results"]) == ["ann@corp.com", "cid@corp.com"]
    both = json.dumps([{"key": "plan", "value": "pro", "type": "person"},
                       {"key": "email", "value": "cid", "operator": "icontains", "type": "person"}])
    r = api("GET", f"/api/environments/{project['id']}/persons/", project["key"], params={"properties": both})
    assert [p["properties"]["email"] for p in r.json()["results"]] == ["cid@corp.com"]
    r = api("GET", base(project) + "/", project["key"], params={"distinct_id": "anon1"})
    assert [sorted(p["distinct_ids"]) for p in r.json()["results"]] == [["ann", "anon1"]]
    r = api("GET", base(project) + "/", project["key"], params={"email": "bob@test.com"})
    assert [p["distinct_ids"] for p in r.json()["results"]] == [["bob"]]
    r = api("GET", base(project) + "/", project["key"], params={"search": "corp"})
    assert len(r.json()["results"]) == 2
    bad = json.dumps([{"key": "plan", "value": "x", "operator": "nope"}])
    r = api("GET", base(project) + "/", project["key"], params={"properties": bad})
    assert r.status_code == 400 and r.json()["attr"].startswith("properties__0"), r.text
    r = api("GET", base(project) + "/", project["key"], params={"format": "csv", "email": "bob@test.com"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    header, row = r.text.strip().split("\r\n")
    assert "properties.email" in header.split(",") and "bob@test.com" in row.split(",")


def test_patch_update_and_delete_property_with_activity(db, project):
    ingest(db, project)
    bob = pid_of(db, project, "bob")
    r = api("PATCH", f"{base(project)}/{bob}/", project["key"], json={"properties": {"plan": "team", "age": 41}})
    assert r.status_code == 200, r.text
    assert r.json()["properties"] == {"email": "bob@test.com", "plan": "team", "age": 41}
    assert_error(api("PATCH", f"{base(project)}/{bob}/", project["key"], json={"properties": [1]}),
                 400, "validation_error", "not_a_dict", "properties")
    r = api("POST", f"{base(project)}/{bob}/update_property/", project["key"], json={"key": "vip", "value": True})
    assert r.status_code == 202 and r.text == ""
    assert_error(api("POST", f"{base(project)}/{bob}/update_property/", project["key"], json={"value": 1}),
                 400, "validation_error", "required", "key")
    r = api("POST", f"{base(project)}/{bob}/delete_property/", project["key"], json={"$unset": "age"})
    assert r.status_code == 201
    props = sql(db, "SELECT properties FROM insights.persons WHERE id = %s", bob)[0][0]
    assert props == {"email": "bob@test.com", "plan": "team", "vip": True}
    r = api("GET", f"{base(project)}/{bob}/activity/", project["key"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["activity"] for a in body["results"]] == ["updated", "updated", "updated", "created"]
    assert body["total_count"] == 4 and body["results"][0]["user"]["email"].endswith("@example.com")
    first = body["results"][2]["detail"]["changes"]
    assert [(c["field"], c["before"], c["after"]) for c in first] == [("age", None, 41), ("plan", "free", "team")]
    # paging
    r = api("GET", f"{base(project)}/{bob}/activity/", project["key"], params={"limit": 3})
    assert len(r.json()["results"]) == 3 and "page=2" in r.json()["next"]
    assert api("POST", f"{base(project)}/999999999/update_property/", project["key"],
               json={"key": "a", "value": 1}).status_code == 404


def test_activity_log_records_merge_reset_and_delete(db, project):
    ingest(db, project)
    ann = pid_of(db, project, "ann")
    r = api("GET", base(project) + "/activity/", project["key"], params={"limit": 100})
    acts = [(a["activity"], a["is_system"]) for a in r.json()["results"]]
    assert acts.count(("created", True)) == 3 and acts.count(("merged", True)) == 0  # anon1 was new: no merge
    # a merge of two existing persons is logged on the survivor
    ingest(db, project, [{"event": "$create_alias", "distinct_id": "ann", "timestamp": "2024-03-04T10:00:00Z",
                          "properties": {"alias": "cid"}}])
    r = api("GET", f"{base(project)}/{ann}/activity/", project["key"])
    merged = [a for a in r.json()["results"] if a["activity"] == "merged"]
    assert len(merged) == 1 and merged[0]["detail"]["merge"]["type"] == "Person"
    r = api("POST", base(project) + "/reset_person_distinct_id/", project["key"], json={"distinct_id": "anon1"})
    assert r.status_code == 202
    r = api("POST", base(project) + "/bulk_delete/", project["key"], json={"distinct_ids": ["ann"]})
    assert r.status_code == 202
    # the log outlives the person
    r = api("GET", f"{base(project)}/{ann}/activity/", project["key"])
    assert [a["activity"] for a in r.json()["results"]][:2] == ["deleted", "distinct_id_reset"]
    reset = r.json()["results"][1]["detail"]["changes"][0]
    assert reset["field"] == "distinct_ids" and "anon1" in reset["before"] and "anon1" not in reset["after"]


def test_reset_distinct_id_makes_a_new_person(db, project):
    ingest(db, project)
    ann = pid_of(db, project, "ann")
    assert api("POST", base(project) + "/reset_person_distinct_id/", project["key"],
               json={"distinct_id": "anon1"}).status_code == 202
    assert sql(db, "SELECT distinct_id FROM insights.person_distinct_ids WHERE person_id = %s", ann) == [("ann",)]
    ingest(db, project, [{"event": "$pageview", "distinct_id": "anon1", "timestamp": "2024-03-05T10:00:00Z"}])
    assert pid_of(db, project, "anon1") != ann
    # past events stay with ann
    assert sql(db, "SELECT count(*) FROM insights.events WHERE project_id = %s AND person_id = %s", project["id"], ann)[0][0] == 3
    assert_error(api("POST", base(project) + "/reset_person_distinct_id/", project["key"], json={}),
                 400, "validation_error", "required", "distinct_id")
    assert api("POST", base(project) + "/reset_person_distinct_id/", project["key"],
               json={"distinct_id": "nobody"}).status_code == 404
    rollup_exact(db, project)


def test_bulk_delete(db, project):
    ingest(db, project)
    ann, bob, cid = (pid_of(db, project, d) for d in ("ann", "bob", "cid"))
    (bob_uuid,) = sql(db, "SELECT uuid::text FROM insights.persons WHERE id = %s", bob)[0]
    # too many ids, no ids, wrong type: 400 and nothing deleted
    assert_error(api("POST", base(project) + "/bulk_delete/", project["key"], json={"ids": list(range(1001))}),
                 400, "validation_error", "max_length", "ids")
    assert_error(api("POST", base(project) + "/bulk_delete/", project["key"], json={}),
                 400, "validation_error", "required", "ids")
    assert_error(api("POST", base(project) + "/bulk_delete/", project["key"], json={"ids": {"a": 1}}),
                 400, "validation_error", "not_a_list", "ids")
    assert_error(api("POST", base(project) + "/bulk_delete/", project["key"],
                     json={"ids": [bob], "delete_events": "perhaps"}),
                 400, "validation_error", "invalid_input", "delete_events")
    assert sql(db, "SELECT count(*) FROM insights.persons WHERE project_id = %s", project["id"])[0][0] == 3
    # keep_person + delete_events: bob's events go, bob stays (by uuid)
    r = api("POST", base(project) + "/bulk_delete/", project["key"],
            json={"ids": [bob_uuid], "delete_events": True, "keep_person": True})
    assert r.status_code == 202
    assert sql(db, "SELECT count(*) FROM insights.events WHERE person_id = %s", bob)[0][0] == 0
    assert sql(db, "SELECT count(*) FROM insights.persons WHERE id = %s", bob)[0][0] == 1
    # by distinct ids, without events: the persons go, their events stay
    r = api("POST", f"/api/environments/{project['id']}/persons/bulk_delete/", project["key"],
            json={"distinct_ids": ["anon1", "cid"]})
    assert r.status_code == 202
    assert sql(db, "SELECT count(*) FROM insights.persons WHERE id IN (%s, %s)", ann, cid)[0][0] == 0
    assert sql(db, "SELECT count(*) FROM insights.events WHERE person_id = %s", ann)[0][0] == 3
    rollup_exact(db, project)


def test_delete_one_person_with_events(db, project):
    ingest(db, project)
    ann = pid_of(db, project, "ann")
    r = api("DELETE", f"{base(project)}/{ann}/", project["key"], params={"delete_events": "true"})
    assert r.status_code == 202, r.text
    assert sql(db, "SELECT count(*) FROM insights.events WHERE project_id = %s AND person_id = %s",
               project["id"], ann)[0][0] == 0
    assert sql(db, "SELECT count(*) FROM insights.person_distinct_ids WHERE person_id = %s", ann)[0][0] == 0
    assert api("GET", f"{base(project)}/{ann}/", project["key"]).status_code == 404
    assert api("DELETE", f"{base(project)}/{ann}/", project["key"]).status_code == 404
    assert sql(db, "SELECT count(*) FROM insights.events WHERE project_id = %s", project["id"])[0][0] == 3
    rollup_exact(db, project)


def test_split(db, project):
    ingest(db, project)
    ann = pid_of(db, project, "ann")
    r = api("POST", f"{base(project)}/{ann}/split/", project["key"], json={"main_distinct_id": "nope"})
    assert_error(r, 400, "validation_error", "invalid_input", "main_distinct_id")
    r = api("POST", f"{base(project)}/{ann}/split/", project["key"], json={"main_distinct_id": "ann"})
    assert r.status_code == 201 and r.json() == {"success": True}
    anon = pid_of(db, project, "anon1")
    assert anon != ann and pid_of(db, project, "ann") == ann
    # each part owns its own events and starts at its first event
    assert sql(db, "SELECT distinct_id, count(*) FROM insights.events WHERE person_id = %s GROUP BY 1", anon) == [("anon1", 1)]
    assert sql(db, "SELECT created_at::text FROM insights.persons WHERE id = %s", ann)[0][0] == "2024-03-01 10:05:00+00"
    assert sql(db, "SELECT properties FROM insights.persons WHERE id = %s", anon)[0][0] == {}
    assert sql(db, "SELECT properties->>'email' FROM insights.persons WHERE id = %s", ann)[0][0] == "ann@corp.com"
    rollup_exact(db, project)
    r = api("GET", f"{base(project)}/{ann}/activity/", project["key"])
    assert r.json()["results"][0]["activity"] == "split_person"
    assert r.json()["results"][0]["detail"]["changes"][0]["after"] == {"distinct_ids": ["ann", "anon1"]}


def test_cohorts_of_a_person(db, project):
    ingest(db, project)
    ann, bob = pid_of(db, project, "ann"), pid_of(db, project, "bob")
    pro = sql(db, "INSERT INTO insights.cohorts (project_id, name, filters) VALUES (%s, 'pro', %s) RETURNING id",
              project["id"], json.dumps({"properties": {"type": "AND", "values": [
                  {"key": "plan", "value": "pro", "type": "person"}]}}))[0][0]
    static = sql(db, "INSERT INTO insights.cohorts (project_id, name, is_static) VALUES (%s, 'vip', true) RETURNING id",
                 project["id"])[0][0]
    sql(db, "INSERT INTO insights.cohort_people VALUES (%s, %s)", static, bob)
    nested = sql(db, "INSERT INTO insights.cohorts (project_id, name, filters) VALUES (%s, 'not pro', %s) RETURNING id",
                 project["id"], json.dumps({"properties": {"type": "OR", "values": [
                     {"key": "id", "value": pro, "type": "cohort", "negation": True}]}}))[0][0]
    sql(db, "INSERT INTO insights.cohorts (project_id, name, filters, deleted) VALUES (%s, 'gone', '{}', true)", project["id"])
    r = api("GET", base(project) + "/cohorts/", project["key"], params={"person_id": ann})
    assert r.status_code == 200, r.text
    assert [c["name"] for c in r.json()["results"]] == ["pro"]
    (bob_uuid,) = sql(db, "SELECT uuid::text FROM insights.persons WHERE id = %s", bob)[0]
    r = api("GET", base(project) + "/cohorts/", project["key"], params={"person_id": bob_uuid})
    assert [c["id"] for c in r.json()["results"]] == [static, nested]
    assert_error(api("GET", base(project) + "/cohorts/", project["key"]), 400, "validation_error", "required", "person_id")
    assert api("GET", base(project) + "/cohorts/", project["key"], params={"person_id": 999999999}).status_code == 404


def test_scopes(db, make_project):
    reader = make_project(scopes=("person:read",))
    ingest(db, reader)
    bob = pid_of(db, reader, "bob")
    for method, path, body in [
        ("POST", "/bulk_delete/", {"ids": [bob]}),
        ("POST", "/reset_person_distinct_id/", {"distinct_id": "bob"}),
        ("PATCH", f"/{bob}/", {"properties": {"a": 1}}),
        ("DELETE", f"/{bob}/", None),
        ("POST", f"/{bob}/update_property/", {"key": "a", "value": 1}),
        ("POST", f"/{bob}/delete_property/", {"$unset": "email"}),
        ("POST", f"/{bob}/split/", {}),
    ]:
        r = api(method, base(reader) + path, reader["key"], json=body)
        assert_error(r, 403, "authentication_error", "permission_denied")
    assert api("GET", f"{base(reader)}/{bob}/", reader["key"]).status_code == 200
    # activity needs activity_log:read; persons/cohorts needs cohort:read as well
    assert_error(api("GET", base(reader) + "/activity/", reader["key"]), 403, "authentication_error", "permission_denied")
    r = api("GET", base(reader) + "/cohorts/", reader["key"], params={"person_id": bob})
    assert_error(r, 403, "authentication_error", "permission_denied")
    both = make_project(scopes=("person:read", "cohort:read", "activity_log:read"))
    assert api("GET", base(both) + "/activity/", both["key"]).status_code == 200
    assert api("GET", base(both) + "/bulk_delete/", both["key"]).status_code == 405


def test_another_projects_key_sees_and_changes_nothing(db, make_project):
    p, q = make_project(), make_project()
    ingest(db, p)
    ingest(db, q)
    bob_p = pid_of(db, p, "bob")
    before = sql(db, "SELECT count(*) FROM insights.events WHERE project_id = %s", p["id"])[0][0]
    # q's key on q's routes cannot reach p's person by id or uuid, nor by distinct id
    (bob_uuid,) = sql(db, "SELECT uuid::text FROM insights.persons WHERE id = %s", bob_p)[0]
    for ref in (bob_p, bob_uuid):
        assert api("GET", f"{base(q)}/{ref}/", q["key"]).status_code == 404
        assert api("PATCH", f"{base(q)}/{ref}/", q["key"], json={"properties": {"x": 1}}).status_code == 404
        assert api("DELETE", f"{base(q)}/{ref}/", q["key"], params={"delete_events": "true"}).status_code == 404
        assert api("POST", f"{base(q)}/{ref}/split/", q["key"], json={}).status_code == 404
        assert api("GET", f"{base(q)}/{ref}/activity/", q["key"]).status_code == 404
        assert api("GET", base(q) + "/cohorts/", q["key"], params={"person_id": ref}).status_code == 404
    assert api("POST", base(q) + "/bulk_delete/", q["key"],
               json={"ids": [bob_p, bob_uuid], "delete_events": True}).status_code == 202
    # ids of another project match nothing: p keeps its person and its events
    assert sql(db, "SELECT count(*) FROM insights.persons WHERE id = %s", bob_p)[0][0] == 1
    assert sql(db, "SELECT count(*) FROM insights.events WHERE project_id = %s", p["id"])[0][0] == before
    # q's key on p's routes: 403
    assert_error(api("POST", base(p) + "/bulk_delete/", q["key"], json={"ids": [bob_p]}),
                 403, "authentication_error", "permission_denied")
    assert all(a["detail"]["name"] != bob_uuid for a in
               api("GET", base(q) + "/activity/", q["key"], params={"limit": 1000}).json()["results"])
