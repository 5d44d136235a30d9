//! `policies.requestRedirect`: the gateway answers with a redirect (agentgateway's `scheme`,
//! `authority`, `path`, `status`) after the route's identity, authorization and limits; such a
//! route needs no backend.

use serde::{Deserialize, Serialize};

use super::url_rewrite::{AuthorityRewrite, PathRewrite, RawAuthorityRewrite, RawPathRewrite};
use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRequestRedirect {
    pub scheme: Option<String>,
    pub authority: Option<RawAuthorityRewrite>,
    pub path: Option<RawPathRewrite>,
    pub status: Option<u16>,
}

/// Where a redirect sends the client: the request's URL with the set parts replaced.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    /// `http` or `https`; the request's own when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<AuthorityRewrite>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// A 3xx status; 302 when unset.
    pub status: u16,
}

impl RequestRedirect {
    fn new(redirect: RequestRedirect) -> Result<RequestRedirect, Vec<Invalid>> {
        let mut problems = Vec::new();
        if let Some(s) = &redirect.scheme
            && s != "http"
            && s != "https"
        {
            problems.push(Invalid::at(
                "scheme",
                format!("unknown scheme `{s}`; expected `http` or `https`"),
            ));
        }
        if redirect.authority == Some(AuthorityRewrite::Auto) {
            problems.push(Invalid::at(
                "authority",
                "`auto` (the backend's authority) applies to `urlRewrite`; a redirect has no backend",
            ));
        }
        if !(300..=399).contains(&redirect.status) {
            problems.push(Invalid::at(
                "status",
                "`status` is a redirect status, 300 to 399",
            ));
        }
        if problems.is_empty() {
            Ok(redirect)
        } else {
            Err(problems)
        }
    }
}

impl Validator<'_> {
    pub fn request_redirect(
        &mut self,
        raw: &RawRequestRedirect,
        path: &YamlPath,
    ) -> Option<RequestRedirect> {
        let authority = match &raw.authority {
            Some(a) => Some(self.authority_rewrite(a, &path.key("authority"))?),
            None => None,
        };
        let new_path = match &raw.path {
            Some(p) => Some(self.path_rewrite(p, &path.key("path"))?),
            None => None,
        };
        let built = RequestRedirect::new(RequestRedirect {
            scheme: raw.scheme.clone(),
            authority,
            path: new_path,
            status: raw.status.unwrap_or(302),
        });
        self.checked(built, path)
    }
}

impl From<&RequestRedirect> for pb::RequestRedirect {
    fn from(r: &RequestRedirect) -> Self {
        pb::RequestRedirect {
            scheme: r.scheme.clone(),
            authority: r.authority.as_ref().map(Into::into),
            path: r.path.as_ref().map(Into::into),
            status: u32::from(r.status),
        }
    }
}

impl TryFrom<pb::RequestRedirect> for RequestRedirect {
    type Error = InvalidSnapshot;

    fn try_from(r: pb::RequestRedirect) -> convert::Result<RequestRedirect> {
        RequestRedirect::new(RequestRedirect {
            scheme: r.scheme,
            authority: convert::optional(r.authority, "authority")?,
            path: convert::optional(r.path, "path")?,
            status: u16::try_from(r.status).unwrap_or(0),
        })
        .map_err(InvalidSnapshot::from)
    }
}
