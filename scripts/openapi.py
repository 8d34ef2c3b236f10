#!/usr/bin/env python3
"""Build the OpenAPI 3 document of the PostHog-path API from the routing table.

nginx/routes.conf is the one list of endpoints: each row maps a path regex to a route name and
ends with an annotation comment `#: METHODS | scope | summary` (scope `-` for the token-authenticated
capture paths; `x:read/write` = read for GET/HEAD, write otherwise). This script expands each row
into its concrete paths (both `/api/projects/{id}/` and `/api/environments/{id}/`, alternatives like
`(batch|capture)`), and writes the document that nginx serves at /api/schema/. A row without an
annotation is an error, so the document cannot silently fall behind the routes.

With --routes-sql it prints instead the rows of api.routes that the dispatcher (sql/api/20_api.sql)
reads: the same annotations drive the method and scope checks.

    scripts/openapi.py nginx/routes.conf OUT.json
    scripts/openapi.py --routes-sql nginx/routes.conf | psql
"""

import itertools
import json
import re
import sys

ROW = re.compile(r'^\s*~(\^\S+)\s+"(\w+)";\s*#:\s*(.+)$')
CAPTURE_NAMES = {"pgi_project": None, "pgi_id": "id"}
ERROR = {
    "type": "object",
    "description": "PostHog's error body (drf-exceptions-hog).",
    "properties": {
        "type": {"type": "string", "example": "validation_error"},
        "code": {"type": "string", "example": "invalid_input"},
        "detail": {"type": "string"},
        "attr": {"type": "string", "nullable": True},
    },
    "required": ["type", "code", "detail", "attr"],
}


def expand(regex):
    """`^/api/(projects|environments)/(?<pgi_project>[^/]+)/x/?$` → concrete OpenAPI paths."""
    body = regex.lstrip("^").rstrip("$")
    body = re.sub(r"/\?$", "/", body)  # optional trailing slash: document the canonical form
    parts = re.split(r"(\((?:\?<\w+>)?[^()]*\))", body)
    choices = []
    for part in parts:
        m = re.fullmatch(r"\(\?<(\w+)>[^()]*\)", part)
        if m:
            choices.append([("{%s}" % m.group(1), m.group(1))])
        elif part.startswith("(") and part.endswith(")"):
            choices.append([(alt, None) for alt in part[1:-1].split("|")])
        elif part:
            choices.append([(part.replace("\\.", "."), None)])  # a literal dot (/shared/{id}.json)
    paths = []
    for combo in itertools.product(*choices):
        text = "".join(t for t, _ in combo).replace("\\.", ".")  # `config\.js` documents as config.js
        prefix = "environment_id" if "/api/environments/" in text else "project_id"
        text = text.replace("{pgi_project}", "{%s}" % prefix).replace("{pgi_id}", "{id}")
        paths.append(text)
    return paths


def method_scope(scope, method):
    """The scope one method needs: `x:read/write` splits into read (GET/HEAD) and write."""
    if not scope.endswith(":read/write"):
        return scope
    return scope.replace("/write", "") if method in ("GET", "HEAD") else scope.replace("read/write", "write")


# What routes.conf lets through for each path parameter (anything else is a 404).
PARAM_PATTERNS = {"project_id": r"^\d+$", "environment_id": r"^\d+$", "id": r"^[A-Za-z0-9_-]+$"}


