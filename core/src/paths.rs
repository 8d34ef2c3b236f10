//! Paths: the most common sequences of pages, screens or events, as weighted edges
//! `{source: "1_/", target: "2_/pricing", value, average_conversion_time}`. Rules:
//! `docs/insights.md#paths`.
//!
//! # Split of the work
//! One SQL statement reads the matching events and hands each person's events over in time
//! order as two arrays, `(timestamps µs, raw items)`; the raw item is the `$current_url` of a
//! pageview (one trailing `/` removed), the `$screen_name` of a screen, or the event name.
//! Everything after that is per person and sequential, so it is pure Rust here ([`PathRules`]):
//! cleaning rules (regex replacements), groupings, exclusions, 30-minute sessions, collapsing
//! repeats, start/end points and the step limit, then the edges of every path ([`Edges`]) and
//! PostHog's edge selection ([`select_edges`]). Regexes use the `regex` crate, whose syntax is
//! RE2's, as ClickHouse's `replaceRegexpAll` is.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::{Value, json};

use crate::dates::{self, Interval};
use crate::error::{QueryError, Result};
use crate::funnels::{Lookups, Project};
use crate::properties;
use crate::query::{InsightKind, InsightQuery, PathsOptions};
use crate::series;
use crate::sql::{Param, SqlBuilder};

/// A new path starts after a gap of at least this long (PostHog: 30 minutes).
pub const SESSION_GAP_US: i64 = 30 * 60 * 1_000_000;

/// The item standing for the middle of a path cut between a start and an end point.
const ELLIPSIS: &str = "...";

#[derive(Debug, Clone)]
pub struct PathsPlan {
    /// Rows `(timestamps int8[], items text[])`, one per person, each in time order.
    pub sql: String,
    pub params: Vec<Param>,
    pub rules: PathRules,
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
        let mut out = Vec::new();
        let mut session: Vec<(i64, String)> = Vec::new();
        let mut last_ts: Option<i64> = None;
        for (ts, item) in events {
            if last_ts.is_some_and(|prev| ts - prev >= SESSION_GAP_US) {
                out.extend(self.cut(std::mem::take(&mut session)));
            }
            last_ts = Some(*ts);
            match session.last_mut() {
                Some(prev) if prev.1 == *item => prev.0 = *ts,
                _ => session.push((*ts, item.clone())),
            }
        }
        out.extend(self.cut(session));
        out
    }

    /// Start/end points and the step limit on one session; `None` drops it.
    fn cut(&self, path: Vec<(i64, String)>) -> Option<Vec<(i64, String)>> {
        let limit = self.step_limit;
        let find = |p: &str, from: usize| {
            path[from..]
                .iter()
                .position(|(_, i)| i == p)
                .map(|k| k + from)
        };
        let path = match (&self.start, &self.end) {
            (None, None) => path.into_iter().take(limit).collect(),
            (Some(s), None) => path[find(s, 0)?..].iter().take(limit).cloned().collect(),
            (None, Some(e)) => {
                let j = find(e, 0)?;
                path[j.saturating_sub(limit - 1)..=j].to_vec()
            }
            (Some(s), Some(e)) => {
                let i = find(s, 0)?;
                let j = find(e, i + 1)?;
                let part = &path[i..=j];
                if part.len() <= limit {
                    part.to_vec()
                } else {
                    let half = limit / 2;
                    let mut cut = part[..half].to_vec();
                    cut.push((part[half].0, ELLIPSIS.to_string()));
                    cut.extend_from_slice(&part[part.len() - half..]);
                    cut
                }
            }
        };
        (!path.is_empty()).then_some(path)
    }
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
    let mut list: Vec<(String, String, u64, f64)> = edges
        .tally
        .into_iter()
        .filter(|(_, (n, _))| rules.min_weight.is_none_or(|m| *n >= m))
        .filter(|(_, (n, _))| rules.max_weight.is_none_or(|m| *n <= m))
        .map(|((s, t), (n, ms))| (s, t, n, ms / n as f64))
        .collect();
    list.sort_by(|a, b| {
        b.2.cmp(&a.2)
            .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
            .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
    });
    if let Some(limit) = rules.edge_limit {
        list.truncate(limit);
    }
    if rules.min_weight.is_none() && rules.max_weight.is_none() {
        let mut reached: HashSet<String> = HashSet::new();
        let mut kept = vec![false; list.len()];
        // Targets only reach further edges of later steps, so one pass in step order suffices.
        let mut order: Vec<usize> = (0..list.len()).collect();
        order.sort_by_key(|&i| step_of(&list[i].0));
        for i in order {
            let (s, t, ..) = &list[i];
            if step_of(s) == 1 || reached.contains(s) {
                kept[i] = true;
                reached.insert(t.clone());
            }
        }
        list = list
            .into_iter()
            .zip(kept)
            .filter(|(_, k)| *k)
            .map(|(e, _)| e)
            .collect();
    }
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

