"""The real client (issue 16): posthog-js (npm, pinned in tests/browser/package-lock.json) on a
page of another origin, in Debian's chromium driven by playwright-core (tests/browser/click.mjs),
autocaptures a click on a nested element; the stack must accept the SDK's request (CORS,
text/plain body, /i/v0/e/) and the elements API must report it exactly. Needs `node`,
/usr/bin/chromium and tests/browser/node_modules (scripts/install-deps installs them)."""

import json
import os
import subprocess
import uuid

from conftest import BASE_URL, api, sql

BROWSER_DIR = os.path.join(os.path.dirname(__file__), "..", "browser")

# What posthog-js sends for a click on <span class="label"> inside
# <a id="buy" class="btn primary" href="/checkout?plan=pro;seats=2"> in <nav class="top"> in
# <div id="app" class="wrap main"> in <body> (tests/browser/page.html).
HREF = "/checkout?plan=pro;seats=2"
CHAIN = (
    f'span.label:attr__class="label"attr__href="{HREF}"href="{HREF}"nth-child="1"nth-of-type="1"text="now";'
    f'a.btn.primary:attr__class="btn primary"attr__href="{HREF}"attr__id="buy"attr_id="buy"href="{HREF}"'
    'nth-child="1"nth-of-type="1"text="Buy now";'
    'nav.top:attr__class="top"nth-child="1"nth-of-type="1";'
    'div.main.wrap:attr__class="wrap main"attr__id="app"attr_id="app"nth-child="1"nth-of-type="1";'
    'body:nth-child="2"nth-of-type="1"'
)


def el(order, tag, text=None, classes=None, href=None, attr_id=None, nth_child=1, attributes=None):
    return {"text": text, "tag_name": tag, "attr_class": classes, "href": href, "attr_id": attr_id,
            "nth_child": nth_child, "nth_of_type": 1, "attributes": attributes or {}, "order": order}


ELEMENTS = [
    el(0, "span", "now", ["label"], HREF, attributes={"attr__class": "label", "attr__href": HREF}),
    el(1, "a", "Buy now", ["btn", "primary"], HREF, "buy",
       attributes={"attr__class": "btn primary", "attr__href": HREF, "attr__id": "buy"}),
    el(2, "nav", classes=["top"], attributes={"attr__class": "top"}),
    el(3, "div", classes=["main", "wrap"], attr_id="app",
       attributes={"attr__class": "wrap main", "attr__id": "app"}),
    el(4, "body", nth_child=2),
]


