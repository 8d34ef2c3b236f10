-- The last pieces of the saved insights resource:
--   POST …/insights/generate_metadata/   a name and description for an insight's query
--   GET  …/insights/:id/analyze/         a summary of an insight's current result
-- Applied after 60_insights.sql and 70_query.sql, whose helpers it uses.

---------------------------------------------------------------------------------------------------
-- POST insights/generate_metadata/ (docs/api.md#generated-metadata): a name and a description for
-- an insight's query.
--
-- PostHog asks an LLM for these. This server has none: it derives them deterministically from the
-- query (or the legacy `filters` when there is no query), by these rules:
--
-- Series name: `custom_name` when set; an action: its `name`, else "Action <id>"; an event: PostHog's
--   display name of its core events ($pageview → Pageview, $pageleave → Pageleave, $autocapture →
--   Autocapture, $screen → Screen, $identify → Identify, $rageclick → Rageclick), null → "All events",
--   otherwise the event name itself.
-- Math name: total (or none) → "count", dau → "unique users", weekly_active → "weekly active users",
--   monthly_active → "monthly active users", unique_session → "unique sessions", unique_group →
--   "unique groups", first_time_for_user[_with_filters] → "first time users", hogql → its
--   expression (math_hogql), sum/avg/min/max/median/pNN → "<math> of <math_property>",
--   <agg>_count_per_actor → "<agg> count per user"; anything else: the math value.
-- Breakdown suffix: " by <breakdown>" (several breakdowns joined with " & "; a cohort breakdown
--   is "cohort").
-- Trends name: when every series has the same math, "<A> & <B> <math>" ("Pageview & Sign up
--   count"); otherwise "<A> <math A> & <B> <math B>"; with a formula: "Formula <formula> of " + that;
--   then the breakdown suffix.
-- Funnels name: the step names joined with " → ", then " funnel", then the breakdown suffix
--   ("Pageview → Sign up → Purchase funnel").
-- Retention name: "Retention of users who did <target>, returning with <returning>" (both default
--   to Pageview), then the breakdown suffix.
-- Description: "<Kind> of <name detail> over <date range>[, by <interval>][, <kind details>], with
--   <n> property filter(s)[, excluding test accounts]." where
--   * the date range is "<from> to <to>" for absolute dates, "the last N days|weeks|months|years|hours"
--     for "-Nd|-Nw|-Nm|-Ny|-Nh" (singular for 1), "today" (dStart), "this month" (mStart), "this
--     year" (yStart), "all time" (all), "<range> until <to>" when date_to is set with a relative
--     date_from, "since <from>" with an absolute date_from alone; the kind's default when absent
--     (trends and funnels: the last 7 days; retention: the last <total intervals> <period>s);
--   * trends: ", by <interval>" (default day); funnels: ", <ordered|strict order|any order> steps,
--     conversion window <n> <unit>(s)" (default 14 days); retention: ", <recurring|first time>
--     retention over <n> <period> periods" (defaults 11, Day);
--   * the property filters counted are the leaf filters of the top-level `properties` (a list or
--     a nested AND/OR group) plus those of every series / retention entity.
-- A missing query and filters, a query that is not an object or is not one of TrendsQuery,
-- FunnelsQuery, RetentionQuery (bare or in an InsightVizNode), a legacy filter of another insight
-- type, or one without series/steps: 400 with attr "query" (or "filters").
--
-- Scope: insight:write, as PostHog's API reference declares for this action (it takes the insight
-- serializer's fields and lives next to create), although nothing is written.

-- The number of leaf property filters of a `properties` value (list, or {type, values} group).
CREATE FUNCTION api._meta_filter_count(p jsonb) RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_n integer := 0;
    e jsonb;
BEGIN
    IF jsonb_typeof(p) = 'array' THEN
        FOR e IN SELECT x FROM jsonb_array_elements(p) x LOOP
            v_n := v_n + api._meta_filter_count(e);
        END LOOP;
        RETURN v_n;
    ELSIF jsonb_typeof(p) = 'object' THEN
        IF jsonb_typeof(p->'values') = 'array' AND p->>'type' IN ('AND', 'OR') THEN
            RETURN api._meta_filter_count(p->'values');
        END IF;
        RETURN CASE WHEN p ? 'key' THEN 1 ELSE 0 END;
    END IF;
    RETURN 0;
END $$;

-- The display name of an event or of a series / entity object (see the rules above).
CREATE FUNCTION api._meta_event_name(p_event text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_event
        WHEN '$pageview' THEN 'Pageview' WHEN '$pageleave' THEN 'Pageleave'
        WHEN '$autocapture' THEN 'Autocapture' WHEN '$screen' THEN 'Screen'
        WHEN '$identify' THEN 'Identify' WHEN '$rageclick' THEN 'Rageclick'
        ELSE coalesce(p_event, 'All events') END
$$;

-- A query series (EventsNode / ActionsNode), a legacy entity ({"id", "type": "events"|"actions"})
-- or a retention entity.
CREATE FUNCTION api._meta_series_name(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN coalesce(p->>'custom_name', '') <> '' THEN p->>'custom_name'
        WHEN p->>'kind' = 'ActionsNode' OR p->>'type' = 'actions'
            THEN coalesce(nullif(p->>'name', ''), 'Action ' || coalesce(p->>'id', '?'))
        WHEN p->>'kind' = 'EventsNode' THEN api._meta_event_name(p->>'event')
        ELSE api._meta_event_name(p->>'id')
    END
$$;

CREATE FUNCTION api._meta_math_name(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN m IS NULL OR m = 'total' THEN 'count'
        WHEN m = 'dau' THEN 'unique users'
        WHEN m = 'weekly_active' THEN 'weekly active users'
        WHEN m = 'monthly_active' THEN 'monthly active users'
        WHEN m = 'unique_session' THEN 'unique sessions'
        WHEN m = 'unique_group' THEN 'unique groups'
        WHEN m IN ('first_time_for_user', 'first_time_for_user_with_filters') THEN 'first time users'
        WHEN m = 'hogql' THEN coalesce(nullif(p->>'math_hogql', ''), 'HogQL expression')
        WHEN m IN ('sum', 'avg', 'min', 'max', 'median') OR m ~ '^p\d\d$'
            THEN m || ' of ' || coalesce(nullif(p->>'math_property', ''), 'a property')
        WHEN m ~ '_count_per_actor$' THEN replace(m, '_count_per_actor', '') || ' count per user'
        ELSE m
    END
      FROM (SELECT nullif(p->>'math', '') AS m) x
$$;

-- " by <breakdown>" or ''.
CREATE FUNCTION api._meta_breakdown(p_breakdown jsonb, p_type text, p_breakdowns jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(' by ' || CASE
        WHEN p_type = 'cohort' THEN 'cohort'
        WHEN jsonb_typeof(p_breakdowns) = 'array' AND jsonb_array_length(p_breakdowns) > 0 THEN
            (SELECT string_agg(coalesce(b->>'property', b #>> '{}'), ' & ' ORDER BY n)
               FROM jsonb_array_elements(p_breakdowns) WITH ORDINALITY x(b, n))
        WHEN jsonb_typeof(p_breakdown) = 'array' AND jsonb_array_length(p_breakdown) > 0 THEN
            (SELECT string_agg(b #>> '{}', ' & ' ORDER BY n)
               FROM jsonb_array_elements(p_breakdown) WITH ORDINALITY x(b, n))
        WHEN jsonb_typeof(p_breakdown) IN ('string', 'number') AND p_breakdown #>> '{}' <> '' THEN p_breakdown #>> '{}'
    END, '')
$$;

CREATE FUNCTION api._meta_plural(p_n text, p_unit text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_n || ' ' || lower(p_unit) || CASE WHEN p_n = '1' THEN '' ELSE 's' END
$$;

-- The date range in words (rules above); p_default when date_from and date_to are absent.
CREATE FUNCTION api._meta_date_range(p_from text, p_to text, p_default text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN f IS NULL AND t IS NULL THEN p_default
        WHEN f IS NULL THEN p_default || ' until ' || t
        WHEN f ~ '^\d{4}-\d{2}-\d{2}' AND t IS NOT NULL THEN f || ' to ' || t
        WHEN f ~ '^\d{4}-\d{2}-\d{2}' THEN 'since ' || f
        ELSE CASE
            WHEN f ~ '^-\d+[hdwmy]$' THEN 'the last ' || api._meta_plural(
                substring(f FROM 2 FOR length(f) - 2),
                CASE right(f, 1) WHEN 'h' THEN 'hour' WHEN 'd' THEN 'day' WHEN 'w' THEN 'week'
                                 WHEN 'm' THEN 'month' ELSE 'year' END)
            WHEN f = 'dStart' THEN 'today' WHEN f = 'mStart' THEN 'this month'
            WHEN f = 'yStart' THEN 'this year' WHEN f = 'all' THEN 'all time'
            ELSE f END || coalesce(' until ' || t, '')
    END
      FROM (SELECT nullif(p_from, '') AS f, nullif(p_to, '') AS t) x
$$;

-- {"name", "description"} of an insight's query / legacy filters; raises a field error (22023)
-- for what it cannot describe.
CREATE FUNCTION api._insight_metadata(p_filters jsonb, p_query jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_src jsonb;
    v_legacy boolean := jsonb_typeof(p_query) IS DISTINCT FROM 'object';
    v_attr text := CASE WHEN jsonb_typeof(p_query) = 'object' THEN 'query' ELSE 'filters' END;
    v_kind text;
    v_series jsonb;
    v_names text[];
    v_maths text[];
    v_name text;
    v_desc text;
    v_range text;
    v_filters integer;
    v_breakdown text;
    v_from text;
    v_to text;
    v_n text;
    v_unit text;
    v_target jsonb;
    v_return jsonb;
    v_test boolean;
BEGIN
    IF v_legacy THEN
        IF jsonb_typeof(p_filters) IS DISTINCT FROM 'object' OR p_filters = '{}'::jsonb THEN
            PERFORM api._field_error('query', 'Either query or filters is required.', 'required');
        END IF;
        v_src := p_filters;
        v_kind := CASE upper(coalesce(nullif(v_src->>'insight', ''), 'TRENDS'))
                      WHEN 'TRENDS' THEN 'trend' WHEN 'FUNNELS' THEN 'funnel' WHEN 'RETENTION' THEN 'retention' END;
        IF v_kind IS NULL THEN
            PERFORM api._field_error('filters', format('Cannot describe a %s insight: this server describes TRENDS, FUNNELS and RETENTION.',
                                                       upper(v_src->>'insight')));
        END IF;
        -- events and actions in their `order`.
        SELECT jsonb_agg(e ORDER BY coalesce((e->>'order')::numeric, 0), src, n) INTO v_series
          FROM (SELECT e, 0 AS src, n FROM jsonb_array_elements(CASE WHEN jsonb_typeof(v_src->'events') = 'array'
                                                                     THEN v_src->'events' ELSE '[]' END) WITH ORDINALITY a(e, n)
                UNION ALL
                SELECT e || '{"type": "actions"}', 1, n FROM jsonb_array_elements(CASE WHEN jsonb_typeof(v_src->'actions') = 'array'
                                                                     THEN v_src->'actions' ELSE '[]' END) WITH ORDINALITY a(e, n)) s
         WHERE jsonb_typeof(e) = 'object';
        v_from := v_src->>'date_from';
        v_to := v_src->>'date_to';
        v_breakdown := api._meta_breakdown(v_src->'breakdown', v_src->>'breakdown_type', v_src->'breakdowns');
        v_test := coalesce(v_src->>'filter_test_accounts', '') IN ('true', 'True');
    ELSE
        v_src := CASE WHEN p_query->>'kind' = 'InsightVizNode' THEN p_query->'source' ELSE p_query END;
        v_kind := CASE v_src->>'kind' WHEN 'TrendsQuery' THEN 'trend' WHEN 'FunnelsQuery' THEN 'funnel'
                                      WHEN 'RetentionQuery' THEN 'retention' END;
        IF v_kind IS NULL THEN
            PERFORM api._field_error('query', format('Cannot describe a %s: this server describes TrendsQuery, FunnelsQuery and RetentionQuery.',
                                                     coalesce(v_src->>'kind', 'query without a kind')));
        END IF;
        SELECT jsonb_agg(e ORDER BY n) INTO v_series
          FROM jsonb_array_elements(CASE WHEN jsonb_typeof(v_src->'series') = 'array' THEN v_src->'series' ELSE '[]' END)
               WITH ORDINALITY a(e, n)
         WHERE jsonb_typeof(e) = 'object';
        v_from := v_src#>>'{dateRange,date_from}';
        v_to := v_src#>>'{dateRange,date_to}';
        v_breakdown := api._meta_breakdown(v_src#>'{breakdownFilter,breakdown}', v_src#>>'{breakdownFilter,breakdown_type}',
                                           v_src#>'{breakdownFilter,breakdowns}');
        v_test := coalesce(v_src->>'filterTestAccounts', '') = 'true';
    END IF;

    v_filters := api._meta_filter_count(v_src->'properties')
        + coalesce((SELECT sum(api._meta_filter_count(s->'properties')) FROM jsonb_array_elements(coalesce(v_series, '[]')) s), 0)::integer;

    IF v_kind IN ('trend', 'funnel') THEN
        IF v_series IS NULL THEN
            PERFORM api._field_error(v_attr, CASE v_kind WHEN 'trend' THEN 'The query has no series to describe.'
                                                        ELSE 'The funnel has no steps to describe.' END);
        END IF;
        SELECT array_agg(api._meta_series_name(s) ORDER BY n), array_agg(api._meta_math_name(s) ORDER BY n)
          INTO v_names, v_maths
          FROM jsonb_array_elements(v_series) WITH ORDINALITY x(s, n);
        v_range := api._meta_date_range(v_from, v_to, 'the last 7 days');
    END IF;

    IF v_kind = 'trend' THEN
        IF (SELECT count(DISTINCT m) FROM unnest(v_maths) m) = 1 THEN
            v_name := array_to_string(v_names, ' & ') || ' ' || v_maths[1];
        ELSE
            v_name := (SELECT string_agg(v_names[i] || ' ' || v_maths[i], ' & ' ORDER BY i)
                         FROM generate_subscripts(v_names, 1) i);
        END IF;
        v_n := coalesce(nullif(CASE WHEN v_legacy THEN v_src->>'formula' ELSE v_src#>>'{trendsFilter,formula}' END, ''), NULL);
        IF v_n IS NOT NULL THEN
            v_name := 'Formula ' || v_n || ' of ' || v_name;
        END IF;
        v_name := v_name || v_breakdown;
        v_desc := format('Trends of %s over %s, by %s', v_name, v_range,
                         lower(coalesce(nullif(v_src->>'interval', ''), 'day')));
    ELSIF v_kind = 'funnel' THEN
        v_name := array_to_string(v_names, ' → ') || ' funnel' || v_breakdown;
        IF v_legacy THEN
            v_n := coalesce(v_src->>'funnel_window_interval', v_src->>'funnel_window_days', '14');
            v_unit := CASE WHEN v_src ? 'funnel_window_interval' THEN coalesce(v_src->>'funnel_window_interval_unit', 'day') ELSE 'day' END;
            v_return := to_jsonb(coalesce(v_src->>'funnel_order_type', 'ordered'));
        ELSE
            v_n := coalesce(v_src#>>'{funnelsFilter,funnelWindowInterval}', '14');
            v_unit := coalesce(v_src#>>'{funnelsFilter,funnelWindowIntervalUnit}', 'day');
            v_return := to_jsonb(coalesce(v_src#>>'{funnelsFilter,funnelOrderType}', 'ordered'));
        END IF;
        v_desc := format('Funnel of %s steps (%s) over %s, %s steps, conversion window %s',
                         cardinality(v_names), array_to_string(v_names, ' → ') || v_breakdown, v_range,
                         CASE v_return #>> '{}' WHEN 'strict' THEN 'strict order' WHEN 'unordered' THEN 'any order'
                                                ELSE 'ordered' END,
                         api._meta_plural(v_n, v_unit));
    ELSE
        IF v_legacy THEN
            v_target := coalesce(v_src->'target_entity', '{"id": "$pageview", "type": "events"}');
            v_return := coalesce(v_src->'returning_entity', '{"id": "$pageview", "type": "events"}');
            v_n := coalesce(v_src->>'total_intervals', '11');
            v_unit := coalesce(v_src->>'period', 'Day');
            v_maths := ARRAY[coalesce(v_src->>'retention_type', 'retention_recurring')];
        ELSE
            v_target := coalesce(v_src#>'{retentionFilter,targetEntity}', '{"id": "$pageview", "type": "events"}');
            v_return := coalesce(v_src#>'{retentionFilter,returningEntity}', '{"id": "$pageview", "type": "events"}');
            v_n := coalesce(v_src#>>'{retentionFilter,totalIntervals}', '11');
            v_unit := coalesce(v_src#>>'{retentionFilter,period}', 'Day');
            v_maths := ARRAY[coalesce(v_src#>>'{retentionFilter,retentionType}', 'retention_recurring')];
        END IF;
        IF jsonb_typeof(v_target) <> 'object' OR jsonb_typeof(v_return) <> 'object' THEN
            PERFORM api._field_error(v_attr, 'The retention entities must be objects.');
        END IF;
        v_filters := v_filters + api._meta_filter_count(v_target->'properties') + api._meta_filter_count(v_return->'properties');
        v_name := format('Retention of users who did %s, returning with %s',
                         api._meta_series_name(v_target), api._meta_series_name(v_return)) || v_breakdown;
        v_range := api._meta_date_range(v_from, v_to, 'the last ' || api._meta_plural(v_n, v_unit));
        v_desc := format('Retention of users who did %s and came back to do %s%s over %s, %s retention over %s periods',
                         api._meta_series_name(v_target), api._meta_series_name(v_return), v_breakdown, v_range,
                         CASE WHEN v_maths[1] LIKE 'retention_first%' THEN 'first time' ELSE 'recurring' END,
                         v_n || ' ' || lower(v_unit));
    END IF;
    v_desc := v_desc || format(', with %s property %s', v_filters, CASE WHEN v_filters = 1 THEN 'filter' ELSE 'filters' END)
              || CASE WHEN v_test THEN ', excluding test accounts' ELSE '' END || '.';
    RETURN jsonb_build_object('name', v_name, 'description', v_desc);
END $$;

CREATE FUNCTION api.h_insights_generate_metadata(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_typeof(p_body) <> 'object' THEN
        PERFORM api._field_error('non_field_errors', 'Invalid data. Expected a dictionary.');
    END IF;
    RETURN api._insight_metadata(CASE WHEN p_body ? 'filters' THEN api._object_field(p_body, 'filters') END,
                                 CASE WHEN p_body ? 'query' THEN api._object_field(p_body, 'query') END)::json;
END $$;

---------------------------------------------------------------------------------------------------
-- GET insights/:id/analyze/ (insight:read): a deterministic summary of the insight's current result.
--
-- PostHog answers this action with an LLM's analysis; this server states facts computed from the
-- result instead. The result is the cached one when there is one (refresh mode force_cache, as the
-- retrieve endpoint's default), else it is computed now (mode blocking, the same
-- api._insight_result path as `GET insights/:id/?refresh=blocking`, which also fills the cache).
--
-- Body: {"insight_id", "short_id", "kind": "trends"|"funnels"|"retention"|null, "is_cached",
--        "last_refresh", "summary": "<sentences>", "facts": [...]}
-- Percentages are rounded to one decimal (numeric, half away from zero). Facts by kind:
-- * trends, one per result series, in result order:
--     {"type": "trend_series", "label", "breakdown_value", "compare_label", "total", "first_value",
--      "last_value", "change_percent", "peak_value", "peak_date"}
--   total = the series' `count` (PostHog: the sum of `data`; for cumulative displays the last value;
--   the aggregated_value for pie / number displays, which have no buckets); first/last_value = the
--   first and last bucket; change_percent = (last - first) / first * 100, null when first is 0;
--   peak = the largest bucket, the earliest on ties; peak_date = its `days` entry.
--   Summary per series: "<label>: <total> in total, <first> on <day> to <last> on <day> (<±x.x%|n/a>),
--   peak <v> on <day>."
-- * funnels (the steps visualisation), one per breakdown value (one without breakdown):
--     {"type": "funnel", "breakdown_value", "entered", "completed", "overall_conversion_percent",
--      "steps": [{"order", "name", "count", "conversion_from_previous_percent",
--                 "conversion_from_start_percent"}],
--      "biggest_drop_off": {"from_step", "to_step", "to_order", "dropped", "drop_off_percent"} | null}
--   entered = the first step's count, completed = the last step's; overall conversion = completed /
--   entered; the biggest drop-off is the step transition with the largest drop-off rate
--   (1 - count_k / count_{k-1}, only where count_{k-1} > 0), the earliest on ties; null with one
--   step. An empty funnel result (nobody entered) has no facts. Summary: "<entered> entered and
--   <completed> completed (<x>% overall conversion). Biggest drop-off: <A> → <B>, <n> dropped (<p>%)."
--   With a breakdown each summary starts with "<value>: " (a list value joined with "::").
-- * retention, one per breakdown value (one without breakdown):
--     {"type": "retention", "breakdown_value", "cohorts", "people",
--      "periods": [{"period", "label", "cohorts", "average_percent"}]}
--   cohorts = result rows, people = the sum of cohort sizes (values[0]); for each period k ≥ 1 the
--   average over the cohorts that can already be observed at k (row index i + k ≤ rows - 1, the
--   later cells lie in the future) and are not empty of values[k] / values[0] * 100 (a simple mean of
--   the cohorts' percentages, PostHog's default "mean"); null when no cohort qualifies.
--   Summary: "<Period 1 label> retention averages <x>% over <n> cohorts (<people> people in <rows>
--   cohorts)."
-- Insights no engine here computes (paths, stickiness, SQL…): kind null, no facts. Engine errors
-- are the usual 400 bodies. Unknown id / another project's insight → 404.

-- A breakdown value as text for the summaries ("Chrome"; a list such as ["Chrome", "Mac"] joined
-- with "::" as PostHog's multi-breakdown labels); NULL when there is none.
CREATE FUNCTION api._bv_text(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(p)
        WHEN 'array' THEN (SELECT string_agg(e #>> '{}', '::' ORDER BY n) FROM jsonb_array_elements(p) WITH ORDINALITY x(e, n))
        WHEN 'null' THEN NULL
        ELSE p #>> '{}' END
$$;

CREATE FUNCTION api._pct(p_num numeric, p_den numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_den IS NULL OR p_den = 0 OR p_num IS NULL THEN NULL ELSE round(p_num * 100 / p_den, 1) END
$$;

CREATE FUNCTION api._pct_text(p numeric, p_signed boolean DEFAULT false) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p IS NULL THEN 'n/a' ELSE CASE WHEN p_signed AND p > 0 THEN '+' ELSE '' END || p::text || '%' END
$$;

CREATE FUNCTION api._analyze_trends(p_result jsonb, OUT summary text, OUT facts jsonb)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    s jsonb;
    v_fact jsonb;
    v_n integer;
    v_first numeric;
    v_last numeric;
    v_peak_i integer;
    v_lines text[] := '{}';
BEGIN
    facts := '[]';
    FOR s IN SELECT x FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_result) = 'array' THEN p_result ELSE '[]' END) x LOOP
        v_n := CASE WHEN jsonb_typeof(s->'data') = 'array' THEN jsonb_array_length(s->'data') ELSE 0 END;
        v_first := NULL; v_last := NULL; v_peak_i := NULL;
        IF v_n > 0 THEN
            v_first := (s->'data'->>0)::numeric;
            v_last := (s->'data'->>(v_n - 1))::numeric;
            SELECT (n - 1)::integer INTO v_peak_i FROM jsonb_array_elements_text(s->'data') WITH ORDINALITY d(v, n)
             ORDER BY v::numeric DESC, n LIMIT 1;
        END IF;
        v_fact := jsonb_build_object(
            'type', 'trend_series', 'label', s->'label',
            'breakdown_value', s->'breakdown_value', 'compare_label', s->'compare_label',
            'total', coalesce(s->'count', s->'aggregated_value'),
            'first_value', s->'data'->0, 'last_value', s->'data'->(v_n - 1),
            'change_percent', api._pct(v_last - v_first, v_first),
            'peak_value', s->'data'->v_peak_i, 'peak_date', s->'days'->>v_peak_i);
        facts := facts || jsonb_build_array(v_fact);
        v_lines := v_lines || (CASE WHEN v_n > 0 THEN
            format('%s: %s in total, %s on %s to %s on %s (%s), peak %s on %s.', s->>'label', v_fact->>'total',
                   v_fact->>'first_value', s->'days'->>0, v_fact->>'last_value', s->'days'->>(v_n - 1),
                   api._pct_text((v_fact->>'change_percent')::numeric, true), v_fact->>'peak_value', v_fact->>'peak_date')
            ELSE format('%s: %s in total.', s->>'label', coalesce(v_fact->>'total', 'n/a')) END);
    END LOOP;
    summary := CASE WHEN cardinality(v_lines) = 0 THEN 'The trend has no series.' ELSE array_to_string(v_lines, ' ') END;
END $$;

CREATE FUNCTION api._analyze_funnel_steps(p_steps jsonb, OUT summary text, OUT fact jsonb)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_n integer := jsonb_array_length(p_steps);
    v_entered numeric := (p_steps->0->>'count')::numeric;
    v_completed numeric := (p_steps->(v_n - 1)->>'count')::numeric;
    v_steps jsonb;
    v_drop jsonb;
BEGIN
    SELECT jsonb_agg(jsonb_build_object(
               'order', st->'order', 'name', coalesce(nullif(st->>'custom_name', ''), st->>'name'),
               'count', st->'count',
               'conversion_from_previous_percent', CASE WHEN n > 1 THEN api._pct((st->>'count')::numeric,
                                                        (p_steps->(n::integer - 2)->>'count')::numeric) END,
               'conversion_from_start_percent', api._pct((st->>'count')::numeric, v_entered)) ORDER BY n)
      INTO v_steps FROM jsonb_array_elements(p_steps) WITH ORDINALITY x(st, n);
    SELECT jsonb_build_object('from_step', v_steps->(n - 2)->'name', 'to_step', v_steps->(n - 1)->'name',
                              'to_order', v_steps->(n - 1)->'order', 'dropped', prev - cur,
                              'drop_off_percent', api._pct(prev - cur, prev))
      INTO v_drop
      FROM (SELECT n::integer AS n, (st->>'count')::numeric AS cur,
                   (p_steps->(n::integer - 2)->>'count')::numeric AS prev
              FROM jsonb_array_elements(p_steps) WITH ORDINALITY x(st, n) WHERE n > 1) t
     WHERE prev > 0
     ORDER BY (prev - cur) / prev DESC, n LIMIT 1;
    fact := jsonb_build_object('type', 'funnel', 'breakdown_value', coalesce(p_steps->0->'breakdown_value', p_steps->0->'breakdown'),
                               'entered', v_entered, 'completed', v_completed,
                               'overall_conversion_percent', api._pct(v_completed, v_entered),
                               'steps', v_steps, 'biggest_drop_off', v_drop);
    summary := format('%s%s entered and %s completed (%s overall conversion).',
                      coalesce(api._bv_text(fact->'breakdown_value') || ': ', ''),
                      v_entered, v_completed, api._pct_text((fact->>'overall_conversion_percent')::numeric))
               || CASE WHEN v_drop IS NULL THEN '' ELSE
                  format(' Biggest drop-off: %s → %s, %s dropped (%s).', v_drop->>'from_step', v_drop->>'to_step',
                         v_drop->>'dropped', api._pct_text((v_drop->>'drop_off_percent')::numeric)) END;
END $$;

CREATE FUNCTION api._analyze_funnels(p_result jsonb, OUT summary text, OUT facts jsonb)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    g jsonb;
    r record;
    v_lines text[] := '{}';
BEGIN
    facts := '[]';
    IF jsonb_typeof(p_result) <> 'array' OR jsonb_array_length(p_result) = 0 THEN
        summary := 'Nobody entered the funnel.';
        RETURN;
    END IF;
    IF jsonb_typeof(p_result->0) = 'object' AND NOT (p_result->0 ? 'count' AND p_result->0 ? 'order') THEN
        summary := 'Only the steps visualisation of a funnel is analyzed.';
        RETURN;
    END IF;
    FOR g IN SELECT x FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_result->0) = 'array' THEN p_result
                                                     ELSE jsonb_build_array(p_result) END) x LOOP
        CONTINUE WHEN jsonb_typeof(g) <> 'array' OR jsonb_array_length(g) = 0;
        r := api._analyze_funnel_steps(g);
        facts := facts || jsonb_build_array(r.fact);
        v_lines := v_lines || r.summary;
    END LOOP;
    summary := CASE WHEN cardinality(v_lines) = 0 THEN 'Nobody entered the funnel.' ELSE array_to_string(v_lines, ' ') END;
END $$;

CREATE FUNCTION api._analyze_retention(p_result jsonb, OUT summary text, OUT facts jsonb)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    g record;
    v_fact jsonb;
    v_lines text[] := '{}';
BEGIN
    facts := '[]';
    FOR g IN
        WITH rows AS (
            SELECT r->'breakdown_value' AS bv, r, n FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(p_result) = 'array' THEN p_result ELSE '[]' END) WITH ORDINALITY x(r, n)
        ), grp AS (
            SELECT bv, min(n) AS first_n, count(*)::integer AS cohorts,
                   jsonb_agg(r ORDER BY n) AS rs
              FROM rows GROUP BY bv
        )
        SELECT bv, cohorts, rs FROM grp ORDER BY first_n
    LOOP
        SELECT jsonb_build_object(
                   'type', 'retention', 'breakdown_value', g.bv, 'cohorts', g.cohorts,
                   'people', (SELECT coalesce(sum((r->'values'->0->>'count')::numeric), 0) FROM jsonb_array_elements(g.rs) r),
                   'periods', coalesce((
                       SELECT jsonb_agg(jsonb_build_object(
                                  'period', k, 'label', g.rs->0->'values'->k->'label',
                                  'cohorts', (SELECT count(*) FROM jsonb_array_elements(g.rs) WITH ORDINALITY c(r, i)
                                               WHERE i - 1 + k <= g.cohorts - 1 AND (r->'values'->0->>'count')::numeric > 0),
                                  'average_percent', (SELECT round(avg((r->'values'->k->>'count')::numeric * 100
                                                                       / (r->'values'->0->>'count')::numeric), 1)
                                                        FROM jsonb_array_elements(g.rs) WITH ORDINALITY c(r, i)
                                                       WHERE i - 1 + k <= g.cohorts - 1
                                                         AND (r->'values'->0->>'count')::numeric > 0)) ORDER BY k)
                         FROM generate_series(1, coalesce(jsonb_array_length(g.rs->0->'values'), 0) - 1) k), '[]'))
          INTO v_fact;
        facts := facts || jsonb_build_array(v_fact);
        v_lines := v_lines || (
            coalesce(api._bv_text(g.bv) || ': ', '') ||
            CASE WHEN jsonb_array_length(v_fact->'periods') = 0 THEN ''
                 WHEN v_fact->'periods'->0->>'average_percent' IS NULL
                     THEN format('No cohort can be observed at %s yet ', v_fact->'periods'->0->>'label')
                 ELSE format('%s retention averages %s over %s cohorts ', v_fact->'periods'->0->>'label',
                             api._pct_text((v_fact->'periods'->0->>'average_percent')::numeric),
                             v_fact->'periods'->0->>'cohorts') END ||
            format('(%s people in %s cohorts).', v_fact->>'people', g.cohorts));
    END LOOP;
    summary := CASE WHEN cardinality(v_lines) = 0 THEN 'The retention result has no cohorts.' ELSE array_to_string(v_lines, ' ') END;
END $$;

CREATE FUNCTION api.h_insight_analyze(p_body jsonb) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    v_row insights.saved_insights;
    v_kind text;
    v_res jsonb;
    r record;
BEGIN
    v_row := api._insight_by_path(false);
    IF v_row.id IS NULL THEN
        RETURN api._not_found();
    END IF;
    v_kind := api._insight_kind(v_row.filters, v_row.query);
    v_res := api._insight_result(v_row, 'force_cache');
    IF v_kind IS NOT NULL AND v_res->>'last_refresh' IS NULL THEN
        v_res := api._insight_result(v_row, 'blocking');
    END IF;
    IF v_kind = 'trend' THEN
        r := api._analyze_trends(v_res->'result');
    ELSIF v_kind = 'funnel' THEN
        r := api._analyze_funnels(v_res->'result');
    ELSIF v_kind = 'retention' THEN
        r := api._analyze_retention(v_res->'result');
    ELSE
        SELECT 'This insight has no result this server can analyze.'::text AS summary, '[]'::jsonb AS facts INTO r;
    END IF;
    RETURN json_build_object(
        'insight_id', v_row.id, 'short_id', v_row.short_id,
        'kind', CASE v_kind WHEN 'trend' THEN 'trends' WHEN 'funnel' THEN 'funnels' ELSE v_kind END,
        'is_cached', v_res->'is_cached', 'last_refresh', v_res->'last_refresh',
        'summary', r.summary, 'facts', r.facts);
END $$;
