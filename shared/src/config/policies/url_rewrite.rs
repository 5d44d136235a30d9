//! `policies.urlRewrite`: the path sent upstream (replaced whole or by its matched prefix) and
//! the authority (`Host`) the upstream sees. `requestRedirect` shares the rewrite types.

use serde::{Deserialize, Serialize};

use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, missing};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawUrlRewrite {
    pub path: Option<RawPathRewrite>,
    pub authority: Option<RawAuthorityRewrite>,
}

/// Exactly one of the fields.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPathRewrite {
    pub full: Option<String>,
    pub prefix: Option<String>,
}

/// agentgateway's `authority`: `auto` or `none` as words, or exactly one of `full`, `host`,
/// `port`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(
    untagged,
    expecting = "an authority rewrite: `auto`, `none`, or one of `full`, `host`, `port`"
)]
pub enum RawAuthorityRewrite {
    Word(String),
    Parts(RawAuthorityParts),
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAuthorityParts {
    pub full: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// A new path.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PathRewrite {
    /// Replace the whole path.
    Full(String),
    /// Replace the matched `pathPrefix` (every match of the route is a prefix match).
    Prefix(String),
}

/// A new authority (`host[:port]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthorityRewrite {
    /// `host[:port]` as written.
    Full(String),
    /// The host, replacing the request's host and port.
    Host(String),
    /// The port, keeping the request's host (a scheme's default port is left out).
    Port(u16),
    /// The chosen backend's own authority (`urlRewrite` only).
    Auto,
    /// The request's authority, unchanged.
    None,
}

/// `urlRewrite`: at least one of its parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<AuthorityRewrite>,
}

impl AuthorityRewrite {
    fn checked(self) -> Result<AuthorityRewrite, Vec<Invalid>> {
        let problem = match &self {
            AuthorityRewrite::Full(full) if full.parse::<http::uri::Authority>().is_err() => {
                Some(("full", format!("`{full}` is not a `host[:port]`")))
            }
            AuthorityRewrite::Host(host)
                if host.contains(':') || host.parse::<http::uri::Authority>().is_err() =>
            {
                Some((
                    "host",
                    format!("`{host}` is not a host name (without a port)"),
                ))
            }
            AuthorityRewrite::Port(0) => Some(("port", "`port` is 1 to 65535".to_string())),
            _ => None,
        };
        match problem {
            Some((field, message)) => Err(vec![Invalid::at(field, message)]),
            None => Ok(self),
        }
    }
}

impl Validator<'_> {
    pub fn url_rewrite(&mut self, raw: &RawUrlRewrite, path: &YamlPath) -> Option<UrlRewrite> {
        if raw.path.is_none() && raw.authority.is_none() {
            self.error(path, "a `urlRewrite` needs `path` or `authority`");
            return None;
        }
        let rewrite_path = match &raw.path {
            Some(p) => Some(self.path_rewrite(p, &path.key("path"))?),
            None => None,
        };
        let authority = match &raw.authority {
            Some(a) => Some(self.authority_rewrite(a, &path.key("authority"))?),
            None => None,
        };
        Some(UrlRewrite {
            path: rewrite_path,
            authority,
        })
    }

    pub fn path_rewrite(&mut self, raw: &RawPathRewrite, path: &YamlPath) -> Option<PathRewrite> {
        let options = [
            ("full", raw.full.is_some()),
            ("prefix", raw.prefix.is_some()),
        ];
        if !self.exactly_one(path, "a path rewrite", &options) {
            return None;
        }
        if let Some(f) = &raw.full {
            self.absolute(f, &path.key("full"));
            Some(PathRewrite::Full(f.clone()))
        } else {
            raw.prefix.clone().map(PathRewrite::Prefix)
        }
    }

    pub fn authority_rewrite(
        &mut self,
        raw: &RawAuthorityRewrite,
        path: &YamlPath,
    ) -> Option<AuthorityRewrite> {
        let rewrite = match raw {
            RawAuthorityRewrite::Word(word) => match word.as_str() {
                "auto" => AuthorityRewrite::Auto,
                "none" => AuthorityRewrite::None,
                other => {
                    self.error(
                        path,
                        format!("unknown authority rewrite `{other}`; expected `auto` or `none`"),
                    );
                    return None;
                }
            },
            RawAuthorityRewrite::Parts(parts) => {
                let options = [
                    ("full", parts.full.is_some()),
                    ("host", parts.host.is_some()),
                    ("port", parts.port.is_some()),
                ];
                if !self.exactly_one(path, "an authority rewrite", &options) {
                    return None;
                }
                match (&parts.full, &parts.host, parts.port) {
                    (Some(full), _, _) => AuthorityRewrite::Full(full.clone()),
                    (_, Some(host), _) => AuthorityRewrite::Host(host.clone()),
                    (_, _, Some(port)) => AuthorityRewrite::Port(port),
                    _ => return None,
                }
            }
        };
        self.checked(rewrite.checked(), path)
    }
}

