//! `GET /insights/trend/?format=csv` (docs/trends.md#csv-export): the rendered trends `result` as
//! PostHog's CSV.
//!
//! PostHog builds one dict per result item, `{"series": action.custom_name or label,
//! <labels[i]>: data[i], …}`, and renders the list with rest_framework_csv: the header is the
//! first item's keys, every row takes the header's keys (a key missing from an item is an empty
//! cell, keys beyond the header are dropped), Python's `csv` module in the `excel` dialect writes
//! it (`,`, minimal quoting with `"` doubled, `\r\n` line ends). Numbers are written as Python's
//! `str` would, except that integral floats come out as integers (the JSON result does not keep
//! the difference). PostHog fails on an empty result and on formula items (no `action`); here
//! an empty result is the bare header `series` and a formula item uses its label.

use serde_json::Value;

/// One CSV field, quoted when it holds a comma, quote or line break (QUOTE_MINIMAL).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A JSON value as the cell text Python's csv writer would produce for it.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

/// The CSV text of a rendered trends `result` list.
pub fn trends_csv(result: &Value) -> String {
    let items = result.as_array().map(Vec::as_slice).unwrap_or_default();
    // Each item as an ordered list of (key, value) pairs; later duplicates of a key win, as in a
    // Python dict (the key keeps its first position).
    let rows: Vec<Vec<(String, String)>> = items
        .iter()
        .map(|item| {
            let series = item
                .get("action")
                .and_then(|a| a.get("custom_name"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .or_else(|| item.get("label").map(cell))
                .unwrap_or_default();
            let mut row: Vec<(String, String)> = vec![("series".into(), series)];
            let labels = item.get("labels").and_then(Value::as_array);
            let data = item.get("data").and_then(Value::as_array);
            if let (Some(labels), Some(data)) = (labels, data) {
                for (i, d) in data.iter().enumerate() {
                    let Some(label) = labels.get(i) else { break };
                    let key = cell(label);
                    match row.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = cell(d),
                        None => row.push((key, cell(d))),
                    }
                }
            }
            row
        })
        .collect();
    let header: Vec<String> = match rows.first() {
        Some(r) => r.iter().map(|(k, _)| k.clone()).collect(),
        None => vec!["series".into()],
    };
    let mut out = String::new();
    let line = |cells: Vec<String>| {
        let mut l = cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",");
        l.push_str("\r\n");
        l
    };
    out.push_str(&line(header.clone()));
    for r in &rows {
        let cells = header
            .iter()
            .map(|h| {
                r.iter()
                    .find(|(k, _)| k == h)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect();
        out.push_str(&line(cells));
    }
    out
}

/// Django's `slugify`: ASCII letters, digits, `_`, `-` and spaces kept (others dropped),
/// lowercased, runs of spaces and dashes become one dash, leading/trailing dashes and
/// underscores stripped.
pub fn slugify(s: &str) -> String {
    let kept: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
        .collect::<String>()
        .to_lowercase();
    let mut out = String::new();
    let mut dash = false;
    for c in kept.trim().chars() {
        if c == ' ' || c == '-' {
            dash = true;
        } else {
            if dash {
                out.push('-');
                dash = false;
            }
            out.push(c);
        }
    }
    if dash {
        out.push('-');
    }
    out.trim_matches(|c| c == '-' || c == '_').to_string()
}

/// PostHog's `Content-Disposition` file name: `<slug> (<from> - <to>) from PostHog.csv`, with
/// `up until <to>` when the range has no start (`date_from=all`). Dates are `YYYY-MM-DD`.
pub fn trends_csv_filename(export_name: Option<&str>, from: Option<&str>, to: &str) -> String {
    let name = slugify(export_name.unwrap_or("export"));
    let from = match from {
        Some(f) => format!("{f} -"),
        None => "up until".to_string(),
    };
    format!("{name} ({from} {to}) from PostHog.csv")
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
