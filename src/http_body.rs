//! Decoding HTTP request bodies the way PostHog clients send them.
//!
//! nginx hands every request's raw body to PostgREST as bytes (PostgREST never parses it), so
//! each encoding clients use is handled here:
//! - capture: plain JSON, gzip (`Content-Encoding: gzip` or `?compression=gzip-js`), the form body
//!   `data=<json or base64>` of older posthog-js, and base64 JSON;
//! - the REST API: a JSON object, or a form body (`events=[…]&date_from=-7d`, which PostHog's
//!   own curl examples send), or nothing.

use crate::errors::raise;
use base64::Engine;
use pg_insights_core::SqlState;
use pgrx::prelude::*;
use std::io::Read;

/// Largest decompressed body accepted: protects the backend from gzip bombs.
const MAX_BODY: u64 = 20 * 1024 * 1024;

#[derive(Debug, PartialEq)]
pub enum DecodeError {
    Empty,
    BadGzip,
    TooLarge,
    NotJson(String),
}

impl DecodeError {
    pub fn message(&self) -> String {
        match self {
            DecodeError::Empty => "Malformed request data: the body is empty".into(),
            DecodeError::BadGzip => "Malformed request data: invalid gzip data".into(),
            DecodeError::TooLarge => "Malformed request data: the body is larger than 20 MB".into(),
            DecodeError::NotJson(e) => format!("Malformed request data: {e}"),
        }
    }
}

/// Body bytes → JSON value. Pure, so it is unit-tested without Postgres.
pub fn decode_body(body: &[u8]) -> Result<serde_json::Value, DecodeError> {
    let raw = if body.starts_with(&[0x1f, 0x8b]) {
        gunzip(body)?
    } else {
        body.to_vec()
    };
    let text = String::from_utf8_lossy(&raw);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DecodeError::Empty);
    }
    let payload = match trimmed.strip_prefix("data=") {
        Some(form) => form_value(form),
        None => trimmed.to_string(),
    };
    parse_json_or_base64(&payload)
}

fn gunzip(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(MAX_BODY + 1)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::BadGzip)?;
    if out.len() as u64 > MAX_BODY {
        return Err(DecodeError::TooLarge);
    }
    Ok(out)
}

/// The `data` field of an `application/x-www-form-urlencoded` body (other fields are ignored).
fn form_value(form: &str) -> String {
    crate::util::url_decode(form.split('&').next().unwrap_or_default())
}

fn parse_json_or_base64(payload: &str) -> Result<serde_json::Value, DecodeError> {
    if payload.starts_with('{') || payload.starts_with('[') {
        return serde_json::from_str(payload).map_err(|e| DecodeError::NotJson(e.to_string()));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(payload.trim()))
        .map_err(|_| DecodeError::NotJson("the body is neither JSON nor base64 JSON".into()))?;
    serde_json::from_slice(&decoded).map_err(|e| DecodeError::NotJson(e.to_string()))
}

/// SQL: `insights.decode_capture_body(bytea) → jsonb`; raises 22P02 on an undecodable body.
#[pg_extern(immutable, strict, parallel_safe)]
fn decode_capture_body(body: &[u8]) -> pgrx::JsonB {
    match decode_body(body) {
        Ok(v) => pgrx::JsonB(v),
        Err(e) => raise(
            SqlState::InvalidText,
            &e.message(),
            Some("data"),
            Some(
                "Send a JSON object with api_key and batch (or event), optionally gzip-compressed.",
            ),
        ),
    }
}

/// SQL: `insights.decode_api_body(bytea) → jsonb`: `{}` for an empty body, the object for a JSON
/// object body, or the fields of a form body as strings. Raises 22P02 for anything else.
#[pg_extern(immutable, strict, parallel_safe)]
fn decode_api_body(body: &[u8]) -> pgrx::JsonB {
    match api_body(body) {
        Ok(v) => pgrx::JsonB(v),
        Err(msg) => raise(
            SqlState::InvalidText,
            &msg,
            None,
            Some("Send a JSON object."),
        ),
    }
}

pub fn api_body(body: &[u8]) -> Result<serde_json::Value, String> {
    let text = std::str::from_utf8(body)
        .map_err(|_| "JSON parse error - the body is not UTF-8".to_string())?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(serde_json::json!({}));
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') || trimmed.starts_with('"') {
        return match serde_json::from_str::<serde_json::Value>(trimmed) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(v),
            Ok(_) => Err("JSON parse error - the body must be a JSON object".into()),
            Err(e) => Err(format!("JSON parse error - {e}")),
        };
    }
    let pairs = crate::util::query_pairs(trimmed);
    if pairs.is_empty() || pairs.iter().any(|(k, _)| k.is_empty()) {
        return Err("JSON parse error - expected a JSON object or form fields".into());
    }
    Ok(serde_json::Value::Object(pairs.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn plain_json() {
        let v = decode_body(br#"{"api_key":"phc_x","batch":[]}"#).unwrap();
        assert_eq!(v["api_key"], "phc_x");
    }

    #[test]
    fn gzip_json() {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(br#"[{"event":"a"}]"#).unwrap();
        let v = decode_body(&enc.finish().unwrap()).unwrap();
        assert_eq!(v[0]["event"], "a");
    }

    #[test]
    fn form_base64_and_urlencoded() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(r#"{"event":"b"}"#);
        let v = decode_body(format!("data={}", b64.replace('=', "%3D")).as_bytes()).unwrap();
        assert_eq!(v["event"], "b");
        let v = decode_body(b"data=%7B%22event%22%3A%22c%22%7D").unwrap();
        assert_eq!(v["event"], "c");
    }

    #[test]
    fn api_bodies() {
        assert_eq!(api_body(b"").unwrap(), serde_json::json!({}));
        assert_eq!(api_body(br#"{"a":1}"#).unwrap()["a"], 1);
        let v = api_body(br#"events=[{"id":"$pageview"}]&date_from=-7d"#).unwrap();
        assert_eq!(v["events"], r#"[{"id":"$pageview"}]"#);
        assert_eq!(v["date_from"], "-7d");
        assert!(api_body(b"[1,2]").is_err());
        assert!(api_body(b"{bad").is_err());
        assert!(api_body(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(decode_body(b"   "), Err(DecodeError::Empty));
        assert!(matches!(
            decode_body(b"{not json"),
            Err(DecodeError::NotJson(_))
        ));
        assert_eq!(
            decode_body(&[0x1f, 0x8b, 0, 1, 2]),
            Err(DecodeError::BadGzip)
        );
        assert!(matches!(
            decode_body(b"data=%zz"),
            Err(DecodeError::NotJson(_))
        ));
        assert!(decode_body(b"%").is_err());
    }
}