impl From<&PathRewrite> for pb::PathRewrite {
    fn from(p: &PathRewrite) -> Self {
        use pb::path_rewrite::Kind;
        pb::PathRewrite {
            kind: Some(match p {
                PathRewrite::Full(f) => Kind::Full(f.clone()),
                PathRewrite::Prefix(x) => Kind::Prefix(x.clone()),
            }),
        }
    }
}

impl TryFrom<pb::PathRewrite> for PathRewrite {
    type Error = InvalidSnapshot;

    fn try_from(p: pb::PathRewrite) -> convert::Result<PathRewrite> {
        use pb::path_rewrite::Kind;
        match p.kind {
            Some(Kind::Full(f)) => Ok(PathRewrite::Full(f)),
            Some(Kind::Prefix(x)) => Ok(PathRewrite::Prefix(x)),
            None => missing(""),
        }
    }
}

impl From<&AuthorityRewrite> for pb::AuthorityRewrite {
    fn from(a: &AuthorityRewrite) -> Self {
        use pb::authority_rewrite::Kind;
        pb::AuthorityRewrite {
            kind: Some(match a {
                AuthorityRewrite::Full(f) => Kind::Full(f.clone()),
                AuthorityRewrite::Host(h) => Kind::Host(h.clone()),
                AuthorityRewrite::Port(p) => Kind::Port(u32::from(*p)),
                AuthorityRewrite::Auto => Kind::Auto(true),
                AuthorityRewrite::None => Kind::None(true),
            }),
        }
    }
}

impl TryFrom<pb::AuthorityRewrite> for AuthorityRewrite {
    type Error = InvalidSnapshot;

    fn try_from(a: pb::AuthorityRewrite) -> convert::Result<AuthorityRewrite> {
        use pb::authority_rewrite::Kind;
        let rewrite = match a.kind {
            Some(Kind::Full(f)) => AuthorityRewrite::Full(f),
            Some(Kind::Host(h)) => AuthorityRewrite::Host(h),
            Some(Kind::Port(p)) => AuthorityRewrite::Port(u16::try_from(p).unwrap_or(0)),
            Some(Kind::Auto(_)) => AuthorityRewrite::Auto,
            Some(Kind::None(_)) => AuthorityRewrite::None,
            None => return missing(""),
        };
        rewrite.checked().map_err(InvalidSnapshot::from)
    }
}

impl From<&UrlRewrite> for pb::UrlRewrite {
    fn from(u: &UrlRewrite) -> Self {
        pb::UrlRewrite {
            path: u.path.as_ref().map(Into::into),
            authority: u.authority.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<pb::UrlRewrite> for UrlRewrite {
    type Error = InvalidSnapshot;

    fn try_from(u: pb::UrlRewrite) -> convert::Result<UrlRewrite> {
        if u.path.is_none() && u.authority.is_none() {
            return missing("path");
        }
        Ok(UrlRewrite {
            path: convert::optional(u.path, "path")?,
            authority: convert::optional(u.authority, "authority")?,
        })
    }
}
