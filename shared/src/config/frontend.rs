//! `frontendPolicies:`, how every bind treats client connections (timeouts, limits, which
//! forwarding headers to trust): raw types, validation, the model and its proto form.
//!
//! agentgateway's spelling where it has one (`http.http1IdleTimeout`); the other fields are
//! Tollgate extensions, and agentgateway's fields Tollgate does not implement are rejected as
//! unknown.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::{Invalid, as_humantime};
use super::path::YamlPath;
use super::raw::Lenient;
use super::tls::{FrontendTls, RawFrontendTls};
use super::validate::Validator;
use crate::convert::{self, InvalidSnapshot, duration, nanos};
use crate::proto::v1 as pb;

// === raw ===

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFrontendPolicies {
    pub http: Option<Lenient<RawFrontendHttp>>,
    pub tcp: Option<Lenient<RawFrontendTcp>>,
    pub tls: Option<Lenient<RawFrontendTls>>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFrontendHttp {
    pub header_read_timeout: Option<String>,
    pub http1_idle_timeout: Option<String>,
    pub http2_idle_timeout: Option<String>,
    pub xff_num_trusted_hops: Option<u32>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFrontendTcp {
    pub max_connections: Option<u32>,
}

// === model ===

/// `frontendPolicies`: how every bind treats client connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendPolicies {
    pub http: FrontendHttp,
    pub tcp: FrontendTcp,
    /// `tls`: handshakes of HTTPS listeners (a listener's own `tls` settings win).
    pub tls: FrontendTls,
}

/// `frontendPolicies.http`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendHttp {
    /// (Tollgate) A connection must send a whole first request head within this time.
    #[serde(serialize_with = "as_humantime")]
    pub header_read_timeout: Duration,
    /// An HTTP/1 connection with no request in progress is closed after this time.
    #[serde(serialize_with = "as_humantime")]
    pub http1_idle_timeout: Duration,
    /// (Tollgate) The same for an HTTP/2 connection (closed with GOAWAY).
    #[serde(serialize_with = "as_humantime")]
    pub http2_idle_timeout: Duration,
    /// (Tollgate) Proxies in front of the gateway whose `x-forwarded-for` entries are kept
    /// (the last N); with 0 a client's header is replaced by its address.
    pub xff_num_trusted_hops: u32,
}

impl Default for FrontendHttp {
    fn default() -> Self {
        FrontendHttp {
            header_read_timeout: Duration::from_secs(30),
            http1_idle_timeout: Duration::from_secs(10 * 60),
            http2_idle_timeout: Duration::from_secs(10 * 60),
            xff_num_trusted_hops: 0,
        }
    }
}

impl FrontendHttp {
    /// Timeouts that are all positive.
    pub(crate) fn new(
        header_read_timeout: Duration,
        http1_idle_timeout: Duration,
        http2_idle_timeout: Duration,
        xff_num_trusted_hops: u32,
    ) -> Result<FrontendHttp, Vec<Invalid>> {
        let problems: Vec<Invalid> = [
            ("headerReadTimeout", header_read_timeout),
            ("http1IdleTimeout", http1_idle_timeout),
            ("http2IdleTimeout", http2_idle_timeout),
        ]
        .into_iter()
        .filter(|(_, d)| d.is_zero())
        .map(|(key, _)| Invalid::at(key, format!("{key} must be longer than 0s")))
        .collect();
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(FrontendHttp {
            header_read_timeout,
            http1_idle_timeout,
            http2_idle_timeout,
            xff_num_trusted_hops,
        })
    }
}

/// `frontendPolicies.tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTcp {
    /// (Tollgate) Most open client connections per bind; past it new ones are closed at once.
    pub max_connections: u32,
}

impl Default for FrontendTcp {
    fn default() -> Self {
        FrontendTcp {
            max_connections: 10_000,
        }
    }
}

impl FrontendTcp {
    /// A limit of at least one connection.
    pub(crate) fn new(max_connections: u32) -> Result<FrontendTcp, Vec<Invalid>> {
        if max_connections == 0 {
            return Err(vec![Invalid::at(
                "maxConnections",
                "maxConnections must be at least 1",
            )]);
        }
        Ok(FrontendTcp { max_connections })
    }
}

