"""Ingestion over HTTP at PostHog's capture paths, with the official posthog Python SDK as client."""

import gzip
import json
import uuid

import posthog
import pytest
from conftest import BASE_URL, api, assert_error, sql


def count_events(db, project_id):
    return sql(db, "SELECT count(*) FROM insights.events WHERE project_id = %s", project_id)[0][0]


def test_posthog_sdk_batch_is_stored_with_merged_persons(db, project):
    client = posthog.Posthog(project["token"], host=BASE_URL, sync_mode=True, gzip=True)
    client.capture("$pageview", distinct_id="anon-sdk", properties={"$current_url": "/", "$browser": "Chrome"})
    client.capture(
        "$identify",
        distinct_id="user-sdk",
        properties={"$anon_distinct_id": "anon-sdk", "$set": {"email": "sdk@example.com"}},
    )
    client.set(distinct_id="user-sdk", properties={"plan": "pro"})
    client.alias(previous_id="user-sdk", distinct_id="mobile-sdk")
    client.capture("purchase", distinct_id="mobile-sdk", properties={"revenue": 42})
    client.flush()
    client.shutdown()

    rows = sql(
        db,
        "SELECT event, distinct_id FROM insights.events WHERE project_id = %s ORDER BY timestamp",
        project["id"],
    )
    events = [r[0] for r in rows]
    assert "$pageview" in events and "purchase" in events and "$identify" in events
    # PostHog merges the anonymous person into the identified one: one person owns both ids and
    # every event, including the anonymous pageview sent before identification.
    persons = sql(
        db,
        "SELECT count(DISTINCT person_id) FROM insights.events WHERE project_id = %s",
        project["id"],
    )[0][0]
    assert persons == 1
    props = sql(db, "SELECT properties FROM insights.persons WHERE project_id = %s", project["id"])
    assert len(props) == 1
    assert props[0][0]["email"] == "sdk@example.com" and props[0][0]["plan"] == "pro"
    ids = {r[0] for r in sql(db, "SELECT distinct_id FROM insights.person_distinct_ids WHERE project_id = %s", project["id"])}
    assert ids == {"anon-sdk", "user-sdk", "mobile-sdk"}


@pytest.mark.parametrize("path", ["/batch/", "/batch", "/capture/", "/e/", "/i/v0/e/"])
def test_capture_paths_accept_a_batch(db, project, path):
    body = {"api_key": project["token"], "batch": [{"event": "e1", "distinct_id": "d1", "properties": {}}]}
    r = api("POST", path, json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": 1}
    assert count_events(db, project["id"]) == 1


def test_single_event_with_token_in_properties_and_gzip(db, project):
    event = {"event": "clicked", "distinct_id": "d2", "properties": {"token": project["token"]}}
    r = api("POST", "/e/", data=gzip.compress(json.dumps(event).encode()),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert count_events(db, project["id"]) == 1


def test_resent_event_is_not_stored_twice(db, project):
    ev = {"event": "e", "distinct_id": "d", "uuid": str(uuid.uuid4())}
    for _ in range(2):
        assert api("POST", "/batch/", json={"api_key": project["token"], "batch": [ev]}).status_code == 200
    assert count_events(db, project["id"]) == 1


def test_unknown_token_is_401_and_nothing_written(db, project):
    r = api("POST", "/batch/", json={"api_key": "phc_unknown000000000000000000000", "batch": [{"event": "e", "distinct_id": "d"}]})
    assert_error(r, 401, "authentication_error", "invalid_api_key")
    r = api("POST", "/batch/", json={"batch": [{"event": "e", "distinct_id": "d"}]})
    assert_error(r, 401, "authentication_error", "invalid_api_key")
    assert count_events(db, project["id"]) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        json.dumps({"api_key": "TOKEN", "batch": [{"event": "ok", "distinct_id": "a"}, {"event": "no id"}]}).encode(),
        json.dumps({"api_key": "TOKEN", "batch": [{"event": "ok", "distinct_id": "a", "timestamp": "not a time"}]}).encode(),
        json.dumps({"api_key": "TOKEN", "batch": "nope"}).encode(),
        json.dumps({"api_key": "TOKEN", "batch": [{"event": "ok", "distinct_id": "a", "properties": [1]}]}).encode(),
    ],
)
def test_malformed_payload_is_400_and_nothing_written(db, project, body):
    r = api("POST", "/batch/", data=body.replace(b"TOKEN", project["token"].encode()),
            headers={"Content-Type": "application/json"})
    assert_error(r, 400, "validation_error", "invalid_payload")
    assert count_events(db, project["id"]) == 0
    assert sql(db, "SELECT count(*) FROM insights.persons WHERE project_id = %s", project["id"])[0][0] == 0
