-- Asynchronous insight queries: PostHog's `refresh=async` family of modes and `/query/:id/`.
--
-- A request enqueues a task here; the pg_insights background worker (src/worker.rs, started when
-- the library is in shared_preload_libraries) claims queued tasks one at a time, runs them through
-- insights.run_query_task and stores the result in insights.query_cache under the task's
-- cache_key, where the synchronous refresh modes find it too. Everything a task does happens in
-- SQL, so it is also runnable by hand (`SELECT insights.run_query_task(id)`) on a server without
-- the worker.

CREATE TABLE insights.query_tasks (
    id             uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    project_id     bigint NOT NULL REFERENCES insights.projects ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('funnel', 'trend', 'retention', 'stickiness', 'lifecycle', 'path')),
    query          jsonb NOT NULL,
    cache_key      text NOT NULL,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'complete', 'error', 'cancelled')),
    -- How many times a worker picked the task up; a task whose worker died twice is failed, so
    -- one poisonous query cannot keep the worker in a crash loop.
    attempts       integer NOT NULL DEFAULT 0,
    worker_pid     integer,
    error_state    text,
    error_message  text,
    error_detail   text,
    created_by     bigint REFERENCES insights.users ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    pickup_at      timestamptz,
    ended_at       timestamptz
);
CREATE INDEX query_tasks_queued ON insights.query_tasks (created_at) WHERE status = 'queued';
CREATE INDEX query_tasks_project ON insights.query_tasks (project_id, created_at);
COMMENT ON TABLE insights.query_tasks IS
  'Queue of asynchronous insight queries, drained by the pg_insights background worker.';

-- One insight computed by its engine (the JSON form the API returns).
CREATE FUNCTION insights.compute_insight(p_project_id bigint, p_kind text, p_query jsonb)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN CASE p_kind
        WHEN 'funnel' THEN insights.funnel_json(p_project_id, p_query)
        WHEN 'trend' THEN insights.trend_json(p_project_id, p_query)
        WHEN 'retention' THEN insights.retention_json(p_project_id, p_query)
        WHEN 'stickiness' THEN insights.stickiness_json(p_project_id, p_query)
        WHEN 'lifecycle' THEN insights.lifecycle_json(p_project_id, p_query)
        WHEN 'path' THEN insights.paths_json(p_project_id, p_query)
    END;
END $$;

