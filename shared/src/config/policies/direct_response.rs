//! `policies.directResponse`: the gateway answers the route itself (agentgateway's spelling:
//! `body`, `status`), after the route's authentication, authorization and rate limits; such a
//! route needs no backend.

use bytes::Bytes;
use serde::{Deserialize, Serialize, Serializer};

use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDirectResponse {
    pub body: Option<String>,
    pub status: u16,
}

/// The answer every request of the route gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectResponse {
    /// An HTTP status, 200..=599.
    pub status: u16,
    /// The body, as written (empty when unset): UTF-8 text, shared by every answer.
    #[serde(serialize_with = "as_text")]
    pub body: Bytes,
}

fn as_text<S: Serializer>(body: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(body))
}

/// The largest body accepted (it is held in every proxy's memory).
const MAX_BODY: usize = 64 << 10;

impl DirectResponse {
    fn new(status: u16, body: String) -> Result<DirectResponse, Vec<Invalid>> {
        let mut problems = Vec::new();
        if !(200..=599).contains(&status) {
            problems.push(Invalid::at(
                "status",
                "`status` is an HTTP status, 200 to 599",
            ));
        }
        if body.len() > MAX_BODY {
            problems.push(Invalid::at(
                "body",
                format!("`body` is at most {MAX_BODY} bytes"),
            ));
        }
        if problems.is_empty() {
            Ok(DirectResponse {
                status,
                body: Bytes::from(body),
            })
        } else {
            Err(problems)
        }
    }
}

impl Validator<'_> {
    pub fn direct_response(
        &mut self,
        raw: &RawDirectResponse,
        path: &YamlPath,
    ) -> Option<DirectResponse> {
        let built = DirectResponse::new(raw.status, raw.body.clone().unwrap_or_default());
        self.checked(built, path)
    }
}

impl From<&DirectResponse> for pb::DirectResponse {
    fn from(d: &DirectResponse) -> Self {
        pb::DirectResponse {
            status: u32::from(d.status),
            body: String::from_utf8_lossy(&d.body).into_owned(),
        }
    }
}

impl TryFrom<pb::DirectResponse> for DirectResponse {
    type Error = InvalidSnapshot;

    fn try_from(d: pb::DirectResponse) -> convert::Result<DirectResponse> {
        let status = u16::try_from(d.status).unwrap_or(0);
        DirectResponse::new(status, d.body).map_err(InvalidSnapshot::from)
    }
}
