//! Joining the configured base URL with Plane's API paths.
//!
//! Users paste base URLs in every shape (`https://host`, `https://host/`, `https://host//`,
//! `https://host/plane/`, `https://host/api`, `https://host/api/v1/`); all of them must give
//! `<origin>[/sub-path]/api/v1/<path>/` with exactly one slash between the parts. The trailing
//! slash matters: Plane's routes end with `/`, and a POST without it cannot be redirected.

use crate::errors::CoreError;

/// The API prefix every public Plane route lives under.
const API_PREFIX: &str = "api/v1";

/// `base_url` + `/api/v1/` + `path` (with a trailing slash on the path, query string kept).
///
/// Each path segment is percent-decoded and re-encoded (so an already-encoded segment is not
/// encoded twice), and a segment that could move the request to another route is refused:
/// `.` and `..` (also encoded, `%2e%2e`), and encoded slashes or backslashes (`%2f`, `%5c`) or raw
/// backslashes, which some servers and proxies decode into a separator. Ids from Odoo records or
/// from a server's answer go into paths; without this, `../../other/` would reach any route the
/// key may call.
pub fn build_url(base_url: &str, path: &str) -> Result<String, CoreError> {
    let root = root_url(base_url)?;
    let (path, query) = split_query(path)?;
    let mut segments = segments(path)?;
    // A path pasted with its own `/api/v1/` prefix must not double it.
    if segments.len() >= 2 && segments[0] == "api" && segments[1] == "v1" {
        segments.drain(..2);
    }
    Ok(assemble(&root, Some(API_PREFIX), &segments, query))
}

/// `base_url` root (without `/api/v1`) + `path`, for routes outside the API such as
/// `/auth/o/token/`. Segments are checked and encoded as in `build_url`.
pub fn build_root_url(base_url: &str, path: &str) -> Result<String, CoreError> {
    let root = root_url(base_url)?;
    let (path, query) = split_query(path)?;
    Ok(assemble(&root, None, &segments(path)?, query))
}

/// The validated base URL reduced to `scheme://host[:port][/sub-path]`, without a trailing
/// slash and without a pasted `/api` or `/api/v1` suffix.
pub fn root_url(base_url: &str) -> Result<String, CoreError> {
    let trimmed = base_url.trim();
    if trimmed.is_empty() {
        return Err(CoreError::Config(
            "base URL is empty: expected e.g. https://api.plane.so".into(),
        ));
    }
    let parsed = url::Url::parse(trimmed).map_err(|err| {
        CoreError::Config(format!(
            "base URL {:?} is not an absolute http(s) URL ({err}): expected e.g. \
             https://api.plane.so or https://plane.example.com",
            redact_userinfo(trimmed)
        ))
    })?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(CoreError::Config(format!(
                "base URL scheme {other:?} is not supported: use http or https"
            )))
        }
    }
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err(CoreError::Config(format!(
            "base URL {:?} has no host",
            redact_userinfo(trimmed)
        )));
    };
    // Credentials in the URL would end up in logs and reprs; they belong in a secret reference.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(CoreError::Config(
            "base URL must not contain credentials (user:password@): configure the API key \
             through a secret reference instead"
                .into(),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(CoreError::Config(format!(
            "base URL {:?} must not contain a query string or fragment",
            redact_userinfo(trimmed)
        )));
    }
    let mut out = format!("{}://{}", parsed.scheme(), host_for_url(host));
    if let Some(port) = parsed.port() {
        out.push_str(&format!(":{port}"));
    }
    // The URL parser has already resolved dot segments and encoded the base's path.
    let mut segs: Vec<&str> = parsed.path().split('/').filter(|s| !s.is_empty()).collect();
    if segs.last() == Some(&"v1") && segs.len() >= 2 && segs[segs.len() - 2] == "api" {
        segs.truncate(segs.len() - 2);
    } else if segs.last() == Some(&"api") {
        segs.pop();
    }
    for s in segs {
        out.push('/');
        out.push_str(s);
    }
    Ok(out)
}

fn host_for_url(host: &str) -> String {
    // `host_str` gives IPv6 addresses with their brackets already; keep them as they are.
    host.to_string()
}

/// The path and its query string. The query is kept as given (the client adds `params=` encoded
/// after it), but a `#` in it would cut it short as a fragment, so it is refused.
fn split_query(path: &str) -> Result<(&str, Option<&str>), CoreError> {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    if query.is_some_and(|q| q.contains('#')) {
        return Err(CoreError::Config(
            "the query string of a path must not contain '#' (it would end the URL there): pass \
             such values through params=, which encodes them"
                .into(),
        ));
    }
    Ok((path, query.filter(|q| !q.is_empty())))
}

