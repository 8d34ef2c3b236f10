#!/usr/bin/env python3
"""Seed the demo project's saved insights (scripts/demo_insights.json) through the REST API, as
any client would: POST insights/ for each, PATCH favourites. Skips a project that already has
saved insights, so `scripts/stack up --demo` stays idempotent. Used by the browser tests too.

    scripts/demo_insights.py BASE_URL PROJECT_ID PERSONAL_API_KEY   → prints "name<TAB>id" lines
"""
import json
import pathlib
import sys
import urllib.request

SPEC = pathlib.Path(__file__).with_name("demo_insights.json")


def call(method, url, key, body=None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.load(resp)


def seed(base, project, key, force=False):
    root = f"{base}/api/projects/{project}/insights/"
    existing = call("GET", f"{root}?saved=true&basic=true&limit=1000", key)
    if existing["count"] and not force:
        return {i["name"]: i["id"] for i in existing["results"]}
    ids = {}
    for spec in json.loads(SPEC.read_text()):
        body = {k: spec[k] for k in ("name", "description", "filters") if k in spec}
        created = call("POST", root, key, {**body, "saved": True})
        if spec.get("favorited"):
            call("PATCH", f"{root}{created['id']}/", key, {"favorited": True})
        ids[spec["name"]] = created["id"]
    return ids


if __name__ == "__main__":
    for name, ident in seed(*sys.argv[1:4]).items():
        print(f"{name}\t{ident}")