def error_response(description):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def operation(method, rpc, scope, summary, path):
    scope = method_scope(scope, method)
    params = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "pattern": PARAM_PATTERNS.get(name, "^[^/]+$")}}
        for name in re.findall(r"\{(\w+)\}", path)
    ]
    op = {
        "operationId": f"{rpc}_{method.lower()}" + ("_env" if "/environments/" in path else ""),
        "summary": summary,
        "parameters": params,
        "responses": {
            # Any JSON: most answers are objects, a few are lists (elements/values, my_last_viewed).
            "200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
            "400": error_response("Invalid input"),
            "404": error_response("Not found"),
            "405": error_response("Method not allowed for this object"),
            "504": error_response("The query ran over the statement timeout"),
        },
        "tags": [rpc.split("_")[0]],
    }
    if scope != "-":
        op["security"] = [{"PersonalAPIKeyAuth": [scope]}]
        op["x-required-scopes"] = [scope]
        op["responses"]["401"] = error_response("Missing or invalid personal API key")
        op["responses"]["403"] = error_response("Missing scope or no access to the project")
        op["responses"]["429"] = error_response("Rate limit used up (see the Retry-After header)")
    else:
        op["security"] = []
        # Token-authenticated (capture, flags, remote config): a missing or unknown project token.
        op["responses"]["401"] = error_response("Missing or invalid project API token")
    if method in ("POST", "PATCH", "PUT"):
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}}
        # Created: the object, or no body at all (insights/:id/viewed/, as PostHog).
        op["responses"]["201"] = {"description": "Created"}
        op["responses"]["413"] = error_response("Body over 20 MB")
    if method == "DELETE":
        op["responses"]["204"] = {"description": "Deleted or cancelled (no body)"}
    if method in ("POST", "DELETE"):
        op["responses"]["202"] = {"description": "Accepted (persons deleted: bulk_delete, DELETE of a person)"}
    return op


SCOPE = re.compile(r"^(-|[a-z_]+:(read|write|read/write))$")


def rows(routes_text):
    """(regex, route, [methods], scope, summary) per routing row; bad annotations are errors."""
    out = []
    for lineno, line in enumerate(routes_text.splitlines(), 1):
        stripped = line.strip()
        if not stripped.startswith("~"):
            continue
        m = ROW.match(line)
        if not m:
            raise SystemExit(f"routes.conf:{lineno}: route without a `#: METHODS | scope | summary` annotation")
        regex, rpc, note = m.groups()
        fields = [f.strip() for f in note.split("|")]
        if len(fields) != 3:
            raise SystemExit(f"routes.conf:{lineno}: annotation must be `METHODS | scope | summary`")
        methods, scope, summary = fields
        if not SCOPE.match(scope):
            raise SystemExit(f"routes.conf:{lineno}: bad scope {scope!r}")
        out.append((regex, rpc, [x.strip() for x in methods.split(",")], scope, summary))
    return out


def routes_sql(routes_text):
    """INSERTs for api.routes; a route named twice must carry the same methods and scope."""
    seen = {}
    for _, rpc, methods, scope, _ in rows(routes_text):
        if rpc in seen and seen[rpc] != (methods, scope):
            raise SystemExit(f"routes.conf: route {rpc} has two different annotations")
        seen[rpc] = (methods, scope)
    values = ",\n".join(
        "  ('%s', ARRAY[%s], '%s')" % (rpc, ", ".join("'%s'" % m for m in methods), scope)
        for rpc, (methods, scope) in seen.items())
    return "INSERT INTO api.routes (route, methods, scope) VALUES\n" + values + ";\n"


def build(routes_text):
    paths = {}
    for regex, rpc, methods, scope, summary in rows(routes_text):
        for path in expand(regex):
            item = paths.setdefault(path, {})
            for method in methods:
                item[method.lower()] = operation(method, rpc, scope, summary, path)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "pg_insights: PostHog-compatible API",
            "version": "0.1.0",
            "description": "PostHog's REST paths served by PostgREST + nginx over the pg_insights extension. "
                           "Authenticate with a personal API key: `Authorization: Bearer phx_…`.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"PersonalAPIKeyAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR},
        },
    }


if __name__ == "__main__":
    if sys.argv[1] == "--routes-sql":
        with open(sys.argv[2]) as f:
            sys.stdout.write(routes_sql(f.read()))
        sys.exit(0)
    src, out = sys.argv[1], sys.argv[2]
    with open(src) as f:
        doc = build(f.read())
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
