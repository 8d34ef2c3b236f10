"""Regressions for what contract fuzzing (tests/http/test_contract.py) found once the OpenAPI
document described query parameters and bodies: each case is the smallest request that failed.
"""

import json
import urllib.parse

from conftest import api


def test_overlong_get_filter_is_posthog_json_414(project):
    # GET insight endpoints take the legacy filter in the query string; a request line over
    # nginx's buffer was nginx's HTML 414 (undocumented, not PostHog's body).
    events = json.dumps([{"id": "$pageview", "name": "x" * 40_000}])
    r = api("GET", f"/api/projects/{project['id']}/insights/trend/?events={urllib.parse.quote(events)}", project["key"])
    assert r.status_code == 414, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"type": "validation_error", "code": "request_too_large",
                        "detail": "Request line too long (the limit is 32 kB): send the filter as a POST body.",
                        "attr": None}


def test_get_filter_up_to_the_limit_is_computed(project):
    # 20 kB of filter in the query string still reaches the engine (nginx's default was 8 kB).
    events = json.dumps([{"id": "$pageview", "custom_name": "x" * 20_000}])
    r = api("GET", f"/api/projects/{project['id']}/insights/trend/?events={urllib.parse.quote(events)}", project["key"])
    assert r.status_code == 200, r.text
    assert r.json()["result"][0]["label"] == "x" * 20_000
