//! `policies.urlRewrite`: the path sent upstream, replaced whole or by its matched prefix.

use serde::{Deserialize, Serialize};

use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, missing};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawUrlRewrite {
    pub path: Option<RawPathRewrite>,
}

/// Exactly one of the fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPathRewrite {
    pub full: Option<String>,
    pub prefix: Option<String>,
}

/// `urlRewrite.path`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UrlRewrite {
    /// Replace the whole path.
    Full(String),
    /// Replace the matched `pathPrefix` (every match of the route is a prefix match).
    Prefix(String),
}

impl Validator<'_> {
    pub fn url_rewrite(&mut self, raw: &RawUrlRewrite, path: &YamlPath) -> Option<UrlRewrite> {
        let rw = raw.path.as_ref()?;
        let pp = path.key("path");
        let options = [("full", rw.full.is_some()), ("prefix", rw.prefix.is_some())];
        if !self.exactly_one(&pp, "a path rewrite", &options) {
            return None;
        }
        if let Some(f) = &rw.full {
            self.absolute(f, &pp.key("full"));
            Some(UrlRewrite::Full(f.clone()))
        } else {
            rw.prefix.clone().map(UrlRewrite::Prefix)
        }
    }
}

impl From<&UrlRewrite> for pb::UrlRewrite {
    fn from(u: &UrlRewrite) -> Self {
        use pb::url_rewrite::Kind;
        pb::UrlRewrite {
            kind: Some(match u {
                UrlRewrite::Full(f) => Kind::Full(f.clone()),
                UrlRewrite::Prefix(x) => Kind::Prefix(x.clone()),
            }),
        }
    }
}

impl TryFrom<pb::UrlRewrite> for UrlRewrite {
    type Error = InvalidSnapshot;

    fn try_from(u: pb::UrlRewrite) -> convert::Result<UrlRewrite> {
        use pb::url_rewrite::Kind;
        match u.kind {
            Some(Kind::Full(f)) => Ok(UrlRewrite::Full(f)),
            Some(Kind::Prefix(x)) => Ok(UrlRewrite::Prefix(x)),
            None => missing(""),
        }
    }
}
