"""The OpenAPI document at /api/schema/ is generated from the routing table (nginx/routes.conf),
and every path+method it documents is really routed: without credentials each answers PostHog's
401 (or, for the token-authenticated capture paths, a 4xx that is not the 404 of an unknown path).
"""

import importlib.util
import os
import re

import pytest
from conftest import api

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
ROUTES = os.path.join(ROOT, "nginx", "routes.conf")
_spec = importlib.util.spec_from_file_location("openapi", os.path.join(ROOT, "scripts", "openapi.py"))
openapi = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(openapi)
LOCAL = openapi.build(open(ROUTES).read())


def schema():
    r = api("GET", "/api/schema/")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def test_document_shape():
    doc = schema()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["PersonalAPIKeyAuth"] == {"type": "http", "scheme": "bearer"}
    op = doc["paths"]["/api/projects/{project_id}/insights/funnel/"]["post"]
    assert op["x-required-scopes"] == ["insight:read"]
    assert {p["name"] for p in op["parameters"]} == {"project_id"}
    assert "/api/environments/{environment_id}/insights/funnel/" in doc["paths"]


def test_served_document_is_the_routing_table():
    assert schema() == LOCAL


def test_every_route_is_documented():
    rpcs = set(re.findall(r'^\s*~\S+\s+"(\w+)";', open(ROUTES).read(), re.M))
    documented = {op["operationId"].removesuffix("_env").rsplit("_", 1)[0]
                  for item in schema()["paths"].values() for op in item.values()}
    assert rpcs == documented


def _cases():
    for path, item in LOCAL["paths"].items():
        for method, op in item.items():
            yield pytest.param(path, method.upper(), bool(op["security"]), id=f"{method.upper()} {path}")


@pytest.mark.parametrize("path,method,needs_key", list(_cases()))
def test_documented_paths_are_routed(path, method, needs_key):
    concrete = (path.replace("{project_id}", "1").replace("{environment_id}", "1")
                .replace("{id}", "00000000-0000-0000-0000-000000000000"))
    r = api(method, concrete)
    if needs_key:
        assert r.status_code == 401, r.text
        assert r.json()["code"] == "not_authenticated"
    elif path.startswith("/shared/"):
        # A keyless shared insight: an unknown token is the API's JSON 404 (not nginx's page).
        assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    else:
        assert 400 <= r.status_code < 500 and r.status_code != 404, r.text
