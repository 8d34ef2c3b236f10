//! Small SQL helpers the compiled queries and the SQL files call.

use pgrx::prelude::*;
use rand::Rng;
use rand::distributions::Alphanumeric;

/// Text → float8, or NULL when the text is not a number. Property values are stored as JSON and
/// read as text; PostHog compares numerically when both sides are numbers, and a non-numeric
/// value simply does not match (it must not raise, as a `::float8` cast would).
#[pg_extern(immutable, strict, parallel_safe)]
fn to_float(value: &str) -> Option<f64> {
    parse_float(value)
}

pub fn parse_float(value: &str) -> Option<f64> {
    let v = value.trim();
    // Rust also accepts "inf"/"nan"/"infinity": those are words, not numbers, to PostHog users.
    if v.is_empty() || !v.bytes().any(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A random alphanumeric token from the OS RNG (project tokens, API keys, share tokens).
#[pg_extern(volatile, strict, parallel_safe)]
fn _random_token(len: i32) -> String {
    let len = len.clamp(1, 256) as usize;
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A URL query string (`a=1&b=x%20y`) → a JSON object of decoded values; a repeated key keeps
/// its last value, as Django's `request.GET[key]` does. nginx passes the query string through
/// unparsed, so PostHog's `limit`/`offset`/`refresh`/… never collide with PostgREST's own.
#[pg_extern(immutable, strict, parallel_safe)]
fn parse_query_string(query: &str) -> pgrx::JsonB {
    pgrx::JsonB(serde_json::Value::Object(
        query_pairs(query).into_iter().collect(),
    ))
}

/// Every value of a repeated query parameter (`?include=a&include=b` → `{a,b}`), as Django's
/// `request.GET.getlist(key)`; `parse_query_string` keeps only the last.
#[pg_extern(immutable, strict, parallel_safe)]
fn query_param_all(query: &str, key: &str) -> Vec<String> {
    query_pairs(query)
        .into_iter()
        .filter(|(k, _)| k == key)
        .filter_map(|(_, v)| v.as_str().map(String::from))
        .collect()
}

pub fn query_pairs(query: &str) -> Vec<(String, serde_json::Value)> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (url_decode(k), serde_json::Value::String(url_decode(v)))
        })
        .collect()
}

/// Percent-decoding with `+` as space (form encoding); a broken escape is kept literally. A
/// decoded NUL (`%00`) becomes U+FFFD, as invalid UTF-8 does: Postgres text and jsonb cannot hold
/// NUL, and the value must reach the endpoint's validation (a 400 naming the field), not fail
/// while the query string is read.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).replace('\0', "\u{FFFD}")
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    #[cfg(test)]
    use super::{parse_float, query_pairs, url_decode};
    use pgrx::prelude::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(url_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(url_decode("%E2%9C%93"), "✓");
        assert_eq!(url_decode("a%00b"), "a\u{FFFD}b");
        let pairs = query_pairs("?limit=5&events=%5B%7B%22id%22%3A1%7D%5D&flag&limit=7");
        assert_eq!(pairs[1].1, "[{\"id\":1}]");
        assert_eq!(pairs[2], ("flag".to_string(), serde_json::json!("")));
        assert_eq!(pairs.len(), 4);
    }

    #[test]
    fn floats_parse_only_numbers() {
        assert_eq!(parse_float(" 1.5 "), Some(1.5));
        assert_eq!(parse_float("-3"), Some(-3.0));
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(parse_float("abc"), None);
        assert_eq!(parse_float("inf"), None);
        assert_eq!(parse_float("NaN"), None);
        assert_eq!(parse_float(""), None);
    }

    #[pg_test]
    fn to_float_is_null_for_words() {
        let v = Spi::get_one::<f64>("SELECT insights.to_float('12.5')").unwrap();
        assert_eq!(v, Some(12.5));
        let n = Spi::get_one::<f64>("SELECT insights.to_float('twelve')").unwrap();
        assert_eq!(n, None);
    }

    #[pg_test]
    fn random_tokens_are_alphanumeric() {
        let t = Spi::get_one::<String>("SELECT insights._random_token(43)")
            .unwrap()
            .unwrap();
        assert_eq!(t.len(), 43);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
