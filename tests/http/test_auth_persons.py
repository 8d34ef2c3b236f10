"""Personal API keys, scopes, project boundaries (row-level security) and the persons endpoints."""

import json

import pytest
from conftest import api, assert_error, sql


def ingest(db, project_id, events):
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", project_id, json.dumps(events))


@pytest.fixture
def with_people(db, project):
    ingest(db, project["id"], [
        {"event": "$identify", "distinct_id": "alice", "timestamp": "2024-01-01T00:00:00Z",
         "properties": {"$set": {"email": "alice@example.com"}}},
        {"event": "$pageview", "distinct_id": "bob", "timestamp": "2024-01-02T00:00:00Z"},
        {"event": "$pageview", "distinct_id": "carol", "timestamp": "2024-01-03T00:00:00Z"},
    ])
    return project


@pytest.mark.parametrize("prefix", ["projects", "environments"])
@pytest.mark.parametrize("slash", ["/", ""])
def test_list_persons_with_bearer_key(with_people, prefix, slash):
    p = with_people
    r = api("GET", f"/api/{prefix}/{p['id']}/persons{slash}", p["key"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["distinct_ids"] for x in body["results"]] == [["carol"], ["bob"], ["alice"]]
    alice = body["results"][2]
    assert alice["name"] == "alice@example.com" and alice["is_identified"] is True
    assert body["next"] is None and body["previous"] is None


def test_pagination_links(with_people):
    p = with_people
    r = api("GET", f"/api/projects/{p['id']}/persons/?limit=2", p["key"])
    body = r.json()
    assert len(body["results"]) == 2
    assert body["next"].endswith(f"/api/projects/{p['id']}/persons/?limit=2&offset=2")
    r2 = api("GET", f"/api/projects/{p['id']}/persons/?limit=2&offset=2", p["key"])
    assert [x["distinct_ids"] for x in r2.json()["results"]] == [["alice"]]
    assert r2.json()["previous"] is not None


def test_retrieve_person_by_id_and_uuid(db, with_people):
    p = with_people
    pid, puuid = sql(db, "SELECT person_id, (SELECT uuid FROM insights.persons WHERE id = person_id) "
                         "FROM insights.person_distinct_ids WHERE project_id = %s AND distinct_id = 'bob'", p["id"])[0]
    for ident in (pid, puuid):
        r = api("GET", f"/api/projects/{p['id']}/persons/{ident}/", p["key"])
        assert r.status_code == 200, r.text
        assert r.json()["distinct_ids"] == ["bob"]
    assert_error(api("GET", f"/api/projects/{p['id']}/persons/999999999/", p["key"]), 404, "invalid_request", "not_found")


def test_key_in_query_string_and_body(with_people):
    p = with_people
    assert api("GET", f"/api/projects/{p['id']}/persons/?personal_api_key={p['key']}").status_code == 200
    r = api("GET", f"/api/projects/{p['id']}/persons/", json={"personal_api_key": p["key"]})
    assert r.status_code == 200, r.text


def test_missing_and_invalid_keys(with_people):
    p = with_people
    assert_error(api("GET", f"/api/projects/{p['id']}/persons/"), 401, "authentication_error", "not_authenticated")
    assert_error(api("GET", f"/api/projects/{p['id']}/persons/", "phx_wrong"), 401, "authentication_error", "authentication_failed")


def test_missing_scope_is_403(make_project):
    p = make_project(scopes=["insight:read"])
    r = api("GET", f"/api/projects/{p['id']}/persons/", p["key"])
    body = assert_error(r, 403, "authentication_error", "permission_denied")
    assert body["detail"] == "API key missing required scope 'person:read'"


def test_write_scope_implies_read(make_project):
    p = make_project(scopes=["person:write"])
    assert api("GET", f"/api/projects/{p['id']}/persons/", p["key"]).status_code == 200


def test_revoked_key_fails_at_once(db, with_people):
    p = with_people
    assert api("GET", f"/api/projects/{p['id']}/persons/", p["key"]).status_code == 200
    sql(db, "SELECT insights.revoke_personal_api_key(id) FROM insights.personal_api_keys WHERE user_id = %s", p["user_id"])
    assert_error(api("GET", f"/api/projects/{p['id']}/persons/", p["key"]), 401, "authentication_error", "authentication_failed")


def test_other_projects_key_is_denied(with_people, make_project):
    other = make_project()
    r = api("GET", f"/api/projects/{with_people['id']}/persons/", other["key"])
    assert_error(r, 403, "authentication_error", "permission_denied")


def test_key_scoped_to_projects(db, with_people):
    p = with_people
    (key,) = sql(db, "SELECT api_key FROM insights.create_personal_api_key(%s, 'scoped', ARRAY['*'], ARRAY[%s]::bigint[])",
                 p["user_id"], p["id"] + 100000)[0]
    r = api("GET", f"/api/projects/{p['id']}/persons/", key)
    body = assert_error(r, 403, "authentication_error", "permission_denied")
    assert body["detail"] == f"API key does not have access to the requested project '{p['id']}'"


def test_row_level_security_without_authentication(db, with_people):
    """Even SQL that forgets to authenticate sees nothing as the API role (RLS)."""
    with db.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SET LOCAL ROLE pgi_api")
        cur.execute("SELECT count(*) FROM insights.events")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT set_config('pgi.project_id', %s, true)", (str(with_people["id"]),))
        cur.execute("SELECT count(DISTINCT project_id) FROM insights.events")
        assert cur.fetchone()[0] == 1
        cur.execute("ROLLBACK")


def test_bad_params_methods_and_paths(with_people):
    p = with_people
    r = api("GET", f"/api/projects/{p['id']}/persons/?limit=abc", p["key"])
    assert_error(r, 400, "validation_error", "invalid_input", attr="limit")
    assert_error(api("POST", f"/api/projects/{p['id']}/persons/", p["key"], json={}), 405, "invalid_request", "method_not_allowed")
    assert_error(api("DELETE", f"/api/projects/{p['id']}/persons/", p["key"]), 405, "invalid_request", "method_not_allowed")
    assert_error(api("GET", "/api/projects/not-a-number/persons/", p["key"]), 404, "invalid_request", "not_found")
    assert_error(api("GET", "/api/projects/999999999/persons/", p["key"]), 404, "invalid_request", "not_found")
    assert_error(api("GET", "/api/nowhere/", p["key"]), 404, "invalid_request", "not_found")
