//! One error type for the whole core; `python/convert.rs` maps each variant to one Python exception.
//!
//! Messages never carry credentials: the client redacts every secret it knows from bodies before
//! they land here, URLs are reduced to their path, and headers are never quoted.

use serde_json::Value;

/// How many characters of a response body an error keeps.
pub const BODY_EXCERPT_CHARS: usize = 500;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CoreError {
    /// Bad configuration or arguments (base URL, per_page, missing credentials).
    #[error("{0}")]
    Config(String),
    /// The request never got an HTTP answer: connect failure, reset, DNS, TLS, or timeout.
    #[error("{message}")]
    Transport { message: String, timeout: bool },
    /// Plane answered with a non-success status (or a success whose body is not JSON).
    #[error("{}", http_display(.status, .method, .path, .message))]
    Http {
        status: u16,
        method: String,
        path: String,
        message: String,
        body: String,
        /// Seconds the server asked to wait (429 `Retry-After`), clamped to `retry::MAX_RETRY_AFTER`.
        retry_after: Option<f64>,
        /// The `id` in a 409 body: the object that already exists.
        existing_id: Option<String>,
    },
    /// The cursor walk cannot continue (server loop, rejected cursor, non-page body).
    #[error("{0}")]
    Pagination(String),
    /// A Python-side hook (signal check, rate budget, token provider) raised; the glue keeps the
    /// original exception and re-raises it.
    #[error("{0}")]
    External(String),
}

fn http_display(status: &u16, method: &str, path: &str, message: &str) -> String {
    format!("Plane answered {status} to {method} {path}: {message}")
}

impl CoreError {
    /// Builds the error for an HTTP answer from its raw body.
    pub fn from_response(status: u16, method: &str, path: &str, body: &str) -> CoreError {
        let json: Option<Value> = serde_json::from_str(body).ok();
        let message = json
            .as_ref()
            .and_then(message_from_json)
            .unwrap_or_else(|| fallback_message(status, body));
        let existing_id = json
            .as_ref()
            .and_then(|v| v.get("id"))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|_| status == 409);
        CoreError::Http {
            status,
            method: method.to_string(),
            path: path.to_string(),
            message,
            body: excerpt(body),
            retry_after: None,
            existing_id,
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, CoreError::Transport { timeout: true, .. })
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            CoreError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Plane's error bodies come in several shapes: DRF's `detail`, the API views' `error`, the
/// throttle's `error_message`/`error_code`, and serializer field maps.
pub fn message_from_json(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => {
            for key in ["detail", "error", "message"] {
                if let Some(v) = map.get(key) {
                    if let Some(s) = flatten(v) {
                        return Some(s);
                    }
                }
            }
            if let Some(msg) = map.get("error_message").and_then(flatten) {
                return Some(match map.get("error_code").and_then(flatten) {
                    Some(code) => format!("{msg} (error_code {code})"),
                    None => msg,
                });
            }
            if let Some(code) = map.get("error_code").and_then(flatten) {
                return Some(format!("error_code {code}"));
            }
            let fields: Vec<String> = map
                .iter()
                .filter_map(|(k, v)| flatten(v).map(|m| format!("{k}: {m}")))
                .collect();
            if fields.is_empty() {
                None
            } else {
                Some(fields.join("; "))
            }
        }
        Value::Array(_) | Value::String(_) => flatten(value),
        _ => None,
    }
}

fn flatten(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(flatten).collect();
            if parts.is_empty() {
                None
            } else {
                Some(parts.join(" "))
            }
        }
        Value::Object(_) => message_from_json(value),
        _ => None,
    }
}

fn fallback_message(status: u16, body: &str) -> String {
    let reason = reason_phrase(status);
    let text = body.trim();
    if text.is_empty() {
        reason.to_string()
    } else if text.starts_with('<') {
        // An HTML page (proxy error, Django debug page): its markup helps nobody.
        format!("{reason} (HTML body)")
    } else {
        format!("{reason}: {}", excerpt_n(text, 200))
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "HTTP error",
    }
}

