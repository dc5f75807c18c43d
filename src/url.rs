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
pub fn build_url(base_url: &str, path: &str) -> Result<String, CoreError> {
    let root = root_url(base_url)?;
    let (path, query) = split_query(path);
    let mut segments = segments(path);
    // A path pasted with its own `/api/v1/` prefix must not double it.
    if segments.len() >= 2 && segments[0] == "api" && segments[1] == "v1" {
        segments.drain(..2);
    }
    Ok(assemble(&root, Some(API_PREFIX), &segments, query))
}

/// `base_url` root (without `/api/v1`) + `path`, for routes outside the API such as
/// `/auth/o/token/`.
pub fn build_root_url(base_url: &str, path: &str) -> Result<String, CoreError> {
    let root = root_url(base_url)?;
    let (path, query) = split_query(path);
    Ok(assemble(&root, None, &segments(path), query))
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
    let mut segs = segments(parsed.path());
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

fn split_query(path: &str) -> (&str, Option<&str>) {
    let path = path.split('#').next().unwrap_or("");
    match path.split_once('?') {
        Some((p, q)) => (p, if q.is_empty() { None } else { Some(q) }),
        None => (path, None),
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn assemble(root: &str, prefix: Option<&str>, segments: &[&str], query: Option<&str>) -> String {
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
