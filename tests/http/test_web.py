"""The web page (web/, docs/web.md) end to end: nginx serves the built page at `/`, the endpoints
it adds (GET /api/projects/, event_definitions/, the keyless /shared/<token>.json), and headless
Chromium (Debian's, driven by playwright-core through web/e2e/browser.mjs) checking that the
numbers drawn equal the API's, that the controls re-run the query through the API, that shared
links open without a key and stop the moment sharing is disabled, and that a wrong key shows
PostHog's error. Screenshots go to $PGI_WEB_ARTEFACTS (default web/test-artefacts/)."""

import datetime as dt
import importlib.util
import json
import os
import pathlib
import random
import subprocess
import uuid

import pytest

from conftest import BASE_URL, api, assert_error, sql

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTEFACTS = pathlib.Path(os.environ.get("PGI_WEB_ARTEFACTS", ROOT / "web" / "test-artefacts"))
_spec = importlib.util.spec_from_file_location("demo_insights", ROOT / "scripts" / "demo_insights.py")
demo_insights = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo_insights)


def shop_events(seed=7, persons=150, days=20):
    """A small deterministic shop: pageviews with browsers and countries, a view → cart →
    checkout → purchase funnel, signups; spread over the last `days` days."""
    rnd = random.Random(seed)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    out = []
    for p in range(persons):
        who = f"web-{p}"
        props = {"$browser": rnd.choice(["Chrome", "Chrome", "Safari", "Firefox"]),
                 "$geoip_country_code": rnd.choice(["US", "DE", "FR"])}
        ts = now - dt.timedelta(days=rnd.uniform(0.5, days))
        for _ in range(1 + rnd.randrange(4)):
            if ts >= now:
                break
            steps = ["$pageview", "view_item", "add_to_cart", "checkout", "purchase"][: 1 + rnd.randrange(5)]
            if rnd.random() < 0.2:
                steps.append("signed_up")
            for ev in steps:
                ts += dt.timedelta(minutes=rnd.uniform(1, 30))
                out.append({"event": ev, "distinct_id": who, "timestamp": ts.isoformat(), "uuid": str(uuid.uuid4()),
                            "properties": {**props, "$current_url": rnd.choice(["https://x.test/", "https://x.test/pricing"])}})
            ts += dt.timedelta(days=rnd.uniform(0.5, 4))
    return [e for e in out if e["timestamp"] < now.isoformat()]


@pytest.fixture(scope="module")
def shop(db):
    name = f"web-{uuid.uuid4().hex[:8]}"
    (row,) = sql(db, "SELECT project_id, personal_api_key FROM insights.create_project_with_key(%s, %s)",
                 name, f"{name}@example.com")
    pid, key = row
    sql(db, "SELECT insights.capture_batch(%s, %s::jsonb)", pid, json.dumps(shop_events()))
    ids = demo_insights.seed(BASE_URL, pid, key)
    return {"id": pid, "key": key, "insights": ids}


def saved(shop, name):
    """The API's answer for a saved insight, as the page asks for it (refresh=blocking)."""
    r = api("GET", f"/api/projects/{shop['id']}/insights/{shop['insights'][name]}/?refresh=blocking", shop["key"])
    assert r.status_code == 200, r.text
    return r.json()


BROWSER_INSIGHTS = {
    "funnel": "Shop funnel", "funnel_breakdown": "Shop funnel by browser", "trend": "Daily pageviews",
    "time_to_convert": "Time to purchase", "funnel_trends": "Purchase conversion, daily",
    "retention": "Weekly retention", "stickiness": "Pageview stickiness", "lifecycle": "Pageview lifecycle",
    "paths": "User paths", "pie": "Pageviews by country", "number": "Purchases this month",
    "compare": "Purchases vs the previous period", "bars": "Unique visitors by browser",
    "cumulative": "Signups, cumulative", "table": "Shop events table",
}


