//! Paths: the most common sequences of pages, screens or events, as weighted edges
//! `{source: "1_/", target: "2_/pricing", value, average_conversion_time}`. Rules:
//! `docs/insights.md#paths`.
//!
//! # Split of the work
//! One SQL statement feeds the matching events to the parallel aggregate `insights._path_events`
//! ([`PathEvents`]: actor, time, uuid and the interned raw item); the raw item is the
//! `$current_url` of a pageview (one trailing `/` removed), the `$screen_name` of a screen, or the
//! event name.
//! Everything after that is per person and sequential, so it is pure Rust here ([`PathRules`]):
//! cleaning rules (regex replacements), groupings, exclusions, 30-minute sessions, collapsing
//! repeats, start/end points and the step limit, then the edges of every path ([`Edges`]) and
//! PostHog's edge selection ([`select_edges`]). Regexes use the `regex` crate, whose syntax is
//! RE2's, as ClickHouse's `replaceRegexpAll` is.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::{Value, json};

use crate::compile::context;
use crate::compile::dates::Interval;
use crate::compile::properties;
use crate::compile::sql::{Param, SqlBuilder};
use crate::engines::funnels::{Lookups, Project};
use crate::error::{QueryError, Result};
use crate::model::{InsightKind, InsightQuery, PathsOptions};
use crate::segments::{self, EventScan};

/// A new path starts after a gap of at least this long (PostHog: 30 minutes).
pub const SESSION_GAP_US: i64 = 30 * 60 * 1_000_000;

/// The longest item (bytes) cleaning rules may produce; longer results are cut (on a character
/// boundary).
pub const MAX_ITEM_BYTES: usize = 8192;

/// Cut `s` to at most `max` bytes on a character boundary.
fn cut_to(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// The item standing for the middle of a path cut between a start and an end point.
const ELLIPSIS: &str = "...";

#[derive(Debug, Clone)]
pub struct PathsPlan {
    /// One row: the `insights._path_events` state (bytea) of the matching events; read it with
    /// [`PathEvents::from_bytes`] and [`render_state`].
    pub sql: String,
    pub params: Vec<Param>,
    pub rules: PathRules,
    /// Funnel paths: the events each selected person keeps, `person → (from, to)` in Unix µs
    /// (inclusive). Persons not in it have no path.
    pub windows: Option<HashMap<i64, (i64, i64)>>,
    /// The same events from the columnar segments (crate::segments), when they can answer.
    pub seg: std::result::Result<EventScan, String>,
}

/// Which part of a funnel's persons' events a funnel path keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunnelPathKind {
    After,
    Before,
    Between,
}

/// A parsed `funnelPathsFilter`: the funnel to run (a legacy filter or a FunnelsQuery, as sent)
/// and the step it is about (N > 0: reached step N; N < 0: dropped off before step |N|).
#[derive(Debug, Clone)]
pub struct FunnelPaths {
    pub kind: FunnelPathKind,
    pub step: i64,
    pub source: Value,
}

/// The funnel part of a paths query, if any. Errors name `funnel_paths` / `funnel_step` /
/// `funnel_filter`.
pub fn funnel_paths(p: &PathsOptions) -> Result<Option<FunnelPaths>> {
    let Some(f) = &p.funnel_paths else {
        return Ok(None);
    };
    let kind = match f.get("funnelPathType").and_then(Value::as_str) {
        Some("funnel_path_after_step") => FunnelPathKind::After,
        Some("funnel_path_before_step") => FunnelPathKind::Before,
        Some("funnel_path_between_steps") => FunnelPathKind::Between,
        _ => {
            return Err(invalid(
                "funnel_paths",
                "funnel_paths must be funnel_path_after_step, funnel_path_before_step or \
                 funnel_path_between_steps.",
            ));
        }
    };
    let step = match f.get("funnelStep") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let step = step.filter(|s| *s != 0 && *s != -1).ok_or_else(|| {
        invalid(
            "funnel_step",
            "funnel_step must be a step number (1, 2, …) or a drop-off before a step (-2, -3, …).",
        )
    })?;
    if kind == FunnelPathKind::Between && step == 1 {
        return Err(invalid(
            "funnel_step",
            "Paths between steps need a step after the first (funnel_step 2 or more).",
        ));
    }
    let source = f.get("funnelSource").filter(|s| s.is_object()).cloned();
    let source = source.ok_or_else(|| {
        invalid(
            "funnel_filter",
            "Funnel paths need the funnel (funnel_filter or funnelSource).",
        )
    })?;
    Ok(Some(FunnelPaths { kind, step, source }))
}

