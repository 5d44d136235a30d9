//! Reading a client credential (a JWT, an API key, basic credentials) from where its policy
//! says, and removing it there, so it stays at the gateway.

use http::header::{self, HeaderMap};
use http::{HeaderValue, Uri};
use tollgate_shared::config::model::CredentialLocation;

use crate::telemetry::record::decoded;

/// Removes the credential from the request and returns it (`None` when absent or empty).
pub fn take_credential(
    location: &CredentialLocation,
    uri: &mut Uri,
    headers: &mut HeaderMap,
) -> Option<String> {
    match location {
        CredentialLocation::Header { name, prefix } => {
            let value = headers.get(name.as_str())?;
            let Ok(value) = value.to_str() else {
                // Unreadable, so no credential: but it goes no further either.
                headers.remove(name.as_str());
                return None;
            };
            let token = match prefix {
                None => value,
                Some(prefix) => value
                    .get(..prefix.len())
                    .filter(|p| p.eq_ignore_ascii_case(prefix))
                    .map(|_| &value[prefix.len()..])?,
            }
            .trim()
            .to_string();
            headers.remove(name.as_str());
            (!token.is_empty()).then_some(token)
        }
        CredentialLocation::QueryParameter(name) => {
            let query = uri.query()?;
            let (mut token, mut kept) = (None, Vec::new());
            for pair in query.split('&') {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if decoded(key) == *name {
                    token.get_or_insert_with(|| decoded(value));
                } else {
                    kept.push(pair);
                }
            }
            let token = token?;
            *uri = with_query(uri, &kept.join("&"));
            (!token.is_empty()).then_some(token)
        }
        CredentialLocation::Cookie(name) => {
            let mut token = None;
            let mut kept = Vec::new();
            // A `Cookie` header that is not text is dropped with the credential's.
            for value in headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
            {
                for cookie in value.split(';').map(str::trim) {
                    match cookie.split_once('=') {
                        Some((key, value)) if key == name => {
                            token.get_or_insert_with(|| value.trim_matches('"').to_string());
                        }
                        _ if !cookie.is_empty() => kept.push(cookie.to_string()),
                        _ => {}
                    }
                }
            }
            headers.remove(header::COOKIE);
            if let Ok(v) = HeaderValue::from_str(&kept.join("; "))
                && !kept.is_empty()
            {
                headers.insert(header::COOKIE, v);
            }
            token.filter(|t| !t.is_empty())
        }
    }
}

/// `uri` with its query replaced (removed when empty).
fn with_query(uri: &Uri, query: &str) -> Uri {
    let path_and_query = if query.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{query}", uri.path())
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(
        location: &CredentialLocation,
        uri: &str,
        headers: &[(&'static str, &str)],
    ) -> (Option<String>, Uri, HeaderMap) {
        let mut uri: Uri = uri.parse().unwrap();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, v.parse().unwrap());
        }
        let token = take_credential(location, &mut uri, &mut map);
        (token, uri, map)
    }

    #[test]
    fn bearer_header_is_taken_case_insensitively_and_removed() {
        let (token, _, headers) = take(
            &CredentialLocation::default(),
            "/p",
            &[("authorization", "bearer abc.def.ghi"), ("x-other", "1")],
        );
        assert_eq!(token.as_deref(), Some("abc.def.ghi"));
        assert!(headers.get("authorization").is_none());
        assert!(headers.get("x-other").is_some());
        let (token, _, headers) = take(
            &CredentialLocation::default(),
            "/p",
            &[("authorization", "Basic dTpw")],
        );
        assert_eq!(token, None);
        assert!(
            headers.get("authorization").is_some(),
            "not a bearer token: left alone"
        );
    }

    #[test]
    fn query_parameter_is_taken_and_the_rest_kept() {
        let location = CredentialLocation::QueryParameter("access_token".into());
        let (token, uri, _) = take(&location, "/p?a=1&access_token=t%2Bk&b=2", &[]);
        assert_eq!(token.as_deref(), Some("t+k"));
        assert_eq!(uri.to_string(), "/p?a=1&b=2");
        let (_, uri, _) = take(&location, "/p?access_token=t", &[]);
        assert_eq!(uri.to_string(), "/p");
    }

    #[test]
    fn cookie_is_taken_and_other_cookies_kept() {
        let location = CredentialLocation::Cookie("jwt".into());
        let (token, _, headers) = take(&location, "/", &[("cookie", "a=1; jwt=tok; b=2")]);
        assert_eq!(token.as_deref(), Some("tok"));
        assert_eq!(headers["cookie"], "a=1; b=2");
        let (_, _, headers) = take(&location, "/", &[("cookie", "jwt=tok")]);
        assert!(headers.get("cookie").is_none());
    }

    #[test]
    fn unreadable_values_never_keep_the_credential() {
        let location = CredentialLocation::Cookie("jwt".into());
        let mut uri: Uri = "/".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_bytes(b"x=\xff").unwrap());
        headers.append(header::COOKIE, "jwt=tok; a=1".parse().unwrap());
        assert_eq!(
            take_credential(&location, &mut uri, &mut headers).as_deref(),
            Some("tok")
        );
        assert_eq!(headers.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(headers[header::COOKIE], "a=1");
        let location = CredentialLocation::Header {
            name: "x-key".into(),
            prefix: None,
        };
        headers.insert("x-key", HeaderValue::from_bytes(b"k\xff").unwrap());
        assert_eq!(take_credential(&location, &mut uri, &mut headers), None);
        assert!(headers.get("x-key").is_none());
    }
}
