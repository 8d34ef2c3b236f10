"""Hostile bytes in the request line and headers (issue 17, strict routing).

PostgREST copies request headers into a JSON setting and answers a bare text/plain 500 for any
byte it cannot decode. nginx (nginx/nginx.conf.template) therefore forwards only its own X-Pgi-*
headers, answers an unrouted path or a path with a control, space or non-ASCII character itself
with PostHog's 404 body, refuses a query string or key that is not printable ASCII, and turns its
own failures (413, an unreachable PostgREST) into PostHog's JSON error bodies. Raw sockets are used
where an HTTP client would percent-encode or refuse the bytes.
"""

import json
import socket
from urllib.parse import urlsplit

import pytest

from conftest import BASE_URL, api, assert_error, sql

NOT_FOUND = ("invalid_request", "not_found")


def raw_request(request_line: bytes, headers: dict[bytes, bytes] | None = None):
    """Send one HTTP/1.1 request as raw bytes; returns (status, content type, parsed JSON body)."""
    url = urlsplit(BASE_URL)
    head = [request_line, b"Host: " + url.netloc.encode(), b"Connection: close"]
    head += [k + b": " + v for k, v in (headers or {}).items()]
    with socket.create_connection((url.hostname, url.port), timeout=30) as s:
        s.sendall(b"\r\n".join(head) + b"\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head_part, _, body = data.partition(b"\r\n\r\n")
    lines = head_part.split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
    if hdrs.get(b"transfer-encoding") == b"chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2 :]
        body = out
    return status, hdrs.get(b"content-type", b"").decode(), json.loads(body)


@pytest.mark.parametrize(
    "path",
    [
        "/nothing/%ff",
        "/api/projects/%0A6d%C3%9E%C2%92/persons/retention/",
        "/api/projects/1%0A/persons/",
        "/api/projects/{p}/persons/abc%0A",
        "/api/projects/{p}/persons/%20/",
        "/api/projects/{p}/insights/%ff/",
        "/api/projects/{p}/persons/%C3%9E/",
        "/api/projects/{p}/query/a%2Fb/",
    ],
)
def test_hostile_paths_are_404_json(project, path):
    resp = api("GET", path.format(p=project["id"]), project["key"])
    assert resp.headers["Content-Type"].startswith("application/json")
    assert_error(resp, 404, *NOT_FOUND)


def test_raw_non_ascii_path_is_404_json(project):
    status, ctype, body = raw_request(b"GET /api/projects/%d/persons/\xff\xfe/ HTTP/1.1" % project["id"])
    assert (status, ctype, body["code"]) == (404, "application/json", "not_found")


def test_raw_bytes_in_query_string_are_400(project):
    status, _, body = raw_request(
        b"GET /api/projects/%d/persons/?search=\xff HTTP/1.1" % project["id"],
        {b"Authorization": b"Bearer " + project["key"].encode()},
    )
    assert status == 400 and body["type"] == "validation_error" and body["attr"] is None


def test_percent_encoded_invalid_utf8_in_query_is_not_a_server_error(project):
    resp = api("GET", f"/api/projects/{project['id']}/persons/?search=%ff%fe", project["key"])
    assert resp.status_code == 200 and resp.json()["results"] == []
    resp = api("GET", f"/api/projects/{project['id']}/insights/trend/?events=%ff", project["key"])
    assert_error(resp, 400, "validation_error", "invalid_input", "events")


def test_raw_bytes_in_key_are_401(project):
    status, _, body = raw_request(
        b"GET /api/projects/%d/persons/ HTTP/1.1" % project["id"], {b"Authorization": b"Bearer \xff\xfe"}
    )
    assert (status, body["type"], body["code"]) == (401, "authentication_error", "authentication_failed")


def test_other_client_headers_never_reach_postgrest(project):
    """A header PostgREST would fail to decode (and a hostile Host) changes nothing: the request is
    answered as without them."""
    status, _, body = raw_request(
        b"GET /api/projects/%d/persons/ HTTP/1.1" % project["id"],
        {b"Authorization": b"Bearer " + project["key"].encode(), b"User-Agent": b"\xff", b"X-Junk": b"\xc3("},
    )
    assert (status, body["results"]) == (200, [])


def test_capture_with_hostile_headers_stores_the_event(db, project):
    payload = json.dumps({"api_key": project["token"], "batch": [{"event": "hdr", "distinct_id": "d1"}]})
    resp = api("POST", "/batch/", data=payload, headers={"User-Agent": "\xff\xfe".encode("latin-1")})
    assert resp.status_code == 200 and resp.json() == {"status": 1}
    ((n,),) = sql(db, "SELECT count(*) FROM insights.events WHERE project_id = %s AND event = 'hdr'", project["id"])
    assert n == 1


def test_body_over_the_limit_is_413_json():
    resp = api("POST", "/batch/", data=b"\0" * (20 * 1024 * 1024 + 1024))
    assert resp.headers["Content-Type"].startswith("application/json")
    assert_error(resp, 413, "validation_error", "request_too_large")


def test_schema_is_still_served():
    resp = api("GET", "/api/schema/")
    assert resp.status_code == 200 and resp.json()["openapi"].startswith("3.")


def test_non_ascii_content_type_is_400():
    resp = api("POST", "/batch/", data=b"{}", headers={"Content-Type": "text/plain; x=\xff".encode("latin-1")})
    assert_error(resp, 400, "validation_error", "invalid_input")
