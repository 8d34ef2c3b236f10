"""Crash and restart of the real stack (issue 17 item 5): kill -9 of Postgres during concurrent
`/batch/` streams, during an async query, during a rollup rebuild and during a segment build, and a
kill and restart of
PostgREST under a load of insight queries. Every part is restarted the way scripts/stack starts it
(stackctl.py). Failures of the stack during a crash are expected; what is asserted is what a
client can rely on afterwards: acknowledged data is there whole, nothing is half-written or
duplicated, answers are exact, errors are PostHog's JSON bodies.

These tests take Postgres down, which breaks every open connection (the session `db` fixture's
too): conftest.py runs this file after all the others. The `crashable` fixture restarts whatever
a test killed, also when it fails, and waits until HTTP answers, so the stack is left healthy.
"""

import json
import random
from collections import Counter
import threading
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import requests
from conftest import BASE_URL, api, sql
from stackctl import Stack, wait_until
from test_query_async import FUNNEL, post_query, wait_complete
from test_rollups import RECOMPUTE, STORED

# Errors nginx answers for an unreachable or failing upstream (nginx.conf.template).
SERVER_ERRORS = {500, 502, 503, 504}


def connect():
    return psycopg.connect(autocommit=True)


def new_project(name, timezone_="UTC"):
    with connect() as conn:
        (row,) = sql(conn, "SELECT project_id, api_token, user_id, personal_api_key "
                           "FROM insights.create_project_with_key(%s, %s, ARRAY['*'], %s)",
                     name, f"{name}@example.com", timezone_)
    return {"id": row[0], "token": row[1], "user_id": row[2], "key": row[3]}


@pytest.fixture(scope="module")
def stack():
    """The running stack's processes, and a project to probe HTTP with; read before any kill."""
    s = Stack()
    s.probe = new_project(f"crash-probe-{uuid.uuid4().hex[:8]}")
    return s


@pytest.fixture
def crashable(stack):
    yield stack
    stack.ensure_healthy(stack.probe)


def crash_postgres(stack):
    """kill -9, restart as the stack does, and wait until HTTP answers again."""
    pid = stack.kill_postgres()
    stack.start_postgres()
    stack.wait_http(stack.probe)
    return pid


# PostgREST 12 answers a request whose database connection broke mid-way with this 400 (its
# bug PostgREST/postgrest#4681: hasql-pool's UsageError taken for a client error); nginx passes
# 400s through because the API's own 400 bodies must reach the client. See tests/README.md.
PGRST_CONNECTION_LOST = '{"code":"","details":null,"hint":null,"message":""}'


def assert_server_error(status, ctype, body, where):
    """nginx's answer for a failing upstream: PostHog's JSON error body, never a text page."""
    assert status in SERVER_ERRORS, f"{where}: status {status}: {body[:300]}"
    assert ctype.startswith("application/json"), f"{where}: {status} {ctype}: {body[:300]}"
    doc = json.loads(body)
    assert doc["type"] == "server_error" and doc["code"] and doc["detail"] and doc["attr"] is None, doc


# 1. kill -9 during concurrent /batch/ streams -------------------------------------------------

THREADS, BATCHES, BATCH_SIZE = 4, 40, 50
ACKED_BEFORE_KILL = 20


def make_batches(thread):
    """Fixed uuids per batch, so a retry re-sends the very same events."""
    t0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
    batches = []
    for b in range(BATCHES):
        batches.append([{"event": "crash_batch", "uuid": str(uuid.uuid4()), "distinct_id": f"c{thread}-{i % 7}",
                         "timestamp": (t0 + timedelta(minutes=b * BATCH_SIZE + i)).isoformat(),
                         "properties": {"thread": thread, "batch": b, "i": i}} for i in range(BATCH_SIZE)])
    return batches


