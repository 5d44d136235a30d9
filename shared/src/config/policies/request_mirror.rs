//! `policies.requestMirror`: a share of a route's requests is copied to another host whose
//! answers are discarded; the real request is never delayed or changed by it.

use serde::{Deserialize, Serialize};

use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRequestMirror {
    pub backend: RawMirrorBackend,
    pub percentage: f64,
}

/// agentgateway's backend reference; Tollgate has no services or named backends.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMirrorBackend {
    pub host: String,
}

/// Where copies go and how many.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    /// `host:port`, called over plain HTTP.
    pub host: String,
    /// The share of requests copied, 0.0 to 1.0.
    pub percentage: f64,
}

impl RequestMirror {
    fn new(host: String, percentage: f64) -> Result<RequestMirror, Vec<Invalid>> {
        if !(0.0..=1.0).contains(&percentage) {
            return Err(vec![Invalid::at(
                "percentage",
                "`percentage` is a share of requests, 0.0 to 1.0 (0.5 copies half)",
            )]);
        }
        Ok(RequestMirror { host, percentage })
    }
}

impl Validator<'_> {
    pub fn request_mirror(
        &mut self,
        raw: &RawRequestMirror,
        path: &YamlPath,
    ) -> Option<RequestMirror> {
        let host = self.authority(&raw.backend.host, &path.key("backend").key("host"))?;
        self.checked(RequestMirror::new(host, raw.percentage), path)
    }
}

impl From<&RequestMirror> for pb::RequestMirror {
    fn from(m: &RequestMirror) -> Self {
        pb::RequestMirror {
            host: m.host.clone(),
            percentage: m.percentage,
        }
    }
}

impl TryFrom<pb::RequestMirror> for RequestMirror {
    type Error = InvalidSnapshot;

    fn try_from(m: pb::RequestMirror) -> convert::Result<RequestMirror> {
        if m.host.parse::<http::uri::Authority>().is_err() {
            return convert::invalid("host", format!("`{}` is not host:port", m.host));
        }
        RequestMirror::new(m.host, m.percentage).map_err(InvalidSnapshot::from)
    }
}