/// The first `BODY_EXCERPT_CHARS` characters of a body, cut on a character boundary.
pub fn excerpt(body: &str) -> String {
    excerpt_n(body, BODY_EXCERPT_CHARS)
}

fn excerpt_n(body: &str, n: usize) -> String {
    match body.char_indices().nth(n) {
        Some((idx, _)) => format!("{}…", &body[..idx]),
        None => body.to_string(),
    }
}

/// Prefixes of Plane's credentials: API keys, OAuth access/refresh/bot tokens, webhook secrets.
const CREDENTIAL_PREFIXES: [&str; 3] = ["plane_api_", "pln_", "plane_wh_"];

/// Replaces every occurrence of each secret in `text`, and anything shaped like a Plane
/// credential (a server may echo someone else's token), with `***`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        // Very short strings would blank out ordinary words; real keys and tokens are long.
        if s.len() >= 8 && out.contains(s) {
            out = out.replace(s, "***");
        }
    }
    for prefix in CREDENTIAL_PREFIXES {
        out = redact_prefixed(&out, prefix);
    }
    out
}

fn redact_prefixed(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        let tail = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(after.len());
        out.push_str(&rest[..at]);
        if tail >= 8 {
            out.push_str("***");
        } else {
            // Too short to be a credential (e.g. the word itself in a message).
            out.push_str(&rest[at..at + prefix.len() + tail]);
        }
        rest = &after[tail..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(status: u16, body: &str) -> String {
        match CoreError::from_response(status, "GET", "/api/v1/x/", body) {
            CoreError::Http { message, .. } => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_from_every_plane_shape() {
        assert_eq!(
            msg(
                401,
                r#"{"detail":"Authentication credentials were not provided."}"#
            ),
            "Authentication credentials were not provided."
        );
        assert_eq!(
            msg(404, r#"{"error":"The requested resource does not exist."}"#),
            "The requested resource does not exist."
        );
        assert_eq!(
            msg(
                429,
                r#"{"error_code": 5900, "error_message": "RATE_LIMIT_EXCEEDED"}"#
            ),
            "RATE_LIMIT_EXCEEDED (error_code 5900)"
        );
        assert_eq!(
            msg(
                400,
                r#"{"name":["This field is required."],"priority":["bad"]}"#
            ),
            "name: This field is required.; priority: bad"
        );
        assert_eq!(
            msg(502, "<html>bad gateway</html>"),
            "Bad Gateway (HTML body)"
        );
        assert_eq!(msg(500, ""), "Internal Server Error");
        assert_eq!(msg(500, "oops"), "Internal Server Error: oops");
    }

    #[test]
    fn conflict_carries_existing_id() {
        let err = CoreError::from_response(
            409,
            "POST",
            "/p/",
            r#"{"error":"Issue with the same external id and external source already exists","id":"abc"}"#,
        );
        match err {
            CoreError::Http { existing_id, .. } => assert_eq!(existing_id.as_deref(), Some("abc")),
            other => panic!("{other:?}"),
        }
        assert!(CoreError::from_response(200, "GET", "/p/", r#"{"id":"x"}"#)
            .to_string()
            .contains("200"));
    }

    #[test]
    fn excerpt_is_bounded_and_char_safe() {
        let long = "é".repeat(2000);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), BODY_EXCERPT_CHARS + 1);
        assert_eq!(excerpt("short"), "short");
    }

    #[test]
    fn redacts_secrets() {
        assert_eq!(
            redact("key plane_api_0123456789 leaked", &["plane_api_0123456789"]),
            "key *** leaked"
        );
        assert_eq!(redact("abc", &["a"]), "abc");
        assert_eq!(
            redact(
                "{\"detail\": \"pln_refresh_abcdef123456 and plane_wh_0011223344\"}",
                &[]
            ),
            "{\"detail\": \"*** and ***\"}"
        );
        assert_eq!(redact("use a pln_ token", &[]), "use a pln_ token");
    }
}
