//! Autocapture element chains: the one parser and renderer of PostHog's `elements_chain` format.
//!
//! A chain is the clicked element first, then its ancestors, joined by `;`. One element is
//! `tag.class1.class2:key="value"key2="value2"…` with the attributes sorted by key; `"` inside a
//! key or value is written `\"`, and `;` / `:` / spaces inside a quoted value do not split
//! (PostHog's `elements_to_string`, `chain_to_elements` and plugin-server's `elementsToString`).
//!
//! Ingestion renders `$elements` arrays (posthog-js's older shape) with [`render_chain`], and
//! keeps `$elements_chain` strings as given; the elements API parses chains with
//! [`parse_chain`]; element property filters escape values with [`escape_value`] so they match
//! what the renderer wrote. [`chain_hash`] is PostHog's `ElementGroup.hash`.
//!
//! One deliberate difference: PostHog's parser leaves `\"` escaped in parsed values; this one
//! unescapes it, so `render_chain(parse_chain(c)) == c` for every chain PostHog renders.

use md5::{Digest, Md5};
use regex::Regex;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// One element, shaped like PostHog's `Element` model (`ElementSerializer` fields).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    pub text: Option<String>,
    pub tag_name: Option<String>,
    pub attr_class: Option<Vec<String>>,
    pub href: Option<String>,
    pub attr_id: Option<String>,
    pub nth_child: Option<i64>,
    pub nth_of_type: Option<i64>,
    pub attributes: BTreeMap<String, String>,
    pub order: i64,
}

// PostHog's three regexes (posthog/models/element/element.py). Elements split on `;` and on
// whitespace outside quotes; the tag/class part ends at the first `:` followed by `key=`.
static SPLIT_CHAIN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?:[^\s;"]|"(?:\\.|[^"])*")+"#).unwrap());
static SPLIT_CLASS_ATTRIBUTES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(.*?)($|:([a-zA-Z\-_0-9]*=.*))").unwrap());
static PARSE_ATTRIBUTES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(.*?)="((?:[^"\\]|\\.)*)""#).unwrap());

/// A regex for the rest of one element in a chain: anything but `;`, where a quoted value
/// (which may hold `;`, `:` and `\"`) counts as one unit. Element filters use it so a `;` inside
/// a value does not end the element, as it does not for [`parse_chain`].
pub const ELEMENT_REST_RE: &str = r#"(?:[^;"]|"(?:[^"\\]|\\.)*")*"#;

/// `"` → `\"`, as PostHog escapes keys and values in a chain.
pub fn escape_value(s: &str) -> String {
    s.replace('"', "\\\"")
}

fn unescape_value(s: &str) -> String {
    s.replace("\\\"", "\"")
}

/// Parse a chain. Never fails: text that is not a chain yields whatever elements PostHog's
/// regexes find in it (possibly none); the caller keeps the original string.
pub fn parse_chain(chain: &str) -> Vec<Element> {
    SPLIT_CHAIN
        .find_iter(chain)
        .enumerate()
        .map(|(order, m)| parse_element(m.as_str(), order as i64))
        .collect()
}

fn parse_element(s: &str, order: i64) -> Element {
    let mut el = Element {
        order,
        ..Element::default()
    };
    let caps = SPLIT_CLASS_ATTRIBUTES.captures(s);
    let tag_part = caps
        .as_ref()
        .and_then(|c| c.get(1))
        .map_or("", |m| m.as_str());
    let attrs_part = caps.as_ref().and_then(|c| c.get(3)).map(|m| m.as_str());
    if !tag_part.is_empty() {
        let (tag, classes) = match tag_part.split_once('.') {
            Some((t, c)) => (t, Some(c)),
            None => (tag_part, None),
        };
        el.tag_name = Some(tag.to_string());
        el.attr_class = classes.map(|c| {
            c.split('.')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        });
    }
    for c in PARSE_ATTRIBUTES.captures_iter(attrs_part.unwrap_or("")) {
        let (key, value) = (unescape_value(&c[1]), unescape_value(&c[2]));
        match key.as_str() {
            "text" => el.text = Some(value),
            "href" => el.href = Some(value),
            "attr_id" => el.attr_id = Some(value),
            "nth-child" => el.nth_child = value.parse().ok(),
            "nth-of-type" => el.nth_of_type = value.parse().ok(),
            "" => {}
            _ => {
                el.attributes.insert(key, value);
            }
        }
    }
    el
}