/// Per person, the events a funnel path keeps, from the funnel engine's detailed outcomes
/// (`[id, level, first, last, [step times…]]`, Postgres-epoch µs). With step `N > 0` the persons
/// who reached step N and `T` = their step-N time; with `N < 0` those whose furthest step is
/// `|N| − 1` and `T` = that step's time. After: `[T, ∞)`; before: `(−∞, T]` (drop-offs:
/// `T + window`); between: `[step N−1, step N]` (drop-offs: `[T, T + window]`).
pub fn funnel_windows(
    fp: &FunnelPaths,
    outputs: &[Value],
    window_us: i64,
) -> HashMap<i64, (i64, i64)> {
    let mut out = HashMap::new();
    let rows = outputs
        .iter()
        .filter_map(|o| o.get("outcomes").and_then(Value::as_array))
        .flatten();
    for row in rows {
        let id = match row.get(0) {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let level = row.get(1).and_then(Value::as_i64).unwrap_or(0);
        let ts: Vec<i64> = row
            .get(4)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .map(|t| t + crate::engines::funnels::PG_EPOCH_OFFSET_US)
            .collect();
        let Some(id) = id else { continue };
        let at = |step: i64| {
            usize::try_from(step - 1)
                .ok()
                .and_then(|i| ts.get(i).copied())
        };
        let window = match (fp.step > 0, fp.kind) {
            (true, _) if level < fp.step => None,
            (false, _) if level != -fp.step - 1 => None,
            (true, FunnelPathKind::After) => at(fp.step).map(|t| (t, i64::MAX)),
            (true, FunnelPathKind::Before) => at(fp.step).map(|t| (i64::MIN, t)),
            (true, FunnelPathKind::Between) => at(fp.step - 1).zip(at(fp.step)),
            (false, kind) => at(-fp.step - 1).map(|t| match kind {
                FunnelPathKind::After => (t, i64::MAX),
                FunnelPathKind::Before => (i64::MIN, t.saturating_add(window_us)),
                FunnelPathKind::Between => (t, t.saturating_add(window_us)),
            }),
        };
        if let Some(w) = window {
            out.insert(id, w);
        }
    }
    out
}

/// Everything applied to a person's events in Rust.
#[derive(Debug, Clone)]
pub struct PathRules {
    /// Team rules (with `path_replacements`) then local ones: `(regex, replacement)`.
    cleaning: Vec<(Regex, String)>,
    /// `(pattern text, unanchored regex)`: an item matching becomes the pattern text.
    groupings: Vec<(String, Regex)>,
    exclude: HashSet<String>,
    start: Option<String>,
    end: Option<String>,
    step_limit: usize,
    /// A gap this long starts a new path: 30 minutes, or the funnel window for funnel paths.
    session_gap_us: i64,
    edge_limit: Option<usize>,
    min_weight: Option<u64>,
    max_weight: Option<u64>,
}

fn invalid(attr: &str, detail: impl Into<String>) -> QueryError {
    QueryError::invalid(attr.to_string(), detail)
}

/// `(.)/$` → `\1`: one trailing slash goes, a lone `/` stays.
pub fn strip_trailing_slash(s: &str) -> &str {
    match s.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => s,
    }
}

/// ClickHouse replacement text (`\1`, `\0`) in the `regex` crate's syntax (`${1}`); a literal
/// `$` is doubled.
fn replacement(alias: &str) -> String {
    let mut out = String::with_capacity(alias.len());
    let mut chars = alias.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str(&format!("${{{d}}}"));
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            _ => out.push(c),
        }
    }
    out
}

/// Compile cleaning rules; a bad regex is a 400 on `attr__<i>__regex`.
fn cleaning_rules(rules: &[(String, String)], attr: &str) -> Result<Vec<(Regex, String)>> {
    rules
        .iter()
        .enumerate()
        .map(|(i, (regex, alias))| {
            let re = Regex::new(regex).map_err(|e| {
                invalid(
                    &format!("{attr}__{i}__regex"),
                    format!("Invalid regular expression: {e}"),
                )
            })?;
            Ok((re, replacement(alias)))
        })
        .collect()
}

/// The team's `path_cleaning_filters` (`[{regex, alias}]`); rules without a regex do nothing.
fn team_rules(team: &Value) -> Vec<(String, String)> {
    team.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let regex = r.get("regex")?.as_str()?.to_string();
            let alias = r.get("alias").and_then(Value::as_str).unwrap_or_default();
            Some((regex, alias.to_string()))
        })
        .collect()
}

