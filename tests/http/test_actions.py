"""Actions resource over HTTP (docs/api.md#actions-and-cohorts): list/create/retrieve/PATCH, soft
delete, step validation, scopes, project isolation, and insights over actions: an action with each
step type counts exactly what the equivalent inline event filter counts.
"""

import json

import pytest
from conftest import api, assert_error, sql

DATE_RANGE = {"date_from": "2024-03-01", "date_to": "2024-03-07", "interval": "day"}


def path(project, rest=""):
    return f"/api/projects/{project['id']}/actions/{rest}"


def create(project, body, key=None):
    return api("POST", path(project), key or project["key"], json=body)


def chain(tag, classes=(), text=None, href=None, nth=1):
    """One element of PostHog's elements_chain string."""
    attrs = ""
    if classes:
        attrs += 'attr__class="%s"' % " ".join(classes)
    if href is not None:
        attrs += 'href="%s"' % href
    attrs += 'nth-child="%d"nth-of-type="1"' % nth
    if text is not None:
        attrs += 'text="%s"' % text
    return tag + "".join("." + c for c in classes) + ":" + attrs


def ev(distinct_id, event, day, props=None):
    return {"event": event, "distinct_id": distinct_id, "timestamp": f"2024-03-0{day}T12:00:00Z",
            "properties": dict(props or {})}


@pytest.fixture
def shop(db, make_project):
    """A project with pageviews, autocaptured clicks and custom events over 2024-03-01..07."""
    p = make_project()
    events = []
    urls = ["https://shop.test/pricing", "https://shop.test/pricing?x=1", "https://shop.test/docs/a",
            "https://shop.test/Pricing", "https://other.test/pricing"]
    clicks = [
        chain("button", ["cta", "primary"], text="Sign up", href="/signup") + ";" + chain("div", ["hero"]),
        chain("a", ["nav"], text="Pricing", href="/pricing") + ";" + chain("nav", []),
        chain("button", ["secondary"], text="Sign up now", href="/signup?ref=2") + ";" + chain("form", ["f"]),
        chain("span", [], text="sign up") + ";" + chain("a", ["x"], href="/docs/signup"),
    ]
    for i in range(40):
        user = f"u{i % 9}"
        day = 1 + i % 7
        events.append(ev(user, "$pageview", day, {"$current_url": urls[i % len(urls)], "plan": ["pro", "free"][i % 2]}))
        events.append(ev(user, "$autocapture", day, {"$elements_chain": clicks[i % len(clicks)],
                                                     "$current_url": urls[(i + 1) % len(urls)]}))
        if i % 3 == 0:
            events.append(ev(user, "signed_up", day, {"plan": ["pro", "free", "team"][i % 3]}))
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", p["id"], json.dumps(events))
    return p


def trend(project, body):
    r = api("POST", f"/api/projects/{project['id']}/insights/trend/", project["key"], json={**DATE_RANGE, **body})
    assert r.status_code == 200, r.text
    return r.json()["result"]


def test_create_retrieve_list_shape(project):
    r = create(project, {"name": "Signed up", "description": "d", "tags": ["a", "a", "b"],
                         "steps": [{"event": "signed_up", "url": "/x", "url_matching": "contains", "isNew": "1"}]})
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["name"] == "Signed up" and a["description"] == "d" and a["tags"] == ["a", "b"]
    assert a["steps"] == [{"event": "signed_up", "properties": None, "selector": None, "tag_name": None,
                           "text": None, "text_matching": None, "href": None, "href_matching": None,
                           "url": "/x", "url_matching": "contains"}]
    assert a["deleted"] is False and a["is_calculating"] is False and a["team_id"] == project["id"]
    assert a["is_action"] is True and a["post_to_slack"] is False and a["slack_message_format"] == ""
    assert a["created_by"]["id"] == project["user_id"]
    got = api("GET", path(project, f"{a['id']}/"), project["key"])
    assert got.status_code == 200 and got.json() == a
    # The environments alias serves the same resource.
    env = api("GET", f"/api/environments/{project['id']}/actions/{a['id']}", project["key"])
    assert env.status_code == 200 and env.json()["id"] == a["id"]
    lst = api("GET", path(project), project["key"]).json()
    assert lst["count"] == 1 and lst["next"] is None and lst["previous"] is None and lst["results"] == [a]


