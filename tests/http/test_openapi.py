"""The OpenAPI document at /api/schema/ is generated from the routing table (nginx/routes.conf),
and every path+method it documents is really routed: without credentials each answers PostHog's
401 (or, for the token-authenticated capture paths, a 4xx that is not the 404 of an unknown path).
"""

import importlib.util
import json
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
    # operationIds: <route>_<method>[_one|_<n>][_env] (scripts/openapi.py unique_operation_ids)
    documented = {re.sub(r"(_one|_\d+)?(_env)?$", "", op["operationId"]).rsplit("_", 1)[0]
                  for item in schema()["paths"].values() for op in item.values()}
    assert rpcs == documented


def test_operation_ids_are_unique():
    ids = [op["operationId"] for item in schema()["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


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


# --- Parameters, bodies, responses (issue 17 item 2) -----------------------------------------

QUERY_SCHEMAS = json.load(open(os.path.join(ROOT, "docs", "openapi", "query-schemas.json")))


def test_document_is_valid_openapi_30():
    # The OpenAPI 3.0 meta-schema as schemathesis (pinned) ships it.
    from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR

    errors = [str(e)[:300] for e in OPENAPI_30_VALIDATOR.iter_errors(schema())]
    assert errors == []


def test_bodies_use_the_schemas_the_rust_model_generates():
    doc = schema()
    # The checked-in file (kept current by the core test model::schema) is in the document as is.
    for name, s in QUERY_SCHEMAS.items():
        assert doc["components"]["schemas"][name] == s, name
    body = lambda path, method: doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    assert body("/api/projects/{project_id}/insights/funnel/", "post") == {"anyOf": [
        {"$ref": "#/components/schemas/LegacyFilter"}, {"$ref": "#/components/schemas/InsightQuery"}]}
    q = body("/api/projects/{project_id}/query/", "post")
    assert q["required"] == ["query"] and q["properties"]["query"] == {"$ref": "#/components/schemas/InsightQuery"}
    assert body("/api/projects/{project_id}/insights/{id}/", "patch")["properties"]["filters"] == {
        "$ref": "#/components/schemas/LegacyFilter"}
    # A node's enums are the parser's name lists.
    funnels = doc["components"]["schemas"]["FunnelsQuery"]["properties"]["funnelsFilter"]["properties"]
    assert funnels["funnelOrderType"]["enum"] == ["ordered", "strict", "unordered", None]
    assert doc["components"]["schemas"]["InsightVizNode"]["required"] == ["kind", "source"]


def test_query_parameters_are_documented():
    doc = schema()
    params = lambda path, method="get": {
        p.get("name") or p["$ref"].rsplit(".", 1)[1] for p in doc["paths"][path][method]["parameters"] if p.get("in") != "path"}
    funnel = params("/api/projects/{project_id}/insights/funnel/")
    assert {"events", "actions", "funnel_window_interval", "funnel_order_type", "breakdown", "date_from"} <= funnel
    assert params("/api/projects/{project_id}/insights/funnel/", "post") == set()
    assert {"limit", "offset", "search", "short_id", "refresh", "format", "basic"} <= params("/api/projects/{project_id}/insights/")
    assert {"stickiness_days", "limit", "offset", "events"} <= params("/api/projects/{project_id}/persons/stickiness/")
    assert {"target_date", "lifecycle_type"} <= params("/api/projects/{project_id}/persons/lifecycle/")
    assert {"path_start_key", "path_end_key", "path_dropoff_key"} <= params("/api/projects/{project_id}/persons/path/")
    assert {"distinct_id", "properties", "search"} <= params("/api/projects/{project_id}/persons/")
    refresh = next(p for p in doc["paths"]["/api/projects/{project_id}/insights/{id}/"]["get"]["parameters"]
                   if p.get("name") == "refresh")
    assert "force_blocking" in refresh["schema"]["enum"]


def test_list_responses_have_their_page_shape():
    doc = schema()
    ok = lambda path: doc["paths"][path]["get"]["responses"]["200"]["content"]
    assert ok("/api/projects/{project_id}/actions/")["application/json"]["schema"] == {"$ref": "#/components/schemas/Page"}
    assert doc["components"]["schemas"]["Page"]["required"] == ["results", "count", "next", "previous"]
    assert "text/csv" in ok("/api/projects/{project_id}/insights/")
    assert ok("/api/projects/{project_id}/insights/trend/")["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InsightResult"}
