"""No secret in the stack's logs (issue 17 item 7; docs/api.md#logs).

Personal API keys and sharing tokens reach the stack in the Authorization header, in a JSON body
and in the query string (PostHog accepts all three). Whatever the route answers (200, 400, 401,
403, 404, 405, 429 is covered by test_limits), none of the raw secrets may appear in the
Postgres, PostgREST or nginx logs of the stack afterwards. Keys are stored hashed (pg_regress
`security`), so a leak could only come from a log line.
"""

import os
import urllib.parse

import pytest
from conftest import api

STACK = os.path.dirname(os.environ.get("PGHOST", "/nonexistent/run"))
LOGS = ["postgres.log", "postgrest.log", "nginx/access.log", "nginx/error.log"]


def _log_sizes():
    return {name: os.path.getsize(os.path.join(STACK, name)) for name in LOGS if os.path.exists(os.path.join(STACK, name))}


def _log_text_since(sizes):
    out = {}
    for name, start in sizes.items():
        with open(os.path.join(STACK, name), "rb") as f:
            f.seek(start)
            out[name] = f.read().decode("utf-8", "replace")
    return out


@pytest.fixture
def logs():
    if not os.path.exists(os.path.join(STACK, "nginx/access.log")):
        pytest.skip(f"no stack logs under {STACK} (PGHOST must be the stack's run directory)")
    sizes = _log_sizes()
    return lambda: _log_text_since(sizes)


def test_keys_and_tokens_never_reach_a_log(make_project, logs):
    p = make_project()
    pid, key = p["id"], p["key"]
    iid = api("POST", f"/api/projects/{pid}/insights/", key,
              json={"name": "secret", "filters": {"insight": "TRENDS", "events": [{"id": "e"}]}}).json()["id"]
    share = api("PATCH", f"/api/projects/{pid}/insights/{iid}/sharing/", key, json={"enabled": True}).json()["access_token"]
    wrong = "phx_" + "w" * 40
    q = urllib.parse.quote
    calls = [
        ("GET", f"/api/projects/{pid}/insights/?personal_api_key={key}", None, None),          # 200, key in the query
        ("GET", f"/api/projects/{pid}/insights/?limit=x&personal%5Fapi%5Fkey={q(key)}", None, None),  # %-encoded name
        ("GET", f"/api/projects/{pid}/persons/", key, None),                                   # 200, header
        ("POST", f"/api/projects/{pid}/insights/trend/", None,
         {"personal_api_key": key, "events": [{"id": "e"}]}),                                   # 200, key in the body
        ("POST", f"/api/projects/{pid}/insights/trend/", key, {"events": "not a list"}),      # 400
        ("GET", f"/api/projects/{pid}/insights/?personal_api_key={wrong}", None, None),        # 401 wrong key
        ("GET", f"/api/projects/{pid + 1000000}/insights/", key, None),                         # 403/404 other project
        ("DELETE", f"/api/projects/{pid}/actions/1/", key, None),                               # 404/405
        ("GET", f"/shared/{share}.json", None, None),                                           # 200, token in the path
        ("GET", f"/api/projects/{pid}/insights/{iid}/?sharing_access_token={share}", None, None),
        ("GET", f"/decide/?v=3&token={p['token']}&personal_api_key={key}", None, None),
    ]
    codes = []
    for method, path, k, body in calls:
        r = api(method, path, k, json=body)
        assert r.headers["Content-Type"].startswith("application/json"), (path, r.text)
        codes.append(r.status_code)
    assert {200, 400, 401}.issubset(set(codes)), codes
    text = logs()
    assert text["nginx/access.log"].count("\n") >= len(calls)  # the requests were logged ...
    for name, body in text.items():
        for secret in (key, q(key, safe=""), wrong, share):
            assert secret not in body, f"{name} holds a secret: {secret[:8]}…"
    # ... with their paths, so the log stays useful.
    assert f"GET /api/projects/{pid}/persons/ 200" in text["nginx/access.log"].replace('"', "")
    assert "[query string withheld: it names a key or token]" in text["nginx/access.log"]
    assert "/shared/[token withheld]" in text["nginx/access.log"]