@pytest.fixture(scope="module")
def browser(shop):
    """One run of the browser script over the shop project; what it saw."""
    env = {**os.environ, "PGI_BASE_URL": BASE_URL, "PGI_PERSONAL_API_KEY": shop["key"],
           "PGI_PROJECT_ID": str(shop["id"]), "PGI_WEB_ARTEFACTS": str(ARTEFACTS),
           "PGI_WEB_INSIGHTS": json.dumps({k: shop["insights"][v] for k, v in BROWSER_INSIGHTS.items()})}
    proc = subprocess.run(["node", "e2e/browser.mjs"], cwd=ROOT / "web", env=env, capture_output=True,
                          text=True, timeout=600)
    seen = json.loads(proc.stdout) if proc.stdout.strip() else {}
    assert proc.returncode == 0 and "error" not in seen, (seen.get("error"), proc.stderr[-3000:], seen.get("console_errors"))
    (ARTEFACTS / "first-paint-ms.json").write_text(json.dumps(seen["paint_ms"], indent=1))
    return seen


def nums(row):
    return [float(v) for v in row]


# ---------------------------------------------------------------- what nginx serves


def test_page_is_served_at_root_and_api_paths_are_unchanged():
    r = api("GET", "/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert '<div id="app"' in r.text
    script = next(p.split('"')[0] for p in r.text.split('src="')[1:] if p.startswith("/assets/"))
    js = api("GET", script)
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("application/javascript")
    # Everything else still belongs to the API: unknown paths answer its JSON 404.
    assert_error(api("GET", "/index.html"), 404, "invalid_request", "not_found")
    assert_error(api("GET", "/nothing/here"), 404, "invalid_request", "not_found")
    assert api("GET", "/api/schema/").json()["paths"]["/shared/{id}.json"]["get"]


def test_shared_page_path_serves_the_page():
    r = api("GET", "/shared/AbcdEfgh12345678")
    assert r.status_code == 200 and '<div id="app"' in r.text


# ---------------------------------------------------------------- GET /api/projects/


def test_projects_lists_the_key_users_projects(db, make_project):
    a = make_project()
    make_project()  # another user's project is not listed
    r = api("GET", "/api/projects/", a["key"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 1 and body["next"] is None and body["previous"] is None
    assert body["results"][0]["id"] == a["id"] and body["results"][0]["name"] == a["name"]
    assert body["results"][0]["api_token"] == a["token"]


def test_projects_paging_and_scoped_teams(db, make_project):
    a = make_project()
    # a second project of the same user
    (pid2,) = sql(db, "INSERT INTO insights.projects (name, api_token) VALUES ('second', %s) RETURNING id",
                  "phc_" + uuid.uuid4().hex)[0]
    sql(db, "INSERT INTO insights.project_members (project_id, user_id) VALUES (%s, %s)", pid2, a["user_id"])
    r = api("GET", "/api/projects/?limit=1", a["key"]).json()
    assert r["count"] == 2 and [p["id"] for p in r["results"]] == [a["id"]]
    assert r["next"].endswith("/api/projects/?limit=1&offset=1")
    r2 = api("GET", "/api/projects/?limit=1&offset=1", a["key"]).json()
    assert [p["id"] for p in r2["results"]] == [pid2] and r2["next"] is None and r2["previous"]
    sql(db, "UPDATE insights.personal_api_keys SET scoped_teams = ARRAY[%s]::bigint[] WHERE user_id = %s", pid2, a["user_id"])
    assert [p["id"] for p in api("GET", "/api/projects/", a["key"]).json()["results"]] == [pid2]


def test_projects_needs_project_read_and_a_valid_key(make_project):
    p = make_project(scopes=("insight:read",))
    body = assert_error(api("GET", "/api/projects/", p["key"]), 403, "authentication_error", "permission_denied")
    assert body["detail"] == "API key missing required scope 'project:read'"
    ok = make_project(scopes=("project:read",))
    assert api("GET", "/api/projects/", ok["key"]).status_code == 200
    assert_error(api("GET", "/api/projects/?limit=x", ok["key"]), 400, "validation_error", "invalid_input", "limit")
    assert_error(api("GET", "/api/projects/", "phx_nope"), 401, "authentication_error", "authentication_failed")
    assert_error(api("POST", "/api/projects/", p["key"], json={}), 405, "invalid_request", "method_not_allowed")


# ---------------------------------------------------------------- event_definitions


def test_event_definitions_lists_distinct_names(shop, make_project):
    r = api("GET", f"/api/projects/{shop['id']}/event_definitions/", shop["key"])
    assert r.status_code == 200, r.text
    names = [d["name"] for d in r.json()["results"]]
    assert names == sorted({e["event"] for e in shop_events()})
    r = api("GET", f"/api/projects/{shop['id']}/event_definitions/?search=CART", shop["key"]).json()
    assert r["count"] == 1 and r["results"] == [{"id": "add_to_cart", "name": "add_to_cart"}]
    other = make_project()
    assert api("GET", f"/api/projects/{other['id']}/event_definitions/", other["key"]).json()["results"] == []
    assert_error(api("GET", f"/api/projects/{shop['id']}/event_definitions/", other["key"]), 403,
                 "authentication_error", "permission_denied")


# ---------------------------------------------------------------- /shared/<token>.json


def test_shared_json_follows_the_sharing_switch(shop):
    iid = shop["insights"]["Daily pageviews"]
    path = f"/api/projects/{shop['id']}/insights/{iid}/sharing/"
    token = api("PATCH", path, shop["key"], json={"enabled": True}).json()["access_token"]
    r = api("GET", f"/shared/{token}.json")
    assert r.status_code == 200, r.text
    ins = r.json()["insight"]
    assert ins["id"] == iid and ins["name"] == "Daily pageviews"
    assert ins["result"][0]["data"] == saved(shop, "Daily pageviews")["result"][0]["data"]
    assert "created_by" not in ins and "last_modified_by" not in ins  # no user data for viewers
    assert_error(api("POST", f"/shared/{token}.json"), 405, "invalid_request", "method_not_allowed")
    api("PATCH", path, shop["key"], json={"enabled": False})
    assert_error(api("GET", f"/shared/{token}.json"), 404, "invalid_request", "not_found")
    api("PATCH", path, shop["key"], json={"enabled": True})
    assert api("GET", f"/shared/{token}.json").status_code == 200  # the same token again
    api("PATCH", f"/api/projects/{shop['id']}/insights/{iid}/", shop["key"], json={"deleted": True})
    assert_error(api("GET", f"/shared/{token}.json"), 404, "invalid_request", "not_found")
    api("PATCH", f"/api/projects/{shop['id']}/insights/{iid}/", shop["key"], json={"deleted": False})
    api("PATCH", path, shop["key"], json={"enabled": False})


def test_shared_json_rejects_unknown_and_malformed_tokens():
    for token in ("AbcdEfgh12345678", "short", "x" * 65):
        assert_error(api("GET", f"/shared/{token}.json"), 404, "invalid_request", "not_found")


# ---------------------------------------------------------------- in the browser


def test_wrong_key_shows_posthogs_error(browser):
    assert browser["wrong_key_message"] == "Personal API key found in request Authorization header is invalid."


def test_saved_insights_list_search_and_favourites(browser, shop):
    assert sorted(browser["list_names"]) == sorted(shop["insights"])
    assert sorted(browser["search_names"]) == ["Shop funnel", "Shop funnel by browser"]
    assert browser["favourite_names"] == ["Shop funnel"]  # favourites within the search


def test_funnel_numbers_equal_the_api(browser, shop):
    steps = saved(shop, "Shop funnel")["result"]
    rows = browser["insights"]["funnel"]["rows"]
    assert [int(r[2]) for r in rows] == [s["count"] for s in steps]
    assert [r[1] for r in rows] == [f"{i + 1}. {s['name']}" for i, s in enumerate(steps)]
    assert [float(r[3]) for r in rows] == [round(1000 * s["count"] / steps[0]["count"]) / 10 for s in steps]
    assert [int(r[5]) for r in rows[1:]] == [a["count"] - b["count"] for a, b in zip(steps, steps[1:])]
    breakdown = saved(shop, "Shop funnel by browser")["result"]
    got = {(r[0], r[1]): int(r[2]) for r in browser["insights"]["funnel_breakdown"]["rows"]}
    want = {(s[0]["breakdown_value"][0], f"{i + 1}. {st['name']}"): st["count"] for s in breakdown for i, st in enumerate(s)}
    assert got == want


def test_funnel_views_equal_the_api(browser, shop):
    ttc = saved(shop, "Time to purchase")["result"]
    assert [[float(r[0]), int(r[2])] for r in browser["insights"]["time_to_convert"]["rows"]] == \
        [[float(sec), n] for sec, n in ttc["bins"]]
    (conv,) = saved(shop, "Purchase conversion, daily")["result"]
    (row,) = browser["insights"]["funnel_trends"]["rows"]
    assert nums(row[1:-1]) == [float(v) for v in conv["data"]]
    viz = browser["viz_change"]
    assert viz["body"]["funnel_viz_type"] == "time_to_convert" and viz["body"]["insight"] == "FUNNELS"
    want = api("POST", f"/api/projects/{shop['id']}/insights/funnel/", shop["key"], json=viz["body"]).json()["result"]
    assert [int(r[2]) for r in viz["table"]["rows"]] == [n for _, n in want["bins"]]


def test_trend_numbers_equal_the_api(browser, shop):
    (series,) = saved(shop, "Daily pageviews")["result"]
    t = browser["insights"]["trend"]
    assert t["columns"] == ["Series", *series["labels"], "Total"]
    assert t["rows"] == [[series["label"], *[str(v) for v in series["data"]], str(series["count"])]]
    for label in ("bars", "compare", "cumulative", "lifecycle", "stickiness"):
        want = saved(shop, BROWSER_INSIGHTS[label])["result"]
        assert [nums(r[1:-1]) for r in browser["insights"][label]["rows"]] == [[float(v) for v in s["data"]] for s in want], label
    pie = saved(shop, "Pageviews by country")["result"]
    assert {r[0].split(" · ")[1]: float(r[1]) for r in browser["insights"]["pie"]["rows"]} == \
        {s["breakdown_value"]: float(s["aggregated_value"]) for s in pie}
    number = saved(shop, "Purchases this month")["result"]
    assert browser["insights"]["number"]["rows"] == [["purchase", str(number[0]["aggregated_value"])]]


def test_retention_and_paths_equal_the_api(browser, shop):
    cohorts = saved(shop, "Weekly retention")["result"]
    rows = browser["insights"]["retention"]["rows"]
    assert [r[0] for r in rows] == [c["label"] for c in cohorts]
    assert [[int(v) for v in r[3:]] for r in rows] == [[v["count"] for v in c["values"]] for c in cohorts]
    edges = saved(shop, "User paths")["result"]
    assert {(r[0], r[1]): int(r[2]) for r in browser["insights"]["paths"]["rows"]} == \
        {(e["source"], e["target"]): e["value"] for e in edges}


def test_controls_rerun_the_query_through_the_api(browser, shop):
    date = browser["date_change"]
    assert date["status"] == 200 and date["body"]["date_from"] == "-30d"
    assert date["body"]["events"][0]["id"] == "$pageview"
    want = api("POST", f"/api/projects/{shop['id']}/insights/trend/", shop["key"], json=date["body"]).json()["result"]
    assert [nums(r[1:-1]) for r in date["table"]["rows"]] == [[float(v) for v in s["data"]] for s in want]
    bd = browser["breakdown_change"]
    assert bd["body"]["breakdown"] == "$browser" and bd["body"]["breakdown_type"] == "event"
    assert bd["body"]["date_from"] == "-30d"  # the earlier edit is kept
    want = api("POST", f"/api/projects/{shop['id']}/insights/trend/", shop["key"], json=bd["body"]).json()["result"]
    assert {r[0].split(" · ")[1]: nums(r[1:-1]) for r in bd["table"]["rows"]} == \
        {s["breakdown_value"]: [float(v) for v in s["data"]] for s in want}
    assert browser["interval_change"]["body"]["interval"] == "week"


def test_persons_panel_lists_the_persons_behind_a_point(browser):
    assert browser["persons_status"] == 200 and browser["persons_listed"] > 0


def test_shared_link_renders_without_key_and_stops_when_disabled(browser, shop):
    assert "/shared/" in browser["share_link"]
    steps = saved(shop, "Shop funnel")["result"]
    assert [int(r[2]) for r in browser["shared_table"]["rows"]] == [s["count"] for s in steps]
    assert browser["shared_has_header"] and not browser["embed_has_header"]
    assert browser["unshare_status"] == 200
    assert browser["unshared_message"] == "This link is not shared (or no longer)."
    token = browser["share_link"].rsplit("/", 1)[1]
    assert_error(api("GET", f"/shared/{token}.json"), 404, "invalid_request", "not_found")


def test_key_stays_out_of_urls_and_no_script_errors(browser):
    assert browser["key_in_urls"] is False
    # Only the expected failed loads (the wrong key's 401, the disabled link's 404), no script error.
    assert all(m.startswith("Failed to load resource") for m in browser["console_errors"]), browser["console_errors"]
    assert all(v > 0 for v in browser["paint_ms"].values())
    for name in ("insight-funnel.png", "insight-trend.png", "insight-retention.png", "insight-paths.png", "shared-phone.png"):
        assert (ARTEFACTS / name).stat().st_size > 10_000, name


def test_csv_download_is_the_apis_csv(browser, shop):
    csv = browser["csv"]
    assert csv["name"].endswith(".csv") and csv["body"]["breakdown"] == "$browser"
    want = api("POST", f"/api/projects/{shop['id']}/insights/trend/?format=csv", shop["key"], json=csv["body"])
    assert want.status_code == 200 and want.headers["Content-Type"].startswith("text/csv")
    assert csv["text"] == want.text


def test_builder_previews_and_saves_a_funnel(browser, shop):
    b = browser["builder"]
    assert b["event_options"] == sorted({e["event"] for e in shop_events()})
    body = b["preview_body"]
    assert [e["id"] for e in body["events"]] == ["view_item", "purchase"]
    assert body["properties"] == [{"key": "$browser", "value": "Chrome", "operator": "exact", "type": "event"}]
    want = api("POST", f"/api/projects/{shop['id']}/insights/funnel/", shop["key"], json=body).json()["result"]
    assert [int(r[2]) for r in b["preview_table"]["rows"]] == [s["count"] for s in want]
    assert b["save_status"] == 201 and b["title"] == "Built in the browser"
    created = api("GET", f"/api/projects/{shop['id']}/insights/{b['created_id']}/?refresh=blocking", shop["key"]).json()
    assert created["saved"] is True and created["filters"]["insight"] == "FUNNELS"
    assert [int(r[2]) for r in b["saved_table"]["rows"]] == [s["count"] for s in created["result"]]


def test_opening_an_insight_counts_as_a_view(browser, shop):
    # The page POSTs insights/:id/viewed/ as PostHog's frontend does. Opened last: the builder's
    # insight, before it the funnel (sharing), before that the trend (controls).
    viewed = api("GET", f"/api/projects/{shop['id']}/insights/my_last_viewed/", shop["key"]).json()
    assert [i["id"] for i in viewed[:3]] == [browser["builder"]["created_id"], shop["insights"]["Shop funnel"],
                                            shop["insights"]["Daily pageviews"]]


def test_missing_insight_shows_the_apis_error(browser):
    assert browser["missing_insight_message"] == "Not found."


def test_refresh_in_force_cache_mode_reads_the_cache(browser, shop):
    r = browser["refresh_cache"]
    assert r["status"] == 200
    (series,) = saved(shop, "Daily pageviews")["result"]
    assert nums(r["table"]["rows"][0][1:-1]) == [float(v) for v in series["data"]]
