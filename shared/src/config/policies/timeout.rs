//! `policies.timeout`: bounds on the whole request and on each upstream attempt.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::model::as_opt_humantime;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{duration, nanos};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTimeout {
    pub request_timeout: Option<String>,
    pub backend_request_timeout: Option<String>,
}

/// `timeout`; past either bound the client gets 504.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeout {
    /// Whole request, retries included.
    #[serde(serialize_with = "as_opt_humantime")]
    pub request_timeout: Option<Duration>,
    /// Each upstream attempt.
    #[serde(serialize_with = "as_opt_humantime")]
    pub backend_request_timeout: Option<Duration>,
}

impl Validator<'_> {
    pub fn timeout(&mut self, raw: &RawTimeout, path: &YamlPath) -> Option<Timeout> {
        Some(Timeout {
            request_timeout: self.optional_duration(
                raw.request_timeout.as_deref(),
                path,
                "requestTimeout",
            ),
            backend_request_timeout: self.optional_duration(
                raw.backend_request_timeout.as_deref(),
                path,
                "backendRequestTimeout",
            ),
        })
    }
}

impl From<&Timeout> for pb::Timeout {
    fn from(t: &Timeout) -> Self {
        pb::Timeout {
            request_timeout_nanos: t.request_timeout.map(nanos),
            backend_request_timeout_nanos: t.backend_request_timeout.map(nanos),
        }
    }
}

impl From<pb::Timeout> for Timeout {
    fn from(t: pb::Timeout) -> Self {
        Timeout {
            request_timeout: t.request_timeout_nanos.map(duration),
            backend_request_timeout: t.backend_request_timeout_nanos.map(duration),
        }
    }
}