def test_list_pagination_and_search(project):
    ids = [create(project, {"name": name, "steps": [{"event": name}]}).json()["id"]
           for name in ["Alpha one", "beta", "ALPHA two", "gamma", "alphabet"]]
    page = api("GET", path(project), project["key"], params={"limit": 2}).json()
    assert page["count"] == 5 and [a["id"] for a in page["results"]] == ids[::-1][:2]
    assert page["next"].endswith("?limit=2&offset=2") and page["previous"] is None
    page2 = api("GET", path(project), project["key"], params={"limit": 2, "offset": 2}).json()
    assert [a["id"] for a in page2["results"]] == ids[::-1][2:4] and page2["previous"].endswith("?limit=2")
    found = api("GET", path(project), project["key"], params={"search": "alpha"}).json()
    assert found["count"] == 3 and {a["name"] for a in found["results"]} == {"Alpha one", "ALPHA two", "alphabet"}
    # A LIKE wildcard in the search is a plain character.
    assert api("GET", path(project), project["key"], params={"search": "%"}).json()["count"] == 0
    assert_error(api("GET", path(project), project["key"], params={"limit": "x"}), 400, "validation_error",
                 "invalid_input", "limit")


def test_patch_soft_delete_and_restore(project):
    a = create(project, {"name": "A", "steps": [{"event": "x"}]}).json()
    b = create(project, {"name": "B"}).json()
    assert b["steps"] == []
    # PATCH replaces the fields it names only.
    r = api("PATCH", path(project, f"{a['id']}/"), project["key"],
            json={"steps": [{"event": "y"}, {"event": "$autocapture", "text": "Go", "text_matching": "exact"}]})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "A" and [s["event"] for s in r.json()["steps"]] == ["y", "$autocapture"]
    # Names are unique among live actions.
    assert_error(api("PATCH", path(project, f"{b['id']}/"), project["key"], json={"name": "A"}),
                 400, "validation_error", "unique", "name")
    assert_error(create(project, {"name": "A"}), 400, "validation_error", "unique", "name")
    # Hard DELETE is refused (PostHog's ForbidDestroyModel); soft delete hides it from the list.
    assert_error(api("DELETE", path(project, f"{a['id']}/"), project["key"]), 405, "invalid_request",
                 "method_not_allowed")
    r = api("PATCH", path(project, f"{a['id']}/"), project["key"], json={"deleted": True})
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert [x["id"] for x in api("GET", path(project), project["key"]).json()["results"]] == [b["id"]]
    assert api("GET", path(project, f"{a['id']}/"), project["key"]).json()["deleted"] is True
    # Its name is free again; restoring it then collides.
    c = create(project, {"name": "A"}).json()
    assert_error(api("PATCH", path(project, f"{a['id']}/"), project["key"], json={"deleted": False}),
                 400, "validation_error", "unique", "name")
    api("PATCH", path(project, f"{c['id']}/"), project["key"], json={"deleted": True})
    assert api("PATCH", path(project, f"{a['id']}/"), project["key"], json={"deleted": False}).json()["deleted"] is False


@pytest.mark.parametrize("body, attr, code", [
    ({"name": ["x"]}, "name", "invalid_input"),
    ({"name": "n", "steps": {"event": "x"}}, "steps", "not_a_list"),
    ({"name": "n", "steps": ["x"]}, "steps__0", "invalid_input"),
    ({"name": "n", "steps": [{"event": {"a": 1}}]}, "steps__0__event", "invalid_input"),
    ({"name": "n", "steps": [{"url": "x", "url_matching": "startswith"}]}, "steps__0__url_matching", "invalid_choice"),
    ({"name": "n", "steps": [{}, {"href": "x", "href_matching": 1}]}, "steps__1__href_matching", "invalid_choice"),
    ({"name": "n", "steps": [{"text": "(", "text_matching": "regex"}]}, "steps__0__text", "invalid_input"),
    ({"name": "n", "steps": [{"properties": {"key": "a"}}]}, "properties", "not_a_list"),
    ({"name": "n", "steps": [{"properties": [{"key": "a"}, "b"]}]}, "steps__0__properties__1", "not_a_dict"),
    ({"name": "n", "steps": [{"event": "$autocapture", "selector": "div::after"}]}, "steps__0__selector", "invalid_input"),
    ({"name": "n", "steps": [{"event": "x", "properties": [{"key": "a", "operator": "nope"}]}]},
     "steps__0__properties__0__operator", "invalid_input"),
    ({"name": "n", "deleted": "maybe"}, "deleted", "invalid_input"),
    ({"name": "n", "tags": "a"}, "tags", "not_a_list"),
    ({"name": "n", "pinned_at": "yesterday"}, "pinned_at", "invalid_input"),
])
def test_bad_input_is_400_and_stores_nothing(db, project, body, attr, code):
    assert_error(create(project, body), 400, "validation_error", code, attr)
    assert sql(db, "SELECT count(*) FROM insights.actions WHERE project_id = %s", project["id"])[0][0] == 0