/// Plan a paths query. `team_cleaning` is the project's `path_cleaning_filters`.
pub fn plan(
    q: &InsightQuery,
    project: &Project,
    team_cleaning: &Value,
    lookups: &Lookups,
    now: DateTime<Utc>,
    earliest: Option<DateTime<Utc>>,
) -> Result<PathsPlan> {
    if q.kind != InsightKind::Paths {
        return Err(invalid(
            "insight",
            format!("Expected a paths query, got {}.", q.kind.legacy_name()),
        ));
    }
    let p = &q.paths;
    if p.funnel_paths.is_some() {
        return Err(invalid(
            "funnel_paths",
            "Funnel paths are not supported yet by this server.",
        ));
    }
    let rules = PathRules::new(p, team_cleaning)?;
    let range = dates::resolve_range(
        q.date_from.as_deref(),
        q.date_to.as_deref(),
        Interval::Day,
        q.explicit_date,
        now,
        &project.pt,
        earliest,
    )?;
    let (sql, params) = series::with_filter_context(project, lookups, |cx| {
        let mut b = SqlBuilder::new();
        let pid = b.int(project.id);
        let mut w = vec![
            format!("e.project_id = {pid}"),
            format!(
                "e.\"timestamp\" >= {}",
                b.param(Param::timestamp(range.from))
            ),
            format!("e.\"timestamp\" <= {}", b.param(Param::timestamp(range.to))),
        ];
        let (item, types) = item_sql(p, &mut b, cx)?;
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
        w.retain(|c| c != "TRUE");
        let sql = format!(
            "SELECT array_agg((extract(epoch FROM e.\"timestamp\") * 1000000)::int8 \
                              ORDER BY e.\"timestamp\", e.uuid) AS ts, \
                    array_agg(coalesce({item}, '') ORDER BY e.\"timestamp\", e.uuid) AS items \
               FROM insights.events e WHERE {} GROUP BY e.person_id",
            w.join(" AND ")
        );
        Ok::<_, QueryError>(b.finish(&sql))
    })?;
    Ok(PathsPlan { sql, params, rules })
}

const PAGEVIEW_ITEM: &str = "regexp_replace(e.properties ->> '$current_url', '(.)/$', '\\1')";
const SCREEN_ITEM: &str = "(e.properties ->> '$screen_name')";

/// The raw item expression and the event-type conditions (`include_event_types`).
fn item_sql(
    p: &PathsOptions,
    b: &mut SqlBuilder,
    cx: &properties::FilterContext,
) -> Result<(String, Vec<String>)> {
    let types = &p.include_event_types;
    if types.iter().any(|t| t == "hogql") {
        let src = p.hogql_expression.as_deref().ok_or_else(|| {
            invalid(
                "paths_hogql_expression",
                "The hogql event type needs paths_hogql_expression.",
            )
        })?;
        let item = crate::hogql::compile_text(src, "paths_hogql_expression", b, cx)?;
        return Ok((item, Vec::new()));
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
    let mut arms = Vec::new();
    if use_url {
        arms.push(format!("WHEN e.event = '$pageview' THEN {PAGEVIEW_ITEM}"));
    }
    if use_screen {
        arms.push(format!("WHEN e.event = '$screen' THEN {SCREEN_ITEM}"));
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
    Ok((item, conds))
}

/// Run the rules over the statement's rows (`(timestamps, raw items)` per person) and select
/// the edges: PostHog's `result`.
pub fn render(
    plan: &PathsPlan,
    persons: impl IntoIterator<Item = (Vec<i64>, Vec<String>)>,
) -> Value {
    let mut cache: HashMap<String, Option<String>> = HashMap::new();
    let mut edges = Edges::default();
    for (ts, items) in persons {
        let events: Vec<(i64, String)> = ts
            .into_iter()
            .zip(items)
            .filter_map(|(t, raw)| {
                let item = cache
                    .entry(raw)
                    .or_insert_with_key(|raw| plan.rules.item(raw))
                    .clone()?;
                Some((t, item))
            })
            .collect();
        for path in plan.rules.paths(&events) {
            edges.add_path(&path);
        }
    }
    select_edges(&plan.rules, edges)
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
