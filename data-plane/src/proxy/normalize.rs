//! Phase 0, path normalisation: routes match, and upstreams get, one canonical path, so
//! `/public/../admin` or `/public/%2e%2e/admin` cannot pick `/public`'s policies and reach
//! another path upstream.
//!
//! Like Envoy's `normalize_path` with `path_with_escaped_slashes_action: REJECT_REQUEST`:
//! percent-escapes of unreserved characters are decoded (others keep their escape, in upper
//! case), dot segments are removed (RFC 3986 §5.2.4), and what could mean a different path to
//! an upstream (an escaped `/` or `\`, a raw `\`, a malformed escape) is refused. Repeated
//! slashes are kept. The query is not touched.

use http::Uri;
use http::uri::PathAndQuery;

use crate::http::error::ProxyError;

/// The request's URI with its path normalised, or `None` when it already is.
pub fn normalize(uri: &Uri) -> Result<Option<Uri>, ProxyError> {
    let path = uri.path();
    if !path.starts_with('/') || !needs_work(path) {
        return Ok(None);
    }
    let decoded = decode(path)?;
    let clean = remove_dot_segments(&decoded);
    if clean == path {
        return Ok(None);
    }
    let pq = match uri.query() {
        Some(q) => format!("{clean}?{q}"),
        None => clean,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(pq).map_err(|e| ProxyError::BadRequest(format!("path: {e}")))?);
    Uri::from_parts(parts)
        .map(Some)
        .map_err(|e| ProxyError::BadRequest(format!("path: {e}")))
}

/// Whether the path has an escape, a backslash or a dot segment: the common path has none.
fn needs_work(path: &str) -> bool {
    path.contains(['%', '\\']) || path.split('/').any(|s| s == "." || s == "..")
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn refused(what: &str) -> ProxyError {
    ProxyError::BadRequest(format!(
        "the request path contains {what}, which the gateway refuses because upstreams may read it as a different path"
    ))
}

/// Decodes escaped unreserved characters; upper-cases the other escapes.
fn decode(path: &str) -> Result<String, ProxyError> {
    let bytes = path.as_bytes();
    // Bytes, not chars: a path may hold raw UTF-8, copied through unchanged.
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err(refused("a backslash")),
            b'%' => {
                let value = bytes
                    .get(i + 1..i + 3)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| refused("a malformed percent-escape"))?;
                match value {
                    b'/' | b'\\' => return Err(refused("an escaped slash (%2F or %5C)")),
                    v if is_unreserved(v) => out.push(v),
                    v => out.extend_from_slice(format!("%{v:02X}").as_bytes()),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Escapes decode to ASCII only, so the raw UTF-8 around them stays valid.
    String::from_utf8(out).map_err(|_| refused("invalid UTF-8"))
}

/// RFC 3986 §5.2.4 for an absolute path: `.` segments go, `..` removes the segment before it
/// (never above the root); a trailing dot segment leaves a trailing slash.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        trailing_slash = matches!(segment, "." | "..");
        match segment {
            "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(uri: &str) -> Result<String, String> {
        let uri: Uri = uri.parse().unwrap();
        match normalize(&uri) {
            Ok(Some(u)) => Ok(u.to_string()),
            Ok(None) => Ok(uri.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn dot_segments_and_unreserved_escapes_are_resolved() {
        for (raw, want) in [
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E./admin?x=%2e%2e", "/admin?x=%2e%2e"),
            ("/a/./b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/../../x", "/x"),
            ("/..", "/"),
            ("/%61%7e%2D", "/a~-"),
            ("/a%20b%3a", "/a%20b%3A"),
            ("/a//b/", "/a//b/"),
            ("/plain/path?q=1", "/plain/path?q=1"),
            ("/.well-known/x", "/.well-known/x"),
            ("http://h.example/a/../b", "http://h.example/b"),
            ("/caf\u{e9}/../%41", "/A"),
            ("/caf\u{e9}/%41", "/caf\u{e9}/A"),
        ] {
            assert_eq!(norm(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn what_cannot_be_normalised_safely_is_refused() {
        for (raw, problem) in [
            ("/public/..%2fadmin", "escaped slash"),
            ("/public/..%2Fadmin", "escaped slash"),
            ("/a%5c..%5cb", "escaped slash"),
            ("/a%zz", "malformed"),
            ("/a%+1", "malformed"),
            ("/a%2", "malformed"),
        ] {
            let err = norm(raw).unwrap_err();
            assert!(err.contains(problem), "{raw}: {err}");
        }
    }
}
