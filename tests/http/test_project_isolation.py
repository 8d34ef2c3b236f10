"""A key of project A never reads or changes project B, through any route (issue 17 item 7).

The cases come from the routing table (nginx/routes.conf, through scripts/openapi.py), not from a
hand-picked list, so a new route is covered the day it is added. Project B holds data in every
table an endpoint can touch; each documented path+method is called on B's id with A's full-access
key (and with a body that would be valid for many endpoints), must answer PostHog's 403, and B's
rows must be unchanged afterwards.
"""

import importlib.util
import json
import os

import pytest
from conftest import api, assert_error, sql

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
_spec = importlib.util.spec_from_file_location("openapi", os.path.join(ROOT, "scripts", "openapi.py"))
openapi = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(openapi)
DOC = openapi.build(open(os.path.join(ROOT, "nginx", "routes.conf")).read())

BODY = json.dumps({"name": "x", "deleted": True, "filters": {"insight": "TRENDS", "events": [{"id": "e"}]},
                   "query": {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "e"}]},
                   "ids": [1], "distinct_ids": ["b-user"], "properties": {"x": 1}})


def _snapshot(db, project_id):
    """Row counts and a checksum of every insights table with a project_id, and B's projects row."""
    # The columnar segments are derived from the events (checked here) and written by the
    # background worker at any moment (sql/segments.sql), so they are left out.
    tables = sql(db, """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'project_id'
                        WHERE n.nspname = 'insights' AND c.relkind IN ('r', 'p')
                          AND c.relname NOT IN ('event_segments', 'event_segment_columns', 'segment_dict',
                                                'segment_progress')
                        ORDER BY 1""")
    out = {}
    for (t,) in tables:
        ((n, h),) = sql(db, f"SELECT count(*), coalesce(sum(hashtext(x::text)), 0) FROM insights.{t} x "
                            "WHERE project_id = %s", project_id)
        out[t] = (n, h)
    out["projects"] = sql(db, "SELECT hashtext(x::text) FROM insights.projects x WHERE id = %s", project_id)
    return out


def _cases():
    for path, item in DOC["paths"].items():
        if "{project_id}" not in path and "{environment_id}" not in path:
            continue
        for method, op in item.items():
            if op["security"]:
                yield pytest.param(path, method.upper(), id=f"{method.upper()} {path}")


@pytest.fixture(scope="module")
def two_projects(db):
    def make(name):
        ((pid, token, _uid, key),) = sql(
            db, "SELECT project_id, api_token, user_id, personal_api_key "
                "FROM insights.create_project_with_key(%s, %s, %s, %s)",
            name, f"{name}@example.com", ["*"], "UTC")
        return pid, token, key

    a, b = make("iso-a"), make("iso-b")
    resp = api("POST", "/batch/", data=json.dumps({"api_key": b[1], "batch": [
        {"event": "e", "distinct_id": "b-user", "properties": {"$set": {"email": "b@example.com"}}}]}))
    assert resp.status_code == 200, resp.text
    resp = api("POST", f"/api/projects/{b[0]}/insights/", b[2],
               json={"name": "B's", "filters": {"insight": "TRENDS", "events": [{"id": "e"}]}})
    assert resp.status_code == 201, resp.text
    return a, b


@pytest.mark.parametrize("path,method", list(_cases()))
def test_key_of_a_cannot_touch_b(db, two_projects, path, method):
    (_a_id, _a_token, a_key), (b_id, _b_token, _b_key) = two_projects
    ((some_b_id,),) = sql(db, "SELECT coalesce(max(id), 1)::text FROM insights.saved_insights WHERE project_id = %s", b_id)
    concrete = path.replace("{project_id}", str(b_id)).replace("{environment_id}", str(b_id)).replace("{id}", some_b_id)
    before = _snapshot(db, b_id)
    kwargs = {} if method in ("GET", "HEAD", "DELETE") else {"data": BODY, "headers": {"Content-Type": "application/json"}}
    resp = api(method, concrete, a_key, **kwargs)
    if method == "HEAD":
        assert resp.status_code == 403
    else:
        assert_error(resp, 403, "authentication_error", "permission_denied")
    assert _snapshot(db, b_id) == before
