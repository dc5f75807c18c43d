//! Joining the configured base URL with Plane's API paths.
//!
//! Users paste base URLs in every shape (`https://host`, `https://host/`, `https://host//`,
//! `https://host/plane/`, `https://host/api`, `https://host/api/v1/`); all of them must give
//! `<origin>[/sub-path]/api/v1/<path>/` with exactly one slash between the parts. The trailing
//! slash matters: Plane's routes end with `/`, and a POST without it cannot be redirected.

use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::errors::CoreError;

/// What a path segment encodes: everything but RFC 3986 `pchar` without `%` (unreserved,
/// sub-delims, `:` and `@`). `percent-encoding` ships only `CONTROLS` (too few) and
/// `NON_ALPHANUMERIC` (which would also encode `-._~`, the sub-delims, `:` and `@`), so the set is
/// that one minus `pchar`; `every_byte_of_a_segment` pins it byte by byte. Bytes >= 0x80 are
/// always encoded by the crate.
const SEGMENT_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

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
    // A `%` not followed by two hex digits is kept as a literal `%` (and encoded as `%25`).
    let decoded: Vec<u8> = percent_decode_str(raw).collect();
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
    Ok(percent_encode(&decoded, SEGMENT_ENCODE).to_string())
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
            // `?` ends the path; in a segment it can only come encoded, and stays so.
            ("a%3Fb", "a%3Fb/"),
            ("a%3fb", "a%3Fb/"),
            ("a#b", "a%23b/"),
            ("a%23b", "a%23b/"),
            ("a b", "a%20b/"),
            ("a+b", "a+b/"),
            ("%", "%25/"),
            ("%%41", "%25A/"),
            ("a%", "a%25/"),
            ("a%4", "a%254/"),
            ("a%g1", "a%25g1/"),
            ("é", "%C3%A9/"),
            ("%C3%A9", "%C3%A9/"),
            ("%c3%a9", "%C3%A9/"),
            ("日本", "%E6%97%A5%E6%9C%AC/"),
            ("😀", "%F0%9F%98%80/"),
            // A lone non-UTF-8 byte stays a byte.
            ("%FF", "%FF/"),
            ("[x]|^`{}\"<>", "%5Bx%5D%7C%5E%60%7B%7D%22%3C%3E/"),
            ("...", ".../"),
            ("%2E%2E%2E", ".../"),
        ];
        for (path, want) in cases {
            let got = build_url("https://h", path).unwrap();
            assert_eq!(got, format!("https://h/api/v1/{want}"), "path={path:?}");
        }
    }

    /// Every byte, given percent-encoded in a segment, comes out as before the codec moved to
    /// `percent-encoding`: RFC 3986 `pchar` (without `%`) literal, `/` and backslash refused, every
    /// other byte (`%`, `?`, `#`, space, controls, non-ASCII) as upper-case `%XX`.
    #[test]
    fn every_byte_of_a_segment() {
        const KEPT: &[u8] = b"-._~!$&'()*+,;=:@";
        for byte in 0..=255u8 {
            for hex in [format!("{byte:02X}"), format!("{byte:02x}")] {
                let got = build_url("https://h", &format!("a%{hex}b"));
                if byte == b'/' || byte == b'\\' {
                    assert!(got.is_err(), "byte {byte:#04x}: {got:?}");
                    continue;
                }
                let want = if byte.is_ascii_alphanumeric() || KEPT.contains(&byte) {
                    format!("a{}b", byte as char)
                } else {
                    format!("a%{byte:02X}b")
                };
                assert_eq!(
                    got.unwrap(),
                    format!("https://h/api/v1/{want}/"),
                    "byte {byte:#04x}"
                );
            }
        }
    }

    /// The query string is opaque here (cursors are forwarded as the server sent them); only a
    /// `#` is refused. `params=` values are encoded by the HTTP client, not by this module.
    #[test]
    fn query_strings_are_kept_as_given() {
        for query in [
            "cursor=50:1:0",
            "cursor=a/b?c",
            "cursor=a%2Fb%3F%25",
            "q=a b&é=日本",
            "x=%zz&y=%",
        ] {
            assert_eq!(
                build_url("https://h", &format!("ws/p?{query}")).unwrap(),
                format!("https://h/api/v1/ws/p/?{query}")
            );
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