def post_batch(session, token, events):
    try:
        r = session.post(f"{BASE_URL}/batch/", json={"api_key": token, "batch": events}, timeout=60)
    except requests.RequestException as e:
        return None, type(e).__name__, repr(e)   # no answer: a failure of the test's checks below
    return r.status_code, r.headers.get("Content-Type", ""), r.text


def test_kill_postgres_during_batch_streams(crashable):
    """4 clients stream batches of 50 events; Postgres dies after the 20th acknowledgement. Every
    acknowledged batch is then stored whole and no batch in part; every client re-sends all its
    batches (acknowledged or not, same uuids) and each event is stored exactly once."""
    stack = crashable
    project = new_project(f"crash-batch-{uuid.uuid4().hex[:8]}")
    plans = [make_batches(t) for t in range(THREADS)]
    answers = [[] for _ in range(THREADS)]          # per thread: (batch, status, content type, body)
    acked = threading.Semaphore(0)

    def stream(t):
        """Batches one after the other until the first failure (the outage); the rest, and the
        failed one, are sent again in the retry below."""
        with requests.Session() as s:
            for b, events in enumerate(plans[t]):
                status, ctype, body = post_batch(s, project["token"], events)
                answers[t].append((b, status, ctype, body))
                if status != 200:
                    return
                acked.release()

    threads = [threading.Thread(target=stream, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    try:
        for n in range(ACKED_BEFORE_KILL):
            assert acked.acquire(timeout=120), f"only {n} batches acknowledged before the kill"
        stack.kill_postgres()
    finally:
        for th in threads:
            th.join(timeout=180)
    assert not any(th.is_alive() for th in threads), "a client hangs after the kill"
    stack.start_postgres()
    stack.wait_http(stack.probe)

    sent = [(t, b, status, ctype, body) for t in range(THREADS) for (b, status, ctype, body) in answers[t]]
    ok = {(t, b) for (t, b, status, _, _) in sent if status == 200}
    failed = Counter(f"{status} {body[:40]}" for (_, _, status, _, body) in sent if status != 200)
    for t, b, status, ctype, body in sent:
        if status == 200:
            assert json.loads(body) == {"status": 1}
        elif (status, body) != (400, PGRST_CONNECTION_LOST):
            assert_server_error(status, ctype, body, f"batch {t}/{b}")
    with connect() as conn:
        stored = {str(u) for (u,) in sql(conn, "SELECT uuid FROM insights.events WHERE project_id = %s", project["id"])}
        partial, lost, unacked_stored = [], [], 0
        for t in range(THREADS):
            for b, events in enumerate(plans[t]):
                n = sum(e["uuid"] in stored for e in events)
                if n not in (0, BATCH_SIZE):
                    partial.append((t, b, n))
                if (t, b) in ok and n != BATCH_SIZE:
                    lost.append((t, b, n))
                unacked_stored += (t, b) not in ok and n == BATCH_SIZE
        assert not partial, f"batches stored in part (thread, batch, events stored): {partial}"
        assert not lost, f"acknowledged batches missing events after the restart: {lost}"
        # The rollup, maintained by triggers in the same transactions, survived exactly too.
        assert sql(conn, STORED, project["id"]) == sql(conn, RECOMPUTE, project["id"])

    # Every client re-sends everything it had (acknowledged or not) with the same uuids.
    retried = [[] for _ in range(THREADS)]

    def retry(t):
        with requests.Session() as s:
            retried[t] = [post_batch(s, project["token"], events)[0] for events in plans[t]]

    threads = [threading.Thread(target=retry, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert all(codes == [200] * BATCHES for codes in retried), retried
    expected = {e["uuid"] for plan in plans for events in plan for e in events}
    with connect() as conn:
        (total, distinct), = sql(conn, "SELECT count(*), count(DISTINCT uuid) FROM insights.events WHERE project_id = %s",
                                 project["id"])
        assert (total, distinct) == (len(expected), len(expected)) == (THREADS * BATCHES * BATCH_SIZE,) * 2
        stored = {str(u) for (u,) in sql(conn, "SELECT uuid FROM insights.events WHERE project_id = %s", project["id"])}
        assert stored == expected
        assert sql(conn, STORED, project["id"]) == sql(conn, RECOMPUTE, project["id"])
        # One person per distinct id (7 a client), none made twice by a crashed or repeated batch.
        assert sql(conn, "SELECT count(*), count(DISTINCT person_id) FROM insights.person_distinct_ids "
                         "WHERE project_id = %s", project["id"]) == [(THREADS * 7, THREADS * 7)]
        assert sql(conn, "SELECT count(*) FROM insights.persons WHERE project_id = %s", project["id"]) == [(THREADS * 7,)]
    print(f"\n/batch/ crash: {len(sent)} batches sent, {len(ok)} acknowledged, {unacked_stored} stored "
          f"without acknowledgement, {len(sent) - len(ok)} failed {dict(failed)}; after retry {total} events, all distinct")


# 2. kill -9 during an async query and during a rollup rebuild --------------------------------

def funnel_events(n=400, users=60, seed=21):
    rng = random.Random(seed)
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return [{"event": rng.choice(["$pageview", "$pageview", "signup"]), "distinct_id": f"u{rng.randrange(users)}",
             "timestamp": (t0 + timedelta(seconds=rng.randrange(9 * 86400))).isoformat()} for _ in range(n)]


def test_kill_postgres_during_an_async_query(crashable):
    """The worker's run of the task is held at its cache write (the cache table locked by another
    session, as test_query_async's cancel test does), then the server dies. After the restart the
    new worker re-queues the task it finds `running` and completes it with the exact answer."""
    stack = crashable
    project = new_project(f"crash-async-{uuid.uuid4().hex[:8]}")
    with connect() as conn:
        sql(conn, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(funnel_events()))
        (expected,) = sql(conn, "SELECT insights.funnel_json(%s, %s::jsonb)->'result'", project["id"], json.dumps(FUNNEL))[0]
    assert expected[0]["count"] > expected[1]["count"] > 0, expected

    blocker = psycopg.connect(autocommit=False)
    watcher = connect()
    try:
        blocker.execute("LOCK TABLE insights.query_cache IN EXCLUSIVE MODE")
        r = post_query(project, FUNNEL, "async")
        assert r.status_code == 200, r.text
        task = r.json()["query_status"]["id"]

        def worker_waits_on_the_cache():
            rows = sql(watcher, "SELECT a.wait_event_type FROM insights.query_tasks t "
                                "JOIN pg_stat_activity a ON a.pid = t.worker_pid WHERE t.id = %s AND t.status = 'running'", task)
            return rows == [("Lock",)]

        wait_until(worker_waits_on_the_cache, 60, "the worker never reached the cache write of the task")
        (old_pid,) = sql(watcher, "SELECT worker_pid FROM insights.query_tasks WHERE id = %s", task)[0]
        crash_postgres(stack)
    finally:
        blocker.close()
        watcher.close()

    done = wait_complete(project, task, timeout=90)
    assert done["error"] is False, done
    assert done["results"]["result"] == expected
    with connect() as conn:
        (attempts, pid), = sql(conn, "SELECT attempts, worker_pid FROM insights.query_tasks WHERE id = %s", task)
    assert attempts == 2 and pid != old_pid, (attempts, pid, old_pid)   # the killed run, then the new worker's
    # The client re-runs it: served from the cache the recovered task wrote; computed anew, the same.
    again = post_query(project, FUNNEL, "async").json()
    assert again["is_cached"] is True and again["results"] == expected, again
    fresh = api("POST", f"/api/projects/{project['id']}/insights/funnel/", project["key"], json=FUNNEL)
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["result"] == expected


def test_kill_postgres_during_a_rollup_rebuild(crashable):
    """A bulk load with the rollup trigger off leaves insights.person_days stale, as after a real
    bulk load; the rebuild is killed mid-way (its DELETE done, its INSERT waiting on a row another
    session holds uncommitted). After the restart the rollup is as before the rebuild (nothing of
    the killed transaction is left), and the re-run rebuild equals a GROUP BY over the events."""
    stack = crashable
    project = new_project(f"crash-rollup-{uuid.uuid4().hex[:8]}", "Europe/Berlin")
    pid_ = project["id"]
    with connect() as conn:
        sql(conn, "SELECT insights.capture_batch(%s, %s::jsonb)", pid_, json.dumps(funnel_events(600, 40, 22)))
        with conn.transaction():
            sql(conn, "ALTER TABLE insights.events DISABLE TRIGGER person_days_insert")
            sql(conn, """INSERT INTO insights.events (project_id, uuid, event, distinct_id, person_id, "timestamp")
                         SELECT project_id, gen_random_uuid(), event, distinct_id, person_id, "timestamp" + interval '1 day'
                           FROM insights.events WHERE project_id = %s""", pid_)
            sql(conn, "ALTER TABLE insights.events ENABLE TRIGGER person_days_insert")
        stale, exact = sql(conn, STORED, pid_), sql(conn, RECOMPUTE, pid_)
    assert stale != exact and len(exact) > len(stale)
    # A person-day the rebuild will insert that the stale rollup lacks: held by an open transaction.
    held = sorted({r[:2] for r in exact} - {r[:2] for r in stale})[-1]

    blocker = psycopg.connect(autocommit=False)
    rebuilder = connect()
    watcher = connect()
    outcome = []

    def rebuild():
        try:
            outcome.append(sql(rebuilder, "SELECT insights.rebuild_person_days(%s)", pid_))
        except psycopg.OperationalError as e:
            outcome.append(e)

    th = threading.Thread(target=rebuild)
    try:
        sql(blocker, "INSERT INTO insights.person_days VALUES (%s, %s, %s, 1)", pid_, held[0], held[1])
        th.start()
        wait_until(lambda: sql(watcher, "SELECT wait_event FROM pg_stat_activity WHERE pid = %s",
                               rebuilder.info.backend_pid) == [("transactionid",)],
                   60, "the rebuild never waited on the held row")
        crash_postgres(stack)
    finally:
        blocker.close()   # on a failure before the kill, this lets the rebuild finish
        watcher.close()
        if th.is_alive():
            th.join(timeout=60)
        rebuilder.close()
    assert len(outcome) == 1 and isinstance(outcome[0], psycopg.OperationalError), outcome

    with connect() as conn:
        assert sql(conn, STORED, pid_) == stale          # the killed rebuild left nothing behind
        (n,) = sql(conn, "SELECT insights.rebuild_person_days(%s)", pid_)[0]
        assert sql(conn, STORED, pid_) == sql(conn, RECOMPUTE, pid_) == exact
        assert n == len(exact)


def test_kill_postgres_during_a_segment_build(crashable):
    """Columnar segments (docs/segments.md): two sealed days are made dirty by committed updates;
    a build (insights.seal_segments) rewrites the first and then waits on the second, whose row
    an uncommitted writer holds; Postgres is killed then. After the restart nothing of the build
    is left (both days dirty, or rebuilt by the worker in its own transactions), the answers with
    segments on equal the heap's, and a build makes them clean with the updated values."""
    stack = crashable
    project = new_project(f"crash-segments-{uuid.uuid4().hex[:8]}")
    pid_ = project["id"]
    trend = json.dumps({"events": [{"id": "$pageview", "math": "dau"}, {"id": "signup"}],
                        "date_from": "2024-01-01", "date_to": "2024-01-10", "interval": "day"})
    funnel = json.dumps({"insight": "FUNNELS", "events": [{"id": "$pageview", "order": 0}, {"id": "signup", "order": 1}],
                         "date_from": "2024-01-01", "date_to": "2024-01-10"})

    def answers(conn, on):
        sql(conn, f"SET pg_insights.use_segments = {on}")
        return (sql(conn, "SELECT insights.trend_json(%s, %s::jsonb) -> 'result'", pid_, trend)[0][0],
                sql(conn, "SELECT insights.funnel_json(%s, %s::jsonb) -> 'result'", pid_, funnel)[0][0])

    def states(conn):
        return dict(sql(conn, "SELECT day::text, state FROM insights.segments WHERE project_id = %s", pid_))

    rename = "UPDATE insights.events SET event = 'signup' WHERE project_id = %s AND uuid = " \
             "(SELECT uuid FROM insights.events WHERE project_id = %s AND event = '$pageview' " \
             "AND \"timestamp\" >= %s AND \"timestamp\" < %s::date + 1 ORDER BY uuid LIMIT 1)"
    with connect() as conn:
        sql(conn, "SELECT insights.capture_batch(%s, %s::jsonb)", pid_, json.dumps(funnel_events(600, 40, 23)))
        sql(conn, "SELECT insights.seal_segments(%s)", pid_)
        assert set(states(conn).values()) == {"clean"}
        for day in ("2024-01-03", "2024-01-05"):
            sql(conn, rename, pid_, pid_, day, day)
        before = states(conn)
        assert before["2024-01-03"] == before["2024-01-05"] == "dirty"
        heap = answers(conn, "off")

    blocker = psycopg.connect(autocommit=False)
    builder = connect()
    watcher = connect()
    outcome = []

    def build():
        try:
            outcome.append(sql(builder, "SELECT insights.seal_segments(%s)", pid_))
        except psycopg.OperationalError as e:
            outcome.append(e)

    th = threading.Thread(target=build)
    try:
        sql(blocker, rename, pid_, pid_, "2024-01-05", "2024-01-05")  # holds the day's row, uncommitted
        th.start()
        wait_until(lambda: sql(watcher, "SELECT wait_event FROM pg_stat_activity WHERE pid = %s",
                               builder.info.backend_pid) == [("transactionid",)],
                   60, "the build never waited on the held day")
        # seal_segment stamps built_at with now(): the build's transaction start tells its rows apart
        # from the worker's (it may seal the first day in its own transaction before the kill).
        (build_started,) = sql(watcher, "SELECT xact_start FROM pg_stat_activity WHERE pid = %s",
                               builder.info.backend_pid)[0]
        crash_postgres(stack)
    finally:
        blocker.close()
        watcher.close()
        if th.is_alive():
            th.join(timeout=60)
        builder.close()
    assert len(outcome) == 1 and isinstance(outcome[0], psycopg.OperationalError), outcome

    with connect() as conn:
        # The killed build left nothing behind: each day is still dirty, or clean from one of the query
        # worker's own builds (it serves this database and seals one day per transaction, before the
        # kill or after the restart), never from the killed build's transaction.
        for day, state, built in sql(conn, "SELECT day::text, state, built_at FROM insights.segments "
                                           "WHERE project_id = %s AND day IN ('2024-01-03', '2024-01-05')", pid_):
            assert state == "dirty" or (state == "clean" and built != build_started), (day, state, built)
        assert answers(conn, "on") == heap                 # dirty days are read from the heap
        sql(conn, "SELECT insights.seal_segments(%s)", pid_)
        assert set(states(conn).values()) == {"clean"}
        assert answers(conn, "on") == answers(conn, "off") == heap
        sql(conn, "RESET pg_insights.use_segments")
        paths = [r[0] for r in sql(conn, "SELECT path FROM insights.explain(%s, %s::jsonb)", pid_, trend)]
        assert paths == ["segments", "segments"]


# 3. PostgREST restart during a load of insight queries ----------------------------------------

TREND = {"events": [{"id": "$pageview", "math": "dau"}, {"id": "signup"}], "date_from": "2024-01-01",
         "date_to": "2024-01-10", "interval": "day"}
LOADERS = 4


def test_postgrest_restart_during_insight_queries(crashable):
    """Each loader thread has its own key (PostHog's per-key query throttle stays far away). Phases:
    before the kill, while PostgREST is dead (every request then must fail), after the restart."""
    stack = crashable
    project = new_project(f"crash-rest-{uuid.uuid4().hex[:8]}")
    with connect() as conn:
        sql(conn, "SELECT insights.capture_batch(%s, %s::jsonb)", project["id"], json.dumps(funnel_events(300, 30, 23)))
        keys = [sql(conn, "SELECT api_key FROM insights.create_personal_api_key(%s, %s)", project["user_id"], f"load {i}")[0][0]
                for i in range(LOADERS)]
    path = f"{BASE_URL}/api/projects/{project['id']}/insights/trend/"
    baseline = requests.post(path, json=TREND, headers={"Authorization": f"Bearer {keys[0]}"}, timeout=60)
    assert baseline.status_code == 200, baseline.text
    expected = {k: v for k, v in baseline.json().items() if k != "last_refresh"}
    assert sum(expected["result"][0]["data"]) > 0

    phase = [0]                                  # 0 before the kill, 1 PostgREST dead, 2 restarted
    seen = [[] for _ in range(LOADERS)]          # per loader: (phase, status, content type, body)
    stop = threading.Event()

    def load(i):
        with requests.Session() as s:
            while not stop.is_set():
                p = phase[0]
                try:
                    r = s.post(path, json=TREND, headers={"Authorization": f"Bearer {keys[i]}"}, timeout=60)
                    seen[i].append((p, r.status_code, r.headers.get("Content-Type", ""), r.text))
                except requests.RequestException as e:
                    seen[i].append((p, None, type(e).__name__, repr(e)))
                stop.wait(0.02)  # a breath for the 2-core machine, not a measurement

    def each_has(p, predicate, n):
        return all(sum(1 for rec in recs if rec[0] == p and predicate(rec)) >= n for recs in seen)

    def ok(rec):
        return rec[1] == 200

    threads = [threading.Thread(target=load, args=(i,)) for i in range(LOADERS)]
    for th in threads:
        th.start()
    try:
        wait_until(lambda: each_has(0, ok, 3), 120, "the loaders got no answers before the kill")
        stack.kill_postgrest()
        phase[0] = 1
        wait_until(lambda: each_has(1, lambda rec: True, 2), 60, "the loaders sent nothing while PostgREST was down")
        phase[0] = 2
        stack.start_postgrest()
        wait_until(lambda: each_has(2, ok, 3), 120, "the loaders did not recover after the restart")
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=120)

    counts = Counter()
    for i, recs in enumerate(seen):
        for p, status, ctype, body in recs:
            counts[(p, status or ctype)] += 1
            where = f"loader {i}, phase {p}"
            if status is None:
                # Only a request in flight at the kill: nginx had passed on PostgREST's status line
                # and the body was cut, which the client sees as a broken transfer (requests
                # raises), never as a short answer.
                assert p == 0 and ctype == "ChunkedEncodingError", f"{where}: no HTTP answer: {body}"
            elif status == 200 and p != 1:
                assert ctype.startswith("application/json"), f"{where}: {ctype}"
                got = {k: v for k, v in json.loads(body).items() if k != "last_refresh"}
                assert got == expected, f"{where}: a different answer: {body[:500]}"
            else:
                # While PostgREST is dead nothing can answer 200; errors are nginx's JSON bodies.
                assert status in {502, 503, 504}, f"{where}: status {status}: {body[:300]}"
                assert_server_error(status, ctype, body, where)
    print(f"\nPostgREST restart: answers per (phase, status): {dict(sorted(counts.items(), key=str))}")
