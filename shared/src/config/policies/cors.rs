//! `policies.cors`: answers preflights and adds CORS headers to responses.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::model::as_opt_humantime;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{duration, nanos};
use crate::proto::v1 as pb;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCors {
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    pub max_age: Option<String>,
}

/// `cors`: which cross-origin requests browsers may make.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cors {
    /// Origins allowed (`*` = any).
    pub allow_origins: Vec<String>,
    /// Request headers allowed (`*` = any).
    pub allow_headers: Vec<String>,
    /// Methods allowed (`*` = any).
    pub allow_methods: Vec<String>,
    /// Response headers scripts may read.
    pub expose_headers: Vec<String>,
    /// Whether credentials (cookies, auth) may be sent.
    pub allow_credentials: bool,
    /// How long a preflight answer may be cached.
    #[serde(serialize_with = "as_opt_humantime")]
    pub max_age: Option<Duration>,
}

impl Cors {
    /// What a valid but risky policy deserves a warning for.
    pub fn warning(&self) -> Option<&'static str> {
        (self.allow_credentials && self.allow_origins.iter().any(|o| o == "*")).then_some(
            "cors: allowOrigins `*` with allowCredentials: true lets any web page send \
             credentialed requests (valid, as in agentgateway; list the origins instead)",
        )
    }
}

impl Validator<'_> {
    pub fn cors(&mut self, raw: &RawCors, path: &YamlPath) -> Option<Cors> {
        for (i, m) in raw.allow_methods.iter().enumerate() {
            if m != "*" {
                self.method(m, &path.key("allowMethods").index(i));
            }
        }
        for (key, list) in [
            ("allowHeaders", &raw.allow_headers),
            ("exposeHeaders", &raw.expose_headers),
        ] {
            for (i, h) in list.iter().enumerate() {
                if h != "*" {
                    self.header_name(h, &path.key(key).index(i));
                }
            }
        }
        Some(Cors {
            allow_origins: raw.allow_origins.clone(),
            allow_headers: raw.allow_headers.clone(),
            allow_methods: raw.allow_methods.clone(),
            expose_headers: raw.expose_headers.clone(),
            allow_credentials: raw.allow_credentials,
            max_age: self.optional_duration(raw.max_age.as_deref(), path, "maxAge"),
        })
    }
}

impl From<&Cors> for pb::Cors {
    fn from(c: &Cors) -> Self {
        pb::Cors {
            allow_origins: c.allow_origins.clone(),
            allow_headers: c.allow_headers.clone(),
            allow_methods: c.allow_methods.clone(),
            expose_headers: c.expose_headers.clone(),
            allow_credentials: c.allow_credentials,
            max_age_nanos: c.max_age.map(nanos),
        }
    }
}

impl From<pb::Cors> for Cors {
    fn from(c: pb::Cors) -> Self {
        Cors {
            allow_origins: c.allow_origins,
            allow_headers: c.allow_headers,
            allow_methods: c.allow_methods,
            expose_headers: c.expose_headers,
            allow_credentials: c.allow_credentials,
            max_age: c.max_age_nanos.map(duration),
        }
    }
}