impl PathRules {
    fn new(p: &PathsOptions, team_cleaning: &Value) -> Result<PathRules> {
        if let (Some(min), Some(max)) = (p.min_edge_weight, p.max_edge_weight)
            && max < min
        {
            return Err(invalid(
                "max_edge_weight",
                "max_edge_weight must not be less than min_edge_weight.",
            ));
        }
        let mut cleaning = Vec::new();
        if p.path_replacements {
            cleaning = cleaning_rules(&team_rules(team_cleaning), "path_cleaning_filters")?;
        }
        let local: Vec<(String, String)> = p
            .local_path_cleaning_filters
            .iter()
            .map(|r| (r.regex.clone(), r.alias.clone()))
            .collect();
        cleaning.extend(cleaning_rules(&local, "local_path_cleaning_filters")?);
        let groupings = p
            .path_groupings
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let pattern = regex::escape(g).replace(r"\*", ".*");
                Regex::new(&pattern)
                    .map(|re| (g.clone(), re))
                    .map_err(|e| invalid(&format!("path_groupings__{i}"), e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let both = p.start_point.is_some() && p.end_point.is_some();
        Ok(PathRules {
            cleaning,
            groupings,
            exclude: p.exclude_events.iter().cloned().collect(),
            start: p
                .start_point
                .as_deref()
                .map(|s| strip_trailing_slash(s).to_string()),
            end: p
                .end_point
                .as_deref()
                .map(|s| strip_trailing_slash(s).to_string()),
            step_limit: p.step_limit.max(1) as usize,
            session_gap_us: SESSION_GAP_US,
            // PostHog drops the default limit of 50 when both points are given.
            edge_limit: match (both, p.edge_limit) {
                (true, 50) => None,
                (_, n) => Some(n.max(1) as usize),
            },
            min_weight: p.min_edge_weight.map(u64::from),
            max_weight: p.max_edge_weight.map(u64::from),
        })
    }

    /// A raw item after cleaning and grouping; `None` when it is excluded.
    pub fn item(&self, raw: &str) -> Option<String> {
        let mut item = raw.to_string();
        for (re, alias) in &self.cleaning {
            item = re.replace_all(&item, alias.as_str()).into_owned();
            // A rule may lengthen an item (`(.)` → `\1\1`); rules chained that way would grow it
            // exponentially, so an item is cut at MAX_ITEM_BYTES after each rule.
            cut_to(&mut item, MAX_ITEM_BYTES);
        }
        if let Some((pattern, _)) = self.groupings.iter().find(|(_, re)| re.is_match(&item)) {
            item = pattern.clone();
        }
        (!self.exclude.contains(&item)).then_some(item)
    }

    /// A person's paths: sessions split at 30-minute gaps, runs of one item collapsed to their
    /// last event, then cut by the start/end points and the step limit. `events` are
    /// `(µs, item)` in time order, already cleaned.
    pub fn paths(&self, events: &[(i64, String)]) -> Vec<Vec<(i64, String)>> {
        let points = Points {
            start: self.start.clone().map(Some),
            end: self.end.clone().map(Some),
            ellipsis: ELLIPSIS.to_string(),
        };
        self.paths_of(events, &points)
    }

    /// [`PathRules::paths`] over any item type (the engine runs it on interned ids).
    fn paths_of<T: Clone + PartialEq>(
        &self,
        events: &[(i64, T)],
        points: &Points<T>,
    ) -> Vec<Vec<(i64, T)>> {
        let mut out = Vec::new();
        let mut session: Vec<(i64, T)> = Vec::new();
        let mut last_ts: Option<i64> = None;
        for (ts, item) in events {
            if last_ts.is_some_and(|prev| ts - prev >= self.session_gap_us) {
                out.extend(self.cut(std::mem::take(&mut session), points));
            }
            last_ts = Some(*ts);
            match session.last_mut() {
                Some(prev) if prev.1 == *item => prev.0 = *ts,
                _ => session.push((*ts, item.clone())),
            }
        }
        out.extend(self.cut(session, points));
        out
    }

    /// Start/end points and the step limit on one session; `None` drops it.
    fn cut<T: Clone + PartialEq>(
        &self,
        path: Vec<(i64, T)>,
        points: &Points<T>,
    ) -> Option<Vec<(i64, T)>> {
        let limit = self.step_limit;
        // A point that is no item of the query (`Some(None)`) matches nothing.
        let find = |p: &Option<T>, from: usize| {
            let p = p.as_ref()?;
            path[from..]
                .iter()
                .position(|(_, i)| i == p)
                .map(|k| k + from)
        };
        let path = match (&points.start, &points.end) {
            (None, None) => path.into_iter().take(limit).collect(),
            (Some(s), None) => path[find(s, 0)?..].iter().take(limit).cloned().collect(),
            (None, Some(e)) => {
                let j = find(e, 0)?;
                path[j.saturating_sub(limit - 1)..=j].to_vec()
            }
            (Some(s), Some(e)) => {
                let i = find(s, 0)?;
                // PostHog looks for the end from the start on (inclusive): with start = end the
                // part is that one item, and it has no edge.
                let j = find(e, i)?;
                let part = &path[i..=j];
                if part.len() <= limit {
                    part.to_vec()
                } else {
                    let half = limit / 2;
                    let mut cut = part[..half].to_vec();
                    cut.push((part[half].0, points.ellipsis.clone()));
                    cut.extend_from_slice(&part[part.len() - half..]);
                    cut
                }
            }
        };
        (!path.is_empty()).then_some(path)
    }
}

/// The start and end points and the ellipsis item in the item type of a run: `None` for no
/// point, `Some(None)` for a point that is not an item of the query.
struct Points<T> {
    start: Option<Option<T>>,
    end: Option<Option<T>>,
    ellipsis: T,
}

/// Edge tallies over all paths: `(source, target) → (paths, summed ms)`.
#[derive(Debug, Default)]
pub struct Edges {
    tally: HashMap<(String, String), (u64, f64)>,
}

impl Edges {
    pub fn add_path(&mut self, path: &[(i64, String)]) {
        for (i, w) in path.windows(2).enumerate() {
            let key = (
                format!("{}_{}", i + 1, w[0].1),
                format!("{}_{}", i + 2, w[1].1),
            );
            let slot = self.tally.entry(key).or_insert((0, 0.0));
            slot.0 += 1;
            slot.1 += (w[1].0 - w[0].0) as f64 / 1000.0;
        }
    }
}

/// PostHog's selection: weight bounds, order (value desc, then source and target bytewise),
/// the edge limit, then (without weight bounds) only edges reachable from a first step.
pub fn select_edges(rules: &PathRules, edges: Edges) -> Value {
    edges_json(select_edge_rows(rules, edges))
}

/// One selected edge: source and target node, paths, average milliseconds between them.
pub type EdgeRow = (String, String, i64, f64);

/// [`select_edges`] as typed rows (what the set-returning function returns: no JSON between).
pub fn select_edge_rows(rules: &PathRules, edges: Edges) -> Vec<EdgeRow> {
    let mut nodes: HashMap<String, u64> = HashMap::new();
    let mut node = |key: &str| {
        let next = nodes.len() as u64;
        *nodes.entry(key.to_string()).or_insert(next)
    };
    let list = edges
        .tally
        .into_iter()
        .map(|((source, target), (paths, ms))| Edge {
            step: step_of(&source),
            from: node(&source),
            to: node(&target),
            source,
            target,
            paths,
            ms,
        })
        .collect();
    select(rules, list)
}

/// One tallied edge: its node keys (`"<step>_<item>"`), the step of its source, the two nodes
/// as numbers (equal numbers for equal keys), its paths and summed milliseconds.
struct Edge {
    source: String,
    target: String,
    step: u64,
    from: u64,
    to: u64,
    paths: u64,
    ms: f64,
}

/// PostHog's selection over tallied edges (see [`select_edges`]).
fn select(rules: &PathRules, list: Vec<Edge>) -> Vec<EdgeRow> {
    let mut list: Vec<Edge> = list
        .into_iter()
        .filter(|e| rules.min_weight.is_none_or(|m| e.paths >= m))
        .filter(|e| rules.max_weight.is_none_or(|m| e.paths <= m))
        .collect();
    list.sort_by(|a, b| {
        b.paths
            .cmp(&a.paths)
            .then_with(|| a.source.as_bytes().cmp(b.source.as_bytes()))
            .then_with(|| a.target.as_bytes().cmp(b.target.as_bytes()))
    });
    if let Some(limit) = rules.edge_limit {
        list.truncate(limit);
    }
    if rules.min_weight.is_none() && rules.max_weight.is_none() {
        let mut reached: HashSet<u64> = HashSet::new();
        let mut kept = vec![false; list.len()];
        // Targets only reach further edges of later steps, so one pass in step order suffices.
        let mut order: Vec<usize> = (0..list.len()).collect();
        order.sort_by_key(|&i| list[i].step);
        for i in order {
            let e = &list[i];
            if e.step == 1 || reached.contains(&e.from) {
                kept[i] = true;
                reached.insert(e.to);
            }
        }
        list = list
            .into_iter()
            .zip(kept)
            .filter(|(_, k)| *k)
            .map(|(e, _)| e)
            .collect();
    }
    list.into_iter()
        .map(|e| (e.source, e.target, e.paths as i64, e.ms / e.paths as f64))
        .collect()
}

/// PostHog's `result` of selected edges.
fn edges_json(list: Vec<EdgeRow>) -> Value {
    Value::Array(
        list.into_iter()
            .map(|(s, t, n, avg)| {
                json!({"source": s, "target": t, "value": n, "average_conversion_time": avg})
            })
            .collect(),
    )
}

/// The step number of `"<n>_<item>"`.
fn step_of(node: &str) -> u64 {
    node.split('_')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The funnel part of a funnel paths plan: each kept person's window ([`funnel_windows`]) and
/// the funnel's conversion window, which replaces the 30-minute session gap.
pub struct FunnelScope {
    pub windows: HashMap<i64, (i64, i64)>,
    pub window_us: i64,
}

/// Plan a paths query. `team_cleaning` is the project's `path_cleaning_filters`; `funnel` is
/// required exactly when the query has funnel paths (the caller runs the funnel first).
pub fn plan(
    q: &InsightQuery,
    project: &Project,
    team_cleaning: &Value,
    lookups: &Lookups,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
    funnel: Option<FunnelScope>,
) -> Result<PathsPlan> {
    if q.kind != InsightKind::Paths {
        return Err(invalid(
            "insight",
            format!("Expected a paths query, got {}.", q.kind.legacy_name()),
        ));
    }
    let p = &q.paths;
    if p.funnel_paths.is_some() != funnel.is_some() {
        return Err(invalid("funnel_paths", "Funnel paths need their funnel."));
    }
    let mut rules = PathRules::new(p, team_cleaning)?;
    if let Some(f) = &funnel {
        rules.session_gap_us = f.window_us.max(1);
    }
    let mut persons: Option<Vec<i64>> =
        funnel.as_ref().map(|f| f.windows.keys().copied().collect());
    if let Some(ids) = &mut persons {
        ids.sort_unstable();
    }
    let range = context::query_range(q, Interval::Day, &project.pt, now, earliest)?;
    let (sql, params, seg) = context::with_filter_context(project, lookups, |cx| {
        let mut b = SqlBuilder::new();
        let pid = b.int(project.id);
        let mut w = context::events_in_range(&mut b, &pid, &range);
        let in_range = w.len();
        let (item, strip, types) = item_sql(p, &mut b, cx)?;
        w.extend(types);
        w.push(
            properties::compile_properties_at(&q.properties, &mut b, cx, now)
                .map_err(|e| e.within("properties"))?,
        );
        if q.filter_test_accounts {
            w.push(
                properties::compile_properties_at(&project.test_account_filters, &mut b, cx, now)
                    .map_err(|e| e.within("filter_test_accounts"))?,
            );
        }
        if let Some(ids) = &persons {
            w.push(format!(
                "e.person_id = ANY({})",
                b.param(Param::IntArray(ids.clone()))
            ));
        }
        w.retain(|c| c != "TRUE");
        let select = format!(
            "SELECT insights._path_events(e.person_id, e.\"timestamp\", e.uuid, coalesce({item}, ''), {strip}) \
               FROM insights.events e WHERE"
        );
        let sql = format!("{select} {}", w.join(" AND "));
        let conds = &w[in_range..];
        let values = vec![
            format!("coalesce({item}, '')::text"),
            format!("({strip})::bool"),
        ];
        let sqls: Vec<&str> = conds.iter().chain(&values).map(String::as_str).collect();
        let seg = segments::referenced_columns(&sqls, cx.materialized)
            .ok_or_else(|| {
                "a filter or item on something other than the event name and materialised properties"
                    .to_string()
            })
            .map(|columns| EventScan {
                filter: if conds.is_empty() { "TRUE".into() } else { conds.join(" AND ") },
                values,
                columns,
                from_us: range.from.timestamp_micros(),
                to_us: range.to.timestamp_micros(),
                tail_sql: format!("{sql} AND {{TAIL}}"),
                params: b.params.clone(),
            });
        let (sql, params) = b.finish(&sql);
        Ok::<_, QueryError>((sql, params, seg))
    })?;
    Ok(PathsPlan {
        sql,
        params,
        rules,
        windows: funnel.map(|f| f.windows),
        seg,
    })
}

// The trailing `/` of a URL is removed in Rust, once per distinct URL ([`PathEvents`]).
const PAGEVIEW_ITEM: &str = "(e.properties ->> '$current_url')";
const SCREEN_ITEM: &str = "(e.properties ->> '$screen_name')";

/// The raw item expression, whether it is a pageview URL (whose trailing `/` goes), and the
/// event-type conditions (`include_event_types`).
fn item_sql(
    p: &PathsOptions,
    b: &mut SqlBuilder,
    cx: &properties::FilterContext,
) -> Result<(String, &'static str, Vec<String>)> {
    let types = &p.include_event_types;
    if types.iter().any(|t| t == "hogql") {
        let src = p.hogql_expression.as_deref().ok_or_else(|| {
            invalid(
                "paths_hogql_expression",
                "The hogql event type needs paths_hogql_expression.",
            )
        })?;
        let item = crate::compile::hogql::compile_text(src, "paths_hogql_expression", b, cx)?;
        return Ok((item, "false", Vec::new()));
    }
    let has = |t: &str| types.iter().any(|x| x == t);
    let excluded = |t: &str| p.exclude_events.iter().any(|x| x == t);
    // Without include types, an excluded $pageview / $screen is its event name.
    let use_url = if types.is_empty() {
        !excluded("$pageview")
    } else {
        has("$pageview")
    };
    let use_screen = if types.is_empty() {
        !excluded("$screen")
    } else {
        has("$screen")
    };
    // A materialised property is the same text in its own column (sql/materialize.sql), read
    // without parsing the jsonb.
    let column = |key: &str, json: &str| match cx.materialized.iter().find(|(k, _)| k == key) {
        Some((_, column)) => format!("e.{}", crate::compile::sql::quote_ident(column)),
        None => json.to_string(),
    };
    let mut arms = Vec::new();
    if use_url {
        let url = column("$current_url", PAGEVIEW_ITEM);
        arms.push(format!("WHEN e.event = '$pageview' THEN {url}"));
    }
    if use_screen {
        let screen = column("$screen_name", SCREEN_ITEM);
        arms.push(format!("WHEN e.event = '$screen' THEN {screen}"));
    }
    let item = if arms.is_empty() {
        "e.event".to_string()
    } else {
        format!("CASE {} ELSE e.event END", arms.join(" "))
    };
    let mut conds = Vec::new();
    if !types.is_empty() {
        let mut any = Vec::new();
        for t in ["$pageview", "$screen"] {
            if has(t) {
                any.push(format!("e.event = {}", b.text(t)));
            }
        }
        if has("custom_event") {
            any.push("e.event NOT LIKE '$%'".to_string());
        }
        conds.push(format!("({})", any.join(" OR ")));
    }
    let strip = if use_url {
        "e.event = '$pageview'"
    } else {
        "false"
    };
    Ok((item, strip, conds))
}

/// One person's rows from the statement: `(person, timestamps, raw items)`.
pub type PersonEvents = (i64, Vec<i64>, Vec<String>);

/// A little-endian reader over serialized bytes.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let part = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(part)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn u128(&mut self) -> Option<u128> {
        self.take(16)?.try_into().ok().map(u128::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
}

/// The state of the `insights._path_events` aggregate: every event as `(actor, µs, uuid, item
/// id)` (the uuid breaks ties of equal times, as documented),
/// items interned once (a path query repeats a few hundred URLs millions of times). Pageview
/// URLs lose one trailing `/` when interned. Parallel workers' states merge by re-interning.
#[derive(Debug, Default)]
pub struct PathEvents {
    /// Raw item → id, without and with the trailing-slash strip (looked up by `&str`, so a
    /// row allocates nothing once its item is known).
    ids: [HashMap<String, u32>; 2],
    items: Vec<String>,
    rows: Vec<PathRow>,
}

impl PathEvents {
    /// The id of a raw item (`strip`: a pageview URL, its trailing `/` removed).
    pub fn intern(&mut self, item: &str, strip: bool) -> u32 {
        if let Some(id) = self.ids[strip as usize].get(item) {
            return *id;
        }
        let id = self.items.len() as u32;
        let text = if strip {
            strip_trailing_slash(item)
        } else {
            item
        };
        self.items.push(text.to_string());
        self.ids[strip as usize].insert(item.to_string(), id);
        id
    }

    /// The state of hand-made rows (tests, and [`render`] over [`PersonEvents`]): each
    /// person's events keep their order.
    pub fn from_persons(persons: impl IntoIterator<Item = PersonEvents>) -> PathEvents {
        let mut s = PathEvents::default();
        let mut seq: u128 = 0;
        for (person, ts, items) in persons {
            for (t, item) in ts.into_iter().zip(items) {
                let id = s.intern(&item, false);
                seq += 1;
                s.rows.push((person, t, seq, id));
            }
        }
        s
    }

    /// Put the rows in (actor, time, uuid) order. A stable sort, because it merges the sorted
    /// runs of parallel workers' states in linear passes (the workers sort theirs before they
    /// serialise them).
    ///
    /// Person ids of a project are mostly dense: then a counting sort by actor (stable, two
    /// linear passes) and a sort of each actor's run only where it is out of time order (rows
    /// read from segments arrive in time order) give the same order as one stable sort.
    pub fn sort_rows(&mut self) {
        let keys = self.rows.iter().map(|r| r.0);
        let Some((min, mut start)) = crate::dense::key_offsets(keys, self.rows.len()) else {
            self.rows.sort_by_key(|&(a, t, u, _)| (a, t, u));
            return;
        };
        let mut sorted = vec![(0i64, 0i64, 0u128, 0u32); self.rows.len()];
        for r in &self.rows {
            let slot = &mut start[(r.0 - min) as usize];
            sorted[*slot] = *r;
            *slot += 1;
        }
        for run in sorted.chunk_by_mut(|x, y| x.0 == y.0) {
            if !run.is_sorted_by_key(|&(_, t, u, _)| (t, u)) {
                run.sort_by_key(|&(_, t, u, _)| (t, u));
            }
        }
        self.rows = sorted;
    }

    /// One event whose item is already interned ([`PathEvents::intern`]).
    pub fn push(&mut self, actor: i64, ts_us: i64, seq: u128, item: u32) {
        self.rows.push((actor, ts_us, seq, item));
    }

    /// Room for `n` more events.
    pub fn reserve(&mut self, n: usize) {
        self.rows.reserve(n);
    }

    /// One event; `strip` for pageview URLs.
    pub fn add(&mut self, actor: i64, ts_us: i64, uuid: u128, item: &str, strip: bool) {
        let id = self.intern(item, strip);
        self.rows.push((actor, ts_us, uuid, id));
    }

    /// Fold another state in (its items re-interned here, already stripped).
    pub fn merge(&mut self, other: PathEvents) {
        let map: Vec<u32> = other.items.iter().map(|s| self.intern(s, false)).collect();
        self.rows.extend(
            other
                .rows
                .into_iter()
                .map(|(a, t, u, i)| (a, t, u, map[i as usize])),
        );
    }

    /// Little-endian bytes: item count, items (length + UTF-8), row count, rows.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.rows.len() * 36);
        out.extend((self.items.len() as u64).to_le_bytes());
        for s in &self.items {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        }
        out.extend((self.rows.len() as u64).to_le_bytes());
        for (a, t, u, i) in &self.rows {
            out.extend(a.to_le_bytes());
            out.extend(t.to_le_bytes());
            out.extend(u.to_le_bytes());
            out.extend(i.to_le_bytes());
        }
        out
    }

    /// The inverse of [`PathEvents::to_bytes`]; malformed bytes (never produced by it) give
    /// the state read so far.
    pub fn from_bytes(bytes: &[u8]) -> PathEvents {
        let mut s = PathEvents::default();
        let mut c = Cursor { b: bytes, at: 0 };
        let Some(n_items) = c.u64() else { return s };
        // Two raw items can share a text ("/a" and "/a/" as URLs): ids are remapped, not reused.
        let mut map = Vec::new();
        for _ in 0..n_items {
            let text = c
                .u64()
                .and_then(|len| c.take(usize::try_from(len).ok()?))
                .and_then(|b| std::str::from_utf8(b).ok());
            let Some(text) = text else { return s };
            map.push(s.intern(text, false));
        }
        let Some(n_rows) = c.u64() else { return s };
        for _ in 0..n_rows {
            let (Some(a), Some(t), Some(u), Some(i)) = (c.u64(), c.u64(), c.u128(), c.u32()) else {
                return s;
            };
            let Some(&id) = map.get(i as usize) else {
                return s;
            };
            s.rows.push((a as i64, t as i64, u, id));
        }
        s
    }

    /// Every actor's events in time order (ties by event uuid): the state as the tests read it
    /// back (the engine itself runs on the interned rows, [`render_state`]).
    #[cfg(test)]
    pub fn into_persons(mut self) -> Vec<PersonEvents> {
        let items = std::mem::take(&mut self.items);
        self.sort_rows();
        let mut out: Vec<PersonEvents> = Vec::new();
        for (a, t, _, i) in self.rows {
            let item = items.get(i as usize).cloned().unwrap_or_default();
            match out.last_mut() {
                Some((actor, ts, its)) if *actor == a => {
                    ts.push(t);
                    its.push(item);
                }
                _ => out.push((a, vec![t], vec![item])),
            }
        }
        out
    }
}

/// One path over interned items: `(µs, item id)`.
type IdPath = Vec<(i64, u32)>;

/// One event of the state: (person, Unix µs, order among equal times, raw item id).
type PathRow = (i64, i64, u128, u32);

/// What every person's paths read: the cleaned item of each raw item (cleaning rules run once
/// per distinct raw item, not per event), the start/end points, and the item texts.
struct Setup {
    names: Names,
    cleaned: Vec<Option<u32>>,
    points: Points<u32>,
}

impl Setup {
    fn new(plan: &PathsPlan, state: &PathEvents) -> Setup {
        let mut names = Names::default();
        let cleaned: Vec<Option<u32>> = state
            .items
            .iter()
            .map(|raw| plan.rules.item(raw).map(|item| names.id(item)))
            .collect();
        let ellipsis = names.id(ELLIPSIS.to_string());
        let point = |p: &Option<String>| p.as_ref().map(|p| names.ids.get(p).copied());
        let points = Points {
            start: point(&plan.rules.start),
            end: point(&plan.rules.end),
            ellipsis,
        };
        Setup {
            names,
            cleaned,
            points,
        }
    }

    /// `each(person, paths)` for every person of `rows` (sorted by person), in id order: the
    /// paths are visited, not collected (a vector per person kept to the end cost more in the
    /// allocator than the paths themselves).
    fn visit(&self, plan: &PathsPlan, rows: &[PathRow], mut each: impl FnMut(i64, Vec<IdPath>)) {
        let mut events: Vec<(i64, u32)> = Vec::new();
        for run in rows.chunk_by(|x, y| x.0 == y.0) {
            let person = run[0].0;
            let (from, to) = match &plan.windows {
                Some(w) => match w.get(&person) {
                    Some(&window) => window,
                    None => continue,
                },
                None => (i64::MIN, i64::MAX),
            };
            events.clear();
            events.extend(
                run.iter()
                    .filter(|r| (from..=to).contains(&r.1))
                    .filter_map(|r| Some((r.1, self.cleaned[r.3 as usize]?))),
            );
            each(person, plan.rules.paths_of(&events, &self.points));
        }
    }
}

/// Every person's paths over interned items: `each(person, paths, item texts)` per person in id
/// order, then the item texts.
fn person_paths(
    plan: &PathsPlan,
    mut state: PathEvents,
    mut each: impl FnMut(i64, Vec<IdPath>, &[String]),
) -> Vec<String> {
    let setup = Setup::new(plan, &state);
    state.sort_rows();
    setup.visit(plan, &state.rows, |person, paths| {
        each(person, paths, &setup.names.list)
    });
    setup.names.list
}

/// Cleaned item texts, interned.
#[derive(Default)]
struct Names {
    list: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Names {
    fn id(&mut self, text: String) -> u32 {
        if let Some(&id) = self.ids.get(&text) {
            return id;
        }
        self.list.push(text.clone());
        self.ids.insert(text, (self.list.len() - 1) as u32);
        (self.list.len() - 1) as u32
    }
}

/// Edges tallied on (source step, source item, target item): paths and summed microseconds
/// (an exact sum, whatever order the persons are visited in).
type IdTally = HashMap<(usize, u32, u32), (u64, i128)>;

fn tally_paths(tally: &mut IdTally, paths: &[IdPath]) {
    for path in paths {
        for (i, w) in path.windows(2).enumerate() {
            let slot = tally.entry((i + 1, w[0].1, w[1].1)).or_insert((0, 0));
            slot.0 += 1;
            slot.1 += i128::from(w[1].0 - w[0].0);
        }
    }
}

/// Run the rules over the statement's state and select the edges: PostHog's `result`.
pub fn render_state(plan: &PathsPlan, state: PathEvents) -> Value {
    render_state_on(plan, state, 1)
}

/// [`render_state`] on up to `threads` threads (the caller blocks signals when it runs inside a
/// Postgres backend).
pub fn render_state_on(plan: &PathsPlan, state: PathEvents, threads: usize) -> Value {
    edges_json(render_rows_on(plan, state, threads))
}

/// The selected edges as typed rows, on up to `threads` threads, each visiting the persons of
/// one run of the sorted rows.
pub fn render_rows_on(plan: &PathsPlan, mut state: PathEvents, threads: usize) -> Vec<EdgeRow> {
    let setup = Setup::new(plan, &state);
    state.sort_rows();
    let mut runs = person_runs(&state.rows, threads);
    let tallies = crate::par::for_each_part(&mut runs, |rows| {
        let mut t = IdTally::new();
        setup.visit(plan, rows, |_, paths| tally_paths(&mut t, &paths));
        t
    });
    let mut tally = IdTally::new();
    for t in tallies {
        for (k, (n, us)) in t {
            let slot = tally.entry(k).or_insert((0, 0));
            slot.0 += n;
            slot.1 += us;
        }
    }
    // A node is (step, item): its key `"<step>_<item>"` is one text per node (the step's digits
    // end at the first `_`), so nodes compare as numbers and each key is written once per edge.
    let name = |id: u32| setup.names.list[id as usize].as_str();
    let node = |step: usize, id: u32| ((step as u64) << 32) | u64::from(id);
    let list = tally
        .into_iter()
        .map(|((step, s, t), (paths, us))| Edge {
            source: format!("{step}_{}", name(s)),
            target: format!("{}_{}", step + 1, name(t)),
            step: step as u64,
            from: node(step, s),
            to: node(step + 1, t),
            paths,
            ms: us as f64 / 1000.0,
        })
        .collect();
    select(&plan.rules, list)
}

/// `rows` (sorted by person) cut into up to `parts` runs of about as many rows, each person in
/// one run.
fn person_runs(rows: &[PathRow], parts: usize) -> Vec<&[PathRow]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for k in 1..parts.max(1) {
        let mut cut = (rows.len() * k / parts).max(start);
        while cut > start && cut < rows.len() && rows[cut].0 == rows[cut - 1].0 {
            cut += 1;
        }
        if cut > start && cut < rows.len() {
            runs.push(&rows[start..cut]);
            start = cut;
        }
    }
    if start < rows.len() {
        runs.push(&rows[start..]);
    }
    runs
}

/// [`render_state`] over hand-made rows (each person's events in time order).
pub fn render(plan: &PathsPlan, persons: impl IntoIterator<Item = PersonEvents>) -> Value {
    render_state(plan, PathEvents::from_persons(persons))
}

/// The node keys of a paths persons request (`"<step>_<item>"`, PostHog's `path_start_key`,
/// `path_end_key`, `path_dropoff_key`).
#[derive(Debug, Clone, Default)]
pub struct ActorKeys {
    pub start: Option<String>,
    pub end: Option<String>,
    pub dropoff: Option<String>,
}

/// Whether one (limited) path matches the keys: start and end, the edge `start → end`; end
/// only, it reaches that node; start only, it goes on from that node; dropoff, it ends there.
fn path_matches(path: &[(i64, String)], keys: &ActorKeys) -> bool {
    let nodes: Vec<String> = path
        .iter()
        .enumerate()
        .map(|(i, (_, item))| format!("{}_{item}", i + 1))
        .collect();
    let goes_on = |k: &str| nodes.iter().rev().skip(1).any(|n| n == k);
    match (&keys.start, &keys.end, &keys.dropoff) {
        (_, _, Some(d)) => nodes.last() == Some(d),
        (Some(s), Some(e), None) => nodes.windows(2).any(|w| w[0] == *s && w[1] == *e),
        (None, Some(e), None) => nodes.contains(e),
        (Some(s), None, None) => goes_on(s),
        (None, None, None) => false,
    }
}

/// The persons with a path matching `keys` ([`path_matches`]), sorted. A request without keys
/// is a 400 on `path_start_key`.
pub fn actors(plan: &PathsPlan, state: PathEvents, keys: &ActorKeys) -> Result<Vec<i64>> {
    if keys.start.is_none() && keys.end.is_none() && keys.dropoff.is_none() {
        return Err(invalid(
            "path_start_key",
            "Give path_start_key, path_end_key or path_dropoff_key.",
        ));
    }
    let mut out: Vec<i64> = Vec::new();
    person_paths(plan, state, |person, paths, names| {
        let text = |path: &IdPath| -> Vec<(i64, String)> {
            path.iter()
                .map(|&(t, id)| (t, names[id as usize].clone()))
                .collect()
        };
        if paths.iter().any(|p| path_matches(&text(p), keys)) {
            out.push(person);
        }
    });
    out.sort_unstable();
    Ok(out)
}

/// The typed rows of a rendered result: `(source, target, value, average_conversion_time)`.
pub fn rows(result: &Value) -> Vec<(String, String, i64, f64)> {
    result
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["source"].as_str().unwrap_or_default().to_string(),
                e["target"].as_str().unwrap_or_default().to_string(),
                e["value"].as_i64().unwrap_or(0),
                e["average_conversion_time"].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;
