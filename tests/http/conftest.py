"""Fixtures for the HTTP end-to-end tests.

These tests drive the real stack: nginx → PostgREST → Postgres with the extension. scripts/test
starts a dedicated test stack and exports PGI_BASE_URL plus the libpq variables (PGHOST, PGPORT,
PGUSER, PGDATABASE) of its database. Nothing is mocked and nothing is skipped: without a stack the
tests fail.
"""

import os
import re
import uuid

import psycopg
import pytest
import requests

BASE_URL = os.environ.get("PGI_BASE_URL", "http://127.0.0.1:8019")

# PGI_TEST_SEAL=1: every request (and every SQL insight call) first builds the columnar segments
# of every closed day (insights.seal_segments), so insight queries read segments wherever they can.
# scripts/test runs the trends and funnels files a second time this way: the same assertions on
# the other read path (docs/segments.md).
SEAL = os.environ.get("PGI_TEST_SEAL") == "1"
_seal_conn = None


def seal(project_id):
    global _seal_conn
    if _seal_conn is None:
        _seal_conn = psycopg.connect(autocommit=True)
    _seal_conn.execute("SELECT insights.seal_segments(%s, 100000)", (project_id,))


@pytest.fixture(scope="session")
def db():
    """A superuser connection to the stack's database (autocommit), for setup and checks."""
    with psycopg.connect(autocommit=True) as conn:
        yield conn


def sql(db, query, *params):
    if SEAL and any(k in query for k in ("trend", "funnel", "retention", "stickiness", "lifecycle", "paths")) and params and isinstance(params[0], int):
        seal(params[0])
    with db.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else None


@pytest.fixture
def make_project(db):
    """Factory: a fresh, isolated project with its user and a personal API key."""

    def make(scopes=("*",), timezone="UTC"):
        name = f"test-{uuid.uuid4().hex[:10]}"
        (row,) = sql(
            db,
            "SELECT project_id, api_token, user_id, personal_api_key "
            "FROM insights.create_project_with_key(%s, %s, %s, %s)",
            name,
            f"{name}@example.com",
            list(scopes),
            timezone,
        )
        return {"id": row[0], "token": row[1], "user_id": row[2], "key": row[3], "name": name}

    return make


@pytest.fixture
def project(make_project):
    return make_project()


def api(method, path, key=None, **kwargs):
    """A request to the stack; `key` goes in `Authorization: Bearer`, as PostHog's docs show."""
    m = SEAL and re.match(r"/api/(?:projects|environments)/(\d+)/", path)
    if m:
        seal(int(m.group(1)))
    headers = kwargs.pop("headers", {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return requests.request(method, BASE_URL + path, headers=headers, timeout=60, **kwargs)


def assert_error(resp, status, type_, code, attr=None):
    """PostHog's error body: {"type", "code", "detail", "attr"}."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == type_, body
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert body["attr"] == attr, body
    return body


# --- crash tests run last (test_crash.py) ---
def pytest_collection_modifyitems(items):
    """test_crash.py kills Postgres and PostgREST, which breaks every open connection (the session
    `db` fixture's too): its tests run after all others (a stable sort keeps every other order)."""
    items.sort(key=lambda item: item.path.name == "test_crash.py")