// === validation ===

impl Validator<'_> {
    pub(crate) fn frontend_policies(
        &mut self,
        raw: &RawFrontendPolicies,
        path: &YamlPath,
    ) -> FrontendPolicies {
        FrontendPolicies {
            http: self
                .section(raw.http.as_ref(), path, "http", Self::frontend_http)
                .unwrap_or_default(),
            tcp: self
                .section(raw.tcp.as_ref(), path, "tcp", |v, t, p| {
                    let defaults = FrontendTcp::default();
                    let built =
                        FrontendTcp::new(t.max_connections.unwrap_or(defaults.max_connections));
                    v.checked(built, p)
                })
                .unwrap_or_default(),
            tls: self
                .section(raw.tls.as_ref(), path, "tls", Self::frontend_tls)
                .unwrap_or_default(),
        }
    }

    fn frontend_http(&mut self, raw: &RawFrontendHttp, path: &YamlPath) -> Option<FrontendHttp> {
        let defaults = FrontendHttp::default();
        let mut unreadable = false;
        let mut timeout =
            |v: &mut Self, text: &Option<String>, key: &str, default: Duration| match text
                .as_deref()
            {
                Some(t) => v.duration(t, &path.key(key)).unwrap_or_else(|| {
                    unreadable = true;
                    default
                }),
                None => default,
            };
        let header_read = timeout(
            self,
            &raw.header_read_timeout,
            "headerReadTimeout",
            defaults.header_read_timeout,
        );
        let http1_idle = timeout(
            self,
            &raw.http1_idle_timeout,
            "http1IdleTimeout",
            defaults.http1_idle_timeout,
        );
        let http2_idle = timeout(
            self,
            &raw.http2_idle_timeout,
            "http2IdleTimeout",
            defaults.http2_idle_timeout,
        );
        let built = FrontendHttp::new(
            header_read,
            http1_idle,
            http2_idle,
            raw.xff_num_trusted_hops
                .unwrap_or(defaults.xff_num_trusted_hops),
        );
        // An unreadable duration is already reported; the others are still checked.
        let http = self.checked(built, path)?;
        (!unreadable).then_some(http)
    }
}

// === proto ===

impl From<&FrontendPolicies> for pb::FrontendPolicies {
    fn from(f: &FrontendPolicies) -> Self {
        pb::FrontendPolicies {
            http: Some(pb::FrontendHttp {
                header_read_timeout_nanos: nanos(f.http.header_read_timeout),
                http1_idle_timeout_nanos: nanos(f.http.http1_idle_timeout),
                http2_idle_timeout_nanos: nanos(f.http.http2_idle_timeout),
                xff_num_trusted_hops: f.http.xff_num_trusted_hops,
            }),
            tcp: Some(pb::FrontendTcp {
                max_connections: f.tcp.max_connections,
            }),
            tls: Some((&f.tls).into()),
        }
    }
}

impl TryFrom<pb::FrontendHttp> for FrontendHttp {
    type Error = InvalidSnapshot;

    fn try_from(h: pb::FrontendHttp) -> convert::Result<FrontendHttp> {
        FrontendHttp::new(
            duration(h.header_read_timeout_nanos),
            duration(h.http1_idle_timeout_nanos),
            duration(h.http2_idle_timeout_nanos),
            h.xff_num_trusted_hops,
        )
        .map_err(InvalidSnapshot::from)
    }
}

impl TryFrom<pb::FrontendTcp> for FrontendTcp {
    type Error = InvalidSnapshot;

    fn try_from(t: pb::FrontendTcp) -> convert::Result<FrontendTcp> {
        FrontendTcp::new(t.max_connections).map_err(InvalidSnapshot::from)
    }
}

impl TryFrom<pb::FrontendPolicies> for FrontendPolicies {
    type Error = InvalidSnapshot;

    fn try_from(f: pb::FrontendPolicies) -> convert::Result<FrontendPolicies> {
        Ok(FrontendPolicies {
            http: convert::optional(f.http, "http")?.unwrap_or_default(),
            tcp: convert::optional(f.tcp, "tcp")?.unwrap_or_default(),
            tls: convert::optional(f.tls, "tls")?.unwrap_or_default(),
        })
    }
}