/// The non-empty segments of `path`, each checked and percent-encoded.
fn segments(path: &str) -> Result<Vec<String>, CoreError> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(encode_segment)
        .collect()
}

/// Decodes `raw` and encodes it again as one path segment; refuses what could change the route.
fn encode_segment(raw: &str) -> Result<String, CoreError> {
    let refuse = |why: &str| {
        CoreError::Config(format!(
            "path segment {:?} is not allowed: {why}",
            excerpt_segment(raw)
        ))
    };
    if raw.contains('\\') {
        return Err(refuse(
            "a backslash is read as a path separator by some servers",
        ));
    }
    let decoded = percent_decode(raw);
    if decoded == b"." || decoded == b".." {
        return Err(refuse(
            "'.' and '..' segments would move the request to another route",
        ));
    }
    if decoded.contains(&b'/') || decoded.contains(&b'\\') {
        return Err(refuse(
            "an encoded slash or backslash would split it into two segments on some servers",
        ));
    }
    let mut out = String::with_capacity(decoded.len());
    for byte in decoded {
        if is_segment_char(byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(out)
}

/// RFC 3986 `pchar` without `%`: unreserved, sub-delims, `:` and `@` stay as they are.
fn is_segment_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte)
}

/// `%XX` sequences decoded; a `%` not followed by two hex digits is kept as a literal `%`.
fn percent_decode(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// A refused segment as shown in an error: it is not a secret, but it is cut to a readable length.
fn excerpt_segment(raw: &str) -> String {
    match raw.char_indices().nth(80) {
        Some((idx, _)) => format!("{}…", &raw[..idx]),
        None => raw.to_string(),
    }
}

fn assemble(root: &str, prefix: Option<&str>, segments: &[String], query: Option<&str>) -> String {
    let mut out = String::with_capacity(root.len() + 64);
    out.push_str(root);
    out.push('/');
    if let Some(prefix) = prefix {
        out.push_str(prefix);
        out.push('/');
    }
    for s in segments {
        out.push_str(s);
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Hide `user:password@` in a URL echoed back in an error message.
fn redact_userinfo(raw: &str) -> String {
    if let Some((scheme, rest)) = raw.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    raw.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_as_a_table() {
        let cases: &[(&str, &str, &str)] = &[
            ("https://api.plane.so", "users/me", "https://api.plane.so/api/v1/users/me/"),
            ("https://api.plane.so/", "users/me/", "https://api.plane.so/api/v1/users/me/"),
            ("https://api.plane.so//", "/users/me", "https://api.plane.so/api/v1/users/me/"),
            ("https://api.plane.so///", "//users//me//", "https://api.plane.so/api/v1/users/me/"),
            ("https://api.plane.so/api", "users/me/", "https://api.plane.so/api/v1/users/me/"),
            ("https://api.plane.so/api/", "users/me/", "https://api.plane.so/api/v1/users/me/"),
            ("https://api.plane.so/api/v1", "users/me/", "https://api.plane.so/api/v1/users/me/"),
            ("https://api.plane.so/api/v1/", "/users/me", "https://api.plane.so/api/v1/users/me/"),
            ("https://host/plane/", "users/me", "https://host/plane/api/v1/users/me/"),
            ("https://host/plane", "users/me", "https://host/plane/api/v1/users/me/"),
            ("https://host/plane/api/v1//", "users/me", "https://host/plane/api/v1/users/me/"),
            ("http://127.0.0.1:8000", "users/me", "http://127.0.0.1:8000/api/v1/users/me/"),
            ("http://[::1]:8000/", "users/me", "http://[::1]:8000/api/v1/users/me/"),
            ("  https://api.plane.so  ", "users/me", "https://api.plane.so/api/v1/users/me/"),
            ("HTTPS://API.PLANE.SO", "users/me", "https://api.plane.so/api/v1/users/me/"),
            ("https://api.plane.so", "", "https://api.plane.so/api/v1/"),
            ("https://api.plane.so", "/", "https://api.plane.so/api/v1/"),
            (
                "https://api.plane.so",
                "/api/v1/users/me/",
                "https://api.plane.so/api/v1/users/me/",
            ),
            (
                "https://api.plane.so",
                "workspaces/ws/projects/p/work-items?per_page=50&cursor=50:1:0",
                "https://api.plane.so/api/v1/workspaces/ws/projects/p/work-items/?per_page=50&cursor=50:1:0",
            ),
            (
                "https://api.plane.so/",
                "/workspaces/ws/members/?fields=id,email",
                "https://api.plane.so/api/v1/workspaces/ws/members/?fields=id,email",
            ),
            ("https://api.plane.so", "users/me?", "https://api.plane.so/api/v1/users/me/"),
        ];
        for (base, path, want) in cases {
            assert_eq!(
                &build_url(base, path).unwrap(),
                want,
                "base={base:?} path={path:?}"
            );
        }
    }

    #[test]
    fn segments_are_encoded_once() {
        let cases: &[(&str, &str)] = &[
            ("work items/é", "work%20items/%C3%A9/"),
            ("a%20b", "a%20b/"),
            ("a%2520b", "a%2520b/"),
            ("100%", "100%25/"),
            ("%zz/%4", "%25zz/%254/"),
            ("a:b@c/x~y_z.-", "a:b@c/x~y_z.-/"),
            ("INV#42/x", "INV%2342/x/"),
            ("a%41b", "aAb/"),
            ("..a/a../...", "..a/a../.../"),
            ("ws/p?q=a%20b&c=..", "ws/p/?q=a%20b&c=.."),
        ];
        for (path, want) in cases {
            let got = build_url("https://h", path).unwrap();
            assert_eq!(got, format!("https://h/api/v1/{want}"), "path={path:?}");
        }
    }

    #[test]
    fn segments_that_move_the_route_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("workspaces/ws/projects/../../other/", "\"..\""),
            ("workspaces/ws/projects/./x", "\".\""),
            ("workspaces/%2e%2e/x", "\"%2e%2e\""),
            ("workspaces/.%2E/x", "\".%2E\""),
            ("workspaces/%2E./x", "\"%2E.\""),
            ("workspaces/%2e/x", "\"%2e\""),
            ("workspaces/a%2fb/x", "\"a%2fb\""),
            ("workspaces/%2F/x", "\"%2F\""),
            ("workspaces/a%5cb/x", "\"a%5cb\""),
            ("workspaces/a\\b/x", "\"a\\\\b\""),
            ("..", "\"..\""),
            ("../auth/o/token?secret=1", "\"..\""),
        ];
        for (path, named) in cases {
            for result in [
                build_url("https://h", path),
                build_root_url("https://h", path),
            ] {
                let err = result.unwrap_err();
                let msg = err.to_string();
                assert!(matches!(err, CoreError::Config(_)), "{path:?}: {err:?}");
                assert!(msg.contains(named), "{path:?}: {msg}");
                assert!(!msg.contains("secret"), "{path:?}: {msg}");
            }
        }
    }

    #[test]
    fn a_query_cannot_carry_a_fragment() {
        let err = build_url("https://h", "users/me?x=1#frag").unwrap_err();
        assert!(matches!(err, CoreError::Config(_)));
        assert!(!err.to_string().contains("frag"), "{err}");
        // In a segment `#` is data, and encoded.
        assert_eq!(
            build_url("https://h", "a#b?x=1").unwrap(),
            "https://h/api/v1/a%23b/?x=1"
        );
    }

    #[test]
    fn root_urls() {
        assert_eq!(
            build_root_url("https://api.plane.so/api/v1/", "/auth/o/token").unwrap(),
            "https://api.plane.so/auth/o/token/"
        );
        assert_eq!(
            build_root_url("https://host/plane", "auth/o/token/").unwrap(),
            "https://host/plane/auth/o/token/"
        );
    }

    #[test]
    fn rejects_bad_base_urls() {
        for bad in [
            "",
            "   ",
            "api.plane.so",
            "/api/v1",
            "ftp://api.plane.so",
            "file:///etc/passwd",
            "https://",
            "mailto:someone@example.com",
            "https://host/?x=1",
            "https://host/#frag",
        ] {
            let err = build_url(bad, "users/me").unwrap_err();
            assert!(matches!(err, CoreError::Config(_)), "{bad:?} gave {err:?}");
        }
    }

    #[test]
    fn credentials_in_base_url_are_rejected_and_not_echoed() {
        let err = build_url("https://bob:s3cret@host/", "users/me").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CoreError::Config(_)));
        assert!(!msg.contains("s3cret"), "{msg}");
        let err = build_url("bob:s3cret@host", "users/me").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