/// Render elements as a chain, as PostHog's `elements_to_string`: classes sorted (quotes
/// dropped), `nth-child`/`nth-of-type` always written (0 when unknown), `text`/`href`/`attr_id`
/// when non-empty, then the raw attributes; all keys sorted.
pub fn render_chain(elements: &[Element]) -> String {
    elements
        .iter()
        .map(render_element)
        .collect::<Vec<_>>()
        .join(";")
}

fn render_element(el: &Element) -> String {
    let mut s = el.tag_name.clone().unwrap_or_default();
    let mut classes: Vec<&String> = el.attr_class.iter().flatten().collect();
    classes.sort();
    for c in classes {
        s.push('.');
        s.push_str(&c.replace('"', ""));
    }
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    let non_empty = |v: &Option<String>| v.clone().filter(|x| !x.is_empty());
    if let Some(t) = non_empty(&el.text) {
        attrs.insert("text".into(), t);
    }
    attrs.insert("nth-child".into(), el.nth_child.unwrap_or(0).to_string());
    attrs.insert(
        "nth-of-type".into(),
        el.nth_of_type.unwrap_or(0).to_string(),
    );
    if let Some(h) = non_empty(&el.href) {
        attrs.insert("href".into(), h);
    }
    if let Some(i) = non_empty(&el.attr_id) {
        attrs.insert("attr_id".into(), i);
    }
    for (k, v) in &el.attributes {
        attrs.insert(k.clone(), v.clone());
    }
    s.push(':');
    for (k, v) in attrs {
        s.push_str(&format!("{}=\"{}\"", escape_value(&k), escape_value(&v)));
    }
    s
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn int_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Elements from a `$elements` property, as PostHog's plugin-server reads them: posthog-js's
/// shape (`$el_text`, `attr__href`, `attr__id`, `attr__class`, `attr__*`) or the serialised
/// shape (`text`, `href`, `attr_id`, `attr_class`, `attributes`). Non-objects are skipped;
/// text is cut at 400 characters and href at 2048, as PostHog does.
pub fn elements_from_json(v: &Value) -> Vec<Element> {
    let Some(items) = v.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(Value::as_object)
        .enumerate()
        .map(|(order, o)| element_from_object(o, order as i64))
        .collect()
}

fn element_from_object(o: &Map<String, Value>, order: i64) -> Element {
    let cut = |s: String, n: usize| s.chars().take(n).collect::<String>();
    let mut attributes: BTreeMap<String, String> = o
        .iter()
        .filter(|(k, _)| k.starts_with("attr__"))
        .filter_map(|(k, v)| text_of(Some(v)).map(|s| (k.clone(), s)))
        .collect();
    if let Some(extra) = o.get("attributes").and_then(Value::as_object) {
        for (k, v) in extra {
            if let Some(s) = text_of(Some(v)) {
                attributes.insert(k.clone(), s);
            }
        }
    }
    let attr_class = match o.get("attr_class").or_else(|| o.get("attr__class")) {
        Some(Value::Array(a)) => Some(a.iter().filter_map(|x| text_of(Some(x))).collect()),
        Some(Value::String(s)) => Some(s.split_whitespace().map(String::from).collect()),
        _ => None,
    };
    Element {
        text: text_of(o.get("$el_text").or_else(|| o.get("text"))).map(|s| cut(s, 400)),
        tag_name: text_of(o.get("tag_name")),
        attr_class,
        href: text_of(o.get("attr__href").or_else(|| o.get("href"))).map(|s| cut(s, 2048)),
        attr_id: text_of(o.get("attr__id").or_else(|| o.get("attr_id"))),
        nth_child: int_of(o.get("nth_child")),
        nth_of_type: int_of(o.get("nth_of_type")),
        attributes,
        order,
    }
}

/// PostHog's serialised element (`ElementSerializer`): text, tag_name, attr_class, href,
/// attr_id, nth_child, nth_of_type, attributes, order.
pub fn element_json(el: &Element) -> Value {
    json!({
        "text": el.text,
        "tag_name": el.tag_name,
        "attr_class": el.attr_class,
        "href": el.href,
        "attr_id": el.attr_id,
        "nth_child": el.nth_child,
        "nth_of_type": el.nth_of_type,
        "attributes": el.attributes,
        "order": el.order,
    })
}

/// A chain's serialised elements, for the API.
pub fn chain_json(chain: &str) -> Value {
    Value::Array(parse_chain(chain).iter().map(element_json).collect())
}

/// PostHog's `ElementGroup.hash` of a chain's elements: the md5 hex digest of Python's
/// `json.dumps(elements, sort_keys=True)` over each element's model fields (`text`, `tag_name`,
/// `href`, `attr_id`, `attr_class`, `nth_child`, `nth_of_type`, `attributes`, `order`). Events
/// with the same elements share one hash and one stored chain.
pub fn chain_hash(chain: &str) -> String {
    elements_hash(&parse_chain(chain))
}

/// [`chain_hash`] of already-parsed elements.
pub fn elements_hash(elements: &[Element]) -> String {
    let mut out = String::from("[");
    for (i, el) in elements.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        python_json(&element_json(el), &mut out);
    }
    out.push(']');
    let digest = Md5::digest(out.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Python's `json.dumps(v, sort_keys=True)`: `", "` and `": "` separators, ASCII-only strings.
fn python_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_str(k, out);
                out.push_str(": ");
                python_json(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_json(x, out);
            }
            out.push(']');
        }
        Value::String(s) => python_str(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn python_str(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// elements/stats/
// ---------------------------------------------------------------------------------------------

/// The event types `elements/stats/` counts (its `include` parameter).
pub const STATS_EVENTS: [&str; 3] = ["$autocapture", "$rageclick", "$dead_click"];

/// What `elements/stats/` asks: event types, filters and the page. Dates are resolved by the
/// caller (`[from, to)`, microseconds since the Unix epoch).
pub struct StatsRequest<'a> {
    pub project_id: i64,
    pub include: Vec<String>,
    pub properties: &'a Value,
    pub filter_test_accounts: bool,
    pub from_us: i64,
    pub to_us: i64,
    pub limit: i64,
    pub offset: i64,
}

/// The statement counting events per (chain, event type), most clicked first: rows
/// `(elements_chain text, event text, count int8)`, at most `limit + 1` of them so the caller
/// knows whether a next page exists. An unknown `include` is a 400 naming `include`.
pub fn stats_sql(
    req: &StatsRequest,
    cx: &crate::compile::properties::FilterContext,
) -> crate::error::Result<(String, Vec<crate::compile::sql::Param>)> {
    use crate::compile::properties::compile_properties;
    use crate::compile::sql::{Param, SqlBuilder};
    use crate::error::QueryError;
    if let Some(bad) = req
        .include
        .iter()
        .find(|i| !STATS_EVENTS.contains(&i.as_str()))
    {
        return Err(QueryError::invalid(
            Some("include".to_string()),
            format!("Only $autocapture, $rageclick, and $dead_click are supported, not '{bad}'."),
        ));
    }
    let mut b = SqlBuilder::new();
    b.int(req.project_id); // $1, as the filter context expects
    let events = b.param(Param::TextArray(req.include.clone()));
    let from = b.param(Param::Timestamp(req.from_us));
    let to = b.param(Param::Timestamp(req.to_us));
    let mut conds =
        vec![compile_properties(req.properties, &mut b, cx).map_err(|e| e.within("properties"))?];
    if req.filter_test_accounts {
        conds.push(
            compile_properties(cx.test_account_filters, &mut b, cx)
                .map_err(|e| e.within("filter_test_accounts"))?,
        );
    }
    let extra: String = conds
        .iter()
        .filter(|c| c.as_str() != "TRUE")
        .map(|c| format!(" AND {c}"))
        .collect();
    let (limit, offset) = (b.int(req.limit + 1), b.int(req.offset));
    let sql = format!(
        "SELECT e.elements_chain, e.event, count(*)::int8 FROM insights.events e \
         WHERE e.project_id = $1::int8 AND e.event = ANY({events}) \
           AND e.\"timestamp\" >= {from} AND e.\"timestamp\" < {to} \
           AND e.elements_chain <> ''{extra} \
         GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT {limit} OFFSET {offset}"
    );
    Ok((sql, b.params))
}

/// One `elements/stats/` result: `{count, hash, type, elements}`.
pub fn stats_item(chain: &str, event: &str, count: i64) -> Value {
    let els = parse_chain(chain);
    json!({
        "count": count,
        "hash": elements_hash(&els),
        "type": event,
        "elements": els.iter().map(element_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
#[path = "elements_tests.rs"]
mod tests;
