//! `backendAuth.passthrough`: the caller's validated token, put where the backend expects it
//! (HTTP hosts and LLM providers per request, remote MCP targets per session).

use http::Uri;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use tollgate_shared::config::model::CredentialLocation;

/// The token and where it goes. Holds a credential: no `Debug`.
#[derive(Clone)]
pub struct Passthrough {
    placed: Placed,
}

#[derive(Clone)]
enum Placed {
    /// A header (with its prefix), or `cookie: name=token`.
    Header(HeaderName, HeaderValue),
    /// `name=token`, form-encoded, for the query.
    Query(String),
}

impl Passthrough {
    /// `None` when the token cannot be sent there (not a valid header value).
    pub fn new(location: &CredentialLocation, token: &str) -> Option<Passthrough> {
        let sensitive = |text: String| {
            let mut value = HeaderValue::try_from(text).ok()?;
            value.set_sensitive(true);
            Some(value)
        };
        let placed = match location {
            CredentialLocation::Header { name, prefix } => Placed::Header(
                HeaderName::try_from(name.as_str()).ok()?,
                sensitive(format!("{}{token}", prefix.as_deref().unwrap_or("")))?,
            ),
            CredentialLocation::Cookie(name) => {
                Placed::Header(header::COOKIE, sensitive(format!("{name}={token}"))?)
            }
            CredentialLocation::QueryParameter(name) => Placed::Query(
                form_urlencoded::Serializer::new(String::new())
                    .append_pair(name, token)
                    .finish(),
            ),
        };
        Some(Passthrough { placed })
    }

    /// Puts the token on a request to an HTTP backend (a cookie joins the other cookies).
    pub fn apply(&self, uri: &mut Uri, headers: &mut HeaderMap) {
        match &self.placed {
            Placed::Header(name, value) if name == header::COOKIE => {
                let joined = headers
                    .get(header::COOKIE)
                    .and_then(|c| c.to_str().ok())
                    .and_then(|c| value.to_str().ok().map(|v| format!("{c}; {v}")))
                    .and_then(|c| HeaderValue::try_from(c).ok())
                    .map(|mut c| {
                        c.set_sensitive(true);
                        c
                    });
                headers.insert(header::COOKIE, joined.unwrap_or_else(|| value.clone()));
            }
            Placed::Header(name, value) => {
                headers.insert(name.clone(), value.clone());
            }
            Placed::Query(pair) => {
                let path_and_query = match uri.query() {
                    Some(q) if !q.is_empty() => format!("{}?{q}&{pair}", uri.path()),
                    _ => format!("{}?{pair}", uri.path()),
                };
                let mut parts = uri.clone().into_parts();
                parts.path_and_query = path_and_query.parse().ok();
                if let Ok(with) = Uri::from_parts(parts) {
                    *uri = with;
                }
            }
        }
    }

    /// The header a remote MCP target gets on every request, if the token goes in one.
    pub fn header(&self) -> Option<(HeaderName, HeaderValue)> {
        match &self.placed {
            Placed::Header(name, value) => Some((name.clone(), value.clone())),
            Placed::Query(_) => None,
        }
    }

    /// A remote MCP target's URL, with the token when it goes in the query.
    pub fn url(&self, url: &str) -> String {
        match &self.placed {
            Placed::Query(pair) if url.contains('?') => format!("{url}&{pair}"),
            Placed::Query(pair) => format!("{url}?{pair}"),
            Placed::Header(..) => url.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(location: CredentialLocation, uri: &str, cookie: Option<&str>) -> (Uri, HeaderMap) {
        let mut uri: Uri = uri.parse().unwrap();
        let mut headers = HeaderMap::new();
        if let Some(c) = cookie {
            headers.insert(header::COOKIE, c.parse().unwrap());
        }
        Passthrough::new(&location, "t.o+k")
            .unwrap()
            .apply(&mut uri, &mut headers);
        (uri, headers)
    }

    #[test]
    fn the_token_goes_where_the_location_says() {
        let (_, h) = applied(CredentialLocation::default(), "/p", None);
        assert_eq!(h["authorization"], "Bearer t.o+k");
        assert!(h["authorization"].is_sensitive());
        let header = CredentialLocation::Header {
            name: "x-token".into(),
            prefix: None,
        };
        let (_, h) = applied(header, "/p", None);
        assert_eq!(h["x-token"], "t.o+k");
        let (uri, _) = applied(
            CredentialLocation::QueryParameter("tk".into()),
            "/p?a=1",
            None,
        );
        assert_eq!(uri, "/p?a=1&tk=t.o%2Bk");
        let (uri, _) = applied(CredentialLocation::QueryParameter("tk".into()), "/p", None);
        assert_eq!(uri, "/p?tk=t.o%2Bk");
        let (_, h) = applied(CredentialLocation::Cookie("id".into()), "/", Some("a=1"));
        assert_eq!(h["cookie"], "a=1; id=t.o+k");
        let p = Passthrough::new(&CredentialLocation::QueryParameter("tk".into()), "x").unwrap();
        assert_eq!(p.url("http://h/mcp"), "http://h/mcp?tk=x");
        assert!(p.header().is_none());
    }
}