def click_in_browser(project, distinct_id):
    out = subprocess.run(["node", "click.mjs", BASE_URL, project["token"], distinct_id], cwd=BROWSER_DIR,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def trend_total(project, props):
    q = {"events": [{"id": "$autocapture"}], "date_from": "-1d", "properties": props}
    r = api("POST", f"/api/projects/{project['id']}/insights/trend/", project["key"], json=q)
    assert r.status_code == 200, r.text
    return sum(r.json()["result"][0]["data"])


def test_posthog_js_click_in_chromium(project, db):
    distinct_id = f"browser-{uuid.uuid4().hex[:8]}"
    run = click_in_browser(project, distinct_id)
    # The SDK's own request: text/plain from another origin, answered with PostHog's CORS.
    assert run["config_status"] == 200
    # Nothing the SDK asked for failed (remote config as script, flags, capture).
    assert run["console_errors"] == [], run["console_errors"]
    assert run["capture_status"] == 200
    assert run["capture_path"] == "/i/v0/e/"
    assert run["content_type"].startswith("text/plain")
    assert run["cors_origin"] == run["page_origin"] != BASE_URL

    # The event and its chain, exactly as posthog-js rendered it.
    rows = sql(db, "SELECT event, distinct_id, elements_chain, properties->>'$event_type', "
                   "properties->>'$lib' FROM insights.events WHERE project_id = %s", project["id"])
    assert rows == [("$autocapture", distinct_id, CHAIN, "click", "web")]

    # Its person, through the API.
    r = api("GET", f"/api/projects/{project['id']}/persons/?distinct_id={distinct_id}", project["key"])
    persons = r.json()["results"]
    assert [p["distinct_ids"] for p in persons] == [[distinct_id]]

    # The chain store and elements/stats/.
    r = api("GET", f"/api/projects/{project['id']}/elements/stats/", project["key"])
    assert r.status_code == 200, r.text
    (item,) = r.json()["results"]
    assert item["count"] == 1 and item["type"] == "$autocapture"
    assert item["elements"] == ELEMENTS
    (stored,) = sql(db, "SELECT hash, chain FROM insights.element_chains WHERE project_id = %s", project["id"])
    assert stored == (item["hash"], CHAIN)
    r = api("GET", f"/api/projects/{project['id']}/elements/values/?key=text", project["key"])
    assert r.json() == [{"name": "now"}]

    # Element filters in a trend count the click.
    assert trend_total(project, []) == 1
    assert trend_total(project, [{"key": "selector", "value": "#app > nav.top > a#buy", "type": "element"}]) == 1
    assert trend_total(project, [{"key": "selector", "value": "div.wrap span.label", "type": "element"}]) == 1
    assert trend_total(project, [{"key": "selector", "value": "nav > span", "type": "element"}]) == 0
    assert trend_total(project, [{"key": "text", "value": "Buy now", "type": "element"}]) == 1
    assert trend_total(project, [{"key": "href", "value": HREF, "type": "element"}]) == 1
    assert trend_total(project, [{"key": "href", "value": "/elsewhere", "type": "element"}]) == 0
    assert trend_total(project, [{"key": "tag_name", "value": "nav", "type": "element"}]) == 1


def test_capture_preflight_and_cors_headers(project):
    origin = "http://shop.example:8080"
    r = api("OPTIONS", "/i/v0/e/", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == origin
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert r.headers["Access-Control-Allow-Headers"] == "X-Requested-With,Content-Type"
    # Without an Origin: no CORS headers; the personal-key API keeps `*` for any Origin.
    r = api("POST", "/e/", json={"api_key": project["token"], "event": "e", "distinct_id": "d"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = api("GET", f"/api/projects/{project['id']}/elements/", project["key"], headers={"Origin": origin})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers


def test_sdk_bodies_from_another_origin(project, db):
    """text/plain gzip (compression=gzip-js) and form-encoded base64 (older posthog-js) bodies."""
    import base64
    import gzip

    origin = "http://shop.example"
    ev = {"event": "$autocapture", "distinct_id": "d1", "properties": {"token": project["token"],
                                                                       "$elements_chain": CHAIN}}
    r = api("POST", "/e/?compression=gzip-js&ip=1&ver=1.449.2", data=gzip.compress(json.dumps([ev]).encode()),
            headers={"Content-Type": "text/plain", "Origin": origin})
    assert r.status_code == 200 and r.json() == {"status": 1}, r.text
    assert r.headers["Access-Control-Allow-Origin"] == origin
    b64 = base64.b64encode(json.dumps(dict(ev, distinct_id="d2")).encode()).decode()
    r = api("POST", "/i/v0/e/", data={"data": b64, "compression": "base64"},
            headers={"Origin": origin})
    assert r.status_code == 200 and r.json() == {"status": 1}, r.text
    rows = sql(db, "SELECT distinct_id, elements_chain FROM insights.events WHERE project_id = %s "
                   "ORDER BY distinct_id", project["id"])
    assert rows == [("d1", CHAIN), ("d2", CHAIN)]
    (n,) = sql(db, "SELECT count(*) FROM insights.element_chains WHERE project_id = %s", project["id"])[0]
    assert n == 1


def test_flags_and_remote_config(project):
    origin = "http://shop.example"
    for path in ("/flags/?v=2", "/decide/?v=3"):
        r = api("POST", path, json={"token": project["token"], "distinct_id": "d"}, headers={"Origin": origin})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["flags"] == {} and body["featureFlags"] == {} and body["errorsWhileComputingFlags"] is False
        assert body["autocapture_opt_out"] is False
        assert r.headers["Access-Control-Allow-Origin"] == origin
    r = api("POST", "/flags/?v=2", json={"token": "phc_unknown", "distinct_id": "d"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"
    r = api("GET", f"/array/{project['token']}/config")
    assert r.status_code == 200
    assert r.json()["token"] == project["token"] and r.json()["autocapture_opt_out"] is False
    r = api("GET", "/array/phc_unknown/config")
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"
    r = api("GET", f"/array/{project['token']}/config.js", headers={"Origin": origin})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/javascript")
    assert r.headers["Access-Control-Allow-Origin"] == origin
    assert r.text.startswith("(function() {\n  window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {};")
    tok = project["token"]
    assert f'window._POSTHOG_REMOTE_CONFIG["{tok}"] = {{config: {{"token" : "{tok}"' in r.text
    r = api("GET", "/array/phc_unknown/config.js")
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"