-- Queue a query (or return the task already queued or running for the same cache key, so a page
-- of dashboards polling the same insight starts one calculation).
CREATE FUNCTION insights.enqueue_query(p_project_id bigint, p_kind text, p_query jsonb, p_cache_key text,
                                       p_user_id bigint DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    IF p_kind IS NULL OR p_kind NOT IN ('funnel', 'trend', 'retention', 'stickiness', 'lifecycle', 'path') THEN
        RAISE EXCEPTION 'Unknown insight kind %', coalesce(quote_literal(p_kind), 'NULL')
            USING ERRCODE = '22023', DETAIL = 'field: kind', HINT = 'One of funnel, trend, retention, stickiness, lifecycle, path.';
    END IF;
    -- Serialise enqueues of one key so two concurrent requests cannot both insert.
    PERFORM pg_advisory_xact_lock(hashtextextended('pg_insights.query_tasks:' || p_project_id || ':' || p_cache_key, 0));
    SELECT id INTO v_id FROM insights.query_tasks
     WHERE project_id = p_project_id AND cache_key = p_cache_key AND status IN ('queued', 'running')
     ORDER BY created_at LIMIT 1;
    IF v_id IS NULL THEN
        INSERT INTO insights.query_tasks (project_id, kind, query, cache_key, created_by)
        VALUES (p_project_id, p_kind, p_query, p_cache_key, p_user_id)
        RETURNING id INTO v_id;
    END IF;
    RETURN v_id;
END $$;

-- Claim the oldest queued task for this backend (the worker); NULL when the queue is empty.
CREATE FUNCTION insights.claim_query_task() RETURNS uuid LANGUAGE sql AS $$
    UPDATE insights.query_tasks t
       SET status = 'running', attempts = attempts + 1, worker_pid = pg_backend_pid(), pickup_at = now()
     WHERE id = (SELECT id FROM insights.query_tasks WHERE status = 'queued'
                  ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1)
    RETURNING t.id
$$;

-- Run one claimed task: compute, store in the cache, mark complete. A query error (bad filter,
-- unknown project, …) marks the task `error` with its SQLSTATE and message and is not cached,
-- as PostHog does; a cancel (insights.cancel_query_task → pg_cancel_backend) marks it cancelled.
-- Either way the caller (the worker) carries on with the next task.
CREATE FUNCTION insights.run_query_task(p_id uuid) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    t insights.query_tasks;
    v_result jsonb;
BEGIN
    SELECT * INTO t FROM insights.query_tasks WHERE id = p_id;
    IF NOT FOUND OR t.status <> 'running' THEN
        RETURN coalesce(t.status, 'missing');
    END IF;
    BEGIN
        v_result := insights.compute_insight(t.project_id, t.kind, t.query);
        INSERT INTO insights.query_cache (project_id, cache_key, result, last_refresh)
        VALUES (t.project_id, t.cache_key, v_result, now())
        ON CONFLICT (project_id, cache_key) DO UPDATE SET result = EXCLUDED.result, last_refresh = EXCLUDED.last_refresh;
        UPDATE insights.query_tasks SET status = 'complete', ended_at = clock_timestamp() WHERE id = p_id;
        RETURN 'complete';
    EXCEPTION
        WHEN query_canceled THEN
            UPDATE insights.query_tasks SET status = 'cancelled', ended_at = clock_timestamp(),
                   error_message = 'Query cancelled' WHERE id = p_id;
            RETURN 'cancelled';
        WHEN OTHERS THEN
            UPDATE insights.query_tasks SET status = 'error', ended_at = clock_timestamp(),
                   error_state = SQLSTATE, error_message = SQLERRM WHERE id = p_id;
            RETURN 'error';
    END;
END $$;

-- At worker start: tasks left `running` by a worker that died go back to the queue, or fail
-- after their second attempt.
CREATE FUNCTION insights.recover_query_tasks() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    UPDATE insights.query_tasks
       SET status = CASE WHEN attempts >= 2 THEN 'error' ELSE 'queued' END,
           error_message = CASE WHEN attempts >= 2
                                THEN 'The query stopped its worker twice; it was not retried.' END,
           ended_at = CASE WHEN attempts >= 2 THEN now() END,
           worker_pid = NULL
     WHERE status = 'running'
       AND worker_pid IS DISTINCT FROM pg_backend_pid()
       AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = worker_pid);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Cancel a queued or running task of a project. A queued task is simply marked; a running one
-- is interrupted through pg_cancel_backend, and run_query_task records the cancel. Returns
-- whether the task was still queued or running.
CREATE FUNCTION insights.cancel_query_task(p_project_id bigint, p_id uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t insights.query_tasks;
BEGIN
    SELECT * INTO t FROM insights.query_tasks WHERE id = p_id AND project_id = p_project_id FOR UPDATE;
    IF NOT FOUND OR t.status NOT IN ('queued', 'running') THEN
        RETURN false;
    END IF;
    IF t.status = 'queued' THEN
        UPDATE insights.query_tasks SET status = 'cancelled', ended_at = now(),
               error_message = 'Query cancelled' WHERE id = p_id;
    ELSE
        PERFORM pg_cancel_backend(t.worker_pid);
    END IF;
    RETURN true;
END $$;

-- PostHog's `query_status` object for a task (GET /api/projects/:id/query/:query_id/).
CREATE FUNCTION insights.query_status(p_project_id bigint, p_id uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', t.id,
        'query_async', true,
        'team_id', t.project_id,
        'insight_id', NULL,
        'complete', t.status IN ('complete', 'error', 'cancelled'),
        'error', t.status IN ('error', 'cancelled'),
        'error_message', t.error_message,
        'results', CASE WHEN t.status = 'complete' THEN c.result END,
        'start_time', t.created_at,
        'pickup_time', t.pickup_at,
        'end_time', t.ended_at,
        'expiration_time', t.created_at + interval '20 minutes',
        'task_id', t.id::text,
        'query_progress', NULL,
        'status', t.status)
      FROM insights.query_tasks t
      LEFT JOIN insights.query_cache c ON c.project_id = t.project_id AND c.cache_key = t.cache_key
     WHERE t.id = p_id AND t.project_id = p_project_id
$$;