def test_unknown_ids_and_malformed_body(project):
    assert_error(api("GET", path(project, "999999999/"), project["key"]), 404, "invalid_request", "not_found")
    assert_error(api("GET", path(project, "abc/"), project["key"]), 404, "invalid_request", "not_found")
    assert_error(api("PATCH", path(project, "999999999/"), project["key"], json={"name": "x"}),
                 404, "invalid_request", "not_found")
    r = api("POST", path(project), project["key"], data="{bad", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_request", "parse_error")


def test_scopes(make_project):
    owner = make_project(scopes=("action:write",))
    a = create(owner, {"name": "A"}).json()
    p_read = make_project(scopes=("action:read",))
    assert api("GET", path(p_read), p_read["key"]).status_code == 200
    assert_error(create(p_read, {"name": "x"}), 403, "authentication_error", "permission_denied")
    assert_error(api("PATCH", path(p_read, "1/"), p_read["key"], json={}), 403, "authentication_error",
                 "permission_denied")
    # DELETE needs action:write before it is refused.
    assert_error(api("DELETE", path(p_read, "1/"), p_read["key"]), 403, "authentication_error", "permission_denied")
    p_other = make_project(scopes=("insight:read",))
    assert_error(api("GET", path(p_other), p_other["key"]), 403, "authentication_error", "permission_denied")
    assert_error(api("GET", path(owner)), 401, "authentication_error", "not_authenticated")
    assert api("GET", path(owner, f"{a['id']}/"), owner["key"]).status_code == 200


def test_another_projects_key_sees_and_changes_nothing(db, make_project):
    mine, theirs = make_project(), make_project()
    a = create(mine, {"name": "Mine", "steps": [{"event": "x"}]}).json()
    # Their key on their project: my action is not there.
    assert api("GET", path(theirs), theirs["key"]).json()["count"] == 0
    assert_error(api("GET", path(theirs, f"{a['id']}/"), theirs["key"]), 404, "invalid_request", "not_found")
    assert_error(api("PATCH", path(theirs, f"{a['id']}/"), theirs["key"], json={"name": "stolen", "deleted": True}),
                 404, "invalid_request", "not_found")
    # Their key on my project: refused.
    assert_error(api("GET", path(mine), theirs["key"]), 403, "authentication_error", "permission_denied")
    assert_error(api("PATCH", path(mine, f"{a['id']}/"), theirs["key"], json={"name": "stolen"}),
                 403, "authentication_error", "permission_denied")
    # The same name is free in their project; an insight of theirs cannot use my action.
    assert create(theirs, {"name": "Mine"}).status_code == 201
    r = api("POST", f"/api/projects/{theirs['id']}/insights/trend/", theirs["key"],
            json={**DATE_RANGE, "actions": [{"id": a["id"], "type": "actions"}]})
    assert r.status_code == 400, r.text
    assert sql(db, "SELECT name, deleted FROM insights.actions WHERE id = %s", a["id"]) == [("Mine", False)]


# Each step type against the inline filter it stands for (docs/filters.md#actions).
STEP_EQUIVALENTS = [
    ({"event": "signed_up"}, {"id": "signed_up"}),
    ({"event": "$pageview", "url": "shop.test/pricing", "url_matching": "contains"},
     {"id": "$pageview", "properties": [{"key": "$current_url", "value": "%shop.test/pricing%",
                                         "operator": "regex", "type": "event"}]}),
    ({"event": "$pageview", "url": "https://shop.test/pricing", "url_matching": "exact"},
     {"id": "$pageview", "properties": [{"key": "$current_url", "value": "https://shop.test/pricing", "type": "event"}]}),
    ({"event": "$pageview", "url": "^https://shop\\.test/(P|p)ricing", "url_matching": "regex"},
     {"id": "$pageview", "properties": [{"key": "$current_url", "value": "^https://shop\\.test/(P|p)ricing",
                                         "operator": "regex", "type": "event"}]}),
    ({"event": "$autocapture", "selector": "button.cta"},
     {"id": "$autocapture", "properties": [{"key": "selector", "value": "button.cta", "type": "element"}]}),
    ({"event": "$autocapture", "selector": "div > button"},
     {"id": "$autocapture", "properties": [{"key": "selector", "value": "div > button", "type": "element"}]}),
    ({"event": "$autocapture", "text": "Sign up", "text_matching": "exact"},
     {"id": "$autocapture", "properties": [{"key": "text", "value": "Sign up", "type": "element"}]}),
    ({"event": "$autocapture", "text": "sign up", "text_matching": "contains"},
     {"id": "$autocapture", "properties": [{"key": "text", "value": "sign up", "operator": "icontains",
                                            "type": "element"}]}),
    ({"event": "$autocapture", "text": "Sign.*now", "text_matching": "regex"},
     {"id": "$autocapture", "properties": [{"key": "text", "value": "Sign.*now", "operator": "regex", "type": "element"}]}),
    ({"event": "$autocapture", "href": "/signup", "href_matching": "exact"},
     {"id": "$autocapture", "properties": [{"key": "href", "value": "/signup", "type": "element"}]}),
    ({"event": "$autocapture", "href": "signup", "href_matching": "contains"},
     {"id": "$autocapture", "properties": [{"key": "href", "value": "signup", "operator": "icontains", "type": "element"}]}),
    ({"event": "$autocapture", "href": "/signup\\?ref=[0-9]", "href_matching": "regex"},
     {"id": "$autocapture", "properties": [{"key": "href", "value": "/signup\\?ref=[0-9]", "operator": "regex", "type": "element"}]}),
    ({"event": "$autocapture", "tag_name": "a"},
     {"id": "$autocapture", "properties": [{"key": "tag_name", "value": "a", "type": "element"}]}),
    ({"event": "signed_up", "properties": [{"key": "plan", "value": ["pro", "team"], "operator": "exact", "type": "event"}]},
     {"id": "signed_up", "properties": [{"key": "plan", "value": ["pro", "team"], "operator": "exact", "type": "event"}]}),
]


@pytest.mark.parametrize("step, inline", STEP_EQUIVALENTS)
def test_each_step_type_equals_the_inline_filter(shop, step, inline):
    # The contains URL match is case-sensitive (LIKE), so the inline form is a case-sensitive regex.
    if step.get("url_matching") == "contains":
        inline = {"id": "$pageview", "properties": [{"key": "$current_url", "value": "shop\\.test/pricing",
                                                     "operator": "regex", "type": "event"}]}
    a = create(shop, {"name": "step", "steps": [step]})
    assert a.status_code == 201, a.text
    via_action = trend(shop, {"actions": [{"id": a.json()["id"], "type": "actions", "math": "total"}]})[0]
    via_inline = trend(shop, {"events": [{**inline, "type": "events", "math": "total"}]})[0]
    assert via_action["data"] == via_inline["data"]
    assert via_action["count"] > 0, "the fixture must exercise the step"
    per_person_action = trend(shop, {"actions": [{"id": a.json()["id"], "type": "actions", "math": "dau"}]})[0]
    per_person_inline = trend(shop, {"events": [{**inline, "type": "events", "math": "dau"}]})[0]
    assert per_person_action["data"] == per_person_inline["data"]


def test_steps_are_or_and_changes_apply_at_once(shop):
    a = create(shop, {"name": "two", "steps": [{"event": "signed_up"}]}).json()
    one = trend(shop, {"actions": [{"id": a["id"], "type": "actions"}]})[0]["count"]
    signed = trend(shop, {"events": [{"id": "signed_up"}]})[0]["count"]
    tagged = trend(shop, {"events": [{"id": "$autocapture", "properties": [
        {"key": "tag_name", "value": "a", "type": "element"}]}]})[0]["count"]
    assert one == signed
    api("PATCH", path(shop, f"{a['id']}/"), shop["key"],
        json={"steps": [{"event": "signed_up"}, {"event": "$autocapture", "tag_name": "a"}]})
    assert trend(shop, {"actions": [{"id": a["id"], "type": "actions"}]})[0]["count"] == signed + tagged


def test_deleted_action_in_an_insight_is_a_400(shop):
    a = create(shop, {"name": "gone", "steps": [{"event": "signed_up"}]}).json()
    api("PATCH", path(shop, f"{a['id']}/"), shop["key"], json={"deleted": True})
    r = api("POST", f"/api/projects/{shop['id']}/insights/trend/", shop["key"],
            json={**DATE_RANGE, "actions": [{"id": a["id"], "type": "actions"}]})
    body = assert_error(r, 400, "validation_error", "invalid_input", r.json().get("attr"))
    assert f"Action {a['id']} does not exist" in body["detail"] and body["attr"]
    funnel = api("POST", f"/api/projects/{shop['id']}/insights/funnel/", shop["key"],
                 json={**DATE_RANGE, "actions": [{"id": a["id"], "type": "actions", "order": 0}],
                       "events": [{"id": "$pageview", "order": 1}]})
    assert funnel.status_code == 400, funnel.text
