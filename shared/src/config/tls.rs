//! TLS for client connections: a listener's `tls` (certificate, key, client-certificate root,
//! versions) and `frontendPolicies.tls` (handshake timeout, ALPN, versions for every HTTPS
//! listener): raw types, validation, the model and its proto form.
//!
//! Certificate files travel as paths; the proxy reads them from its own filesystem when it
//! applies the config, so a snapshot never carries key material.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use super::model::{Invalid, as_humantime};
use super::path::YamlPath;
use super::validate::Validator;
use crate::convert::{self, InvalidSnapshot, duration, nanos, path_string};
use crate::proto::v1 as pb;

// === raw ===

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawListenerTls {
    pub cert: String,
    pub key: String,
    pub root: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
    #[serde(rename = "minTLSVersion")]
    pub min_tls_version: Option<String>,
    #[serde(rename = "maxTLSVersion")]
    pub max_tls_version: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFrontendTls {
    pub handshake_timeout: Option<String>,
    pub alpn: Option<Vec<String>>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
    pub key_exchange_groups: Option<Vec<String>>,
}

// === model ===

/// A TLS protocol version rustls speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLS_V1_2")]
    Tls12,
    #[serde(rename = "TLS_V1_3")]
    Tls13,
}

impl TlsVersion {
    fn parse(text: &str) -> Result<TlsVersion, String> {
        match text {
            "TLS_V1_2" => Ok(TlsVersion::Tls12),
            "TLS_V1_3" => Ok(TlsVersion::Tls13),
            "TLS_V1_0" | "TLS_V1_1" => Err(format!(
                "`{text}` is not supported: Tollgate speaks TLS 1.2 and 1.3 only"
            )),
            _ => Err(format!(
                "unknown TLS version `{text}`; expected TLS_V1_2 or TLS_V1_3"
            )),
        }
    }

    fn to_proto(self) -> i32 {
        match self {
            TlsVersion::Tls12 => pb::TlsVersion::Tls12 as i32,
            TlsVersion::Tls13 => pb::TlsVersion::Tls13 as i32,
        }
    }

    fn from_proto(value: Option<i32>, field: &str) -> convert::Result<Option<TlsVersion>> {
        match value.map(pb::TlsVersion::try_from) {
            None => Ok(None),
            Some(Ok(pb::TlsVersion::Tls12)) => Ok(Some(TlsVersion::Tls12)),
            Some(Ok(pb::TlsVersion::Tls13)) => Ok(Some(TlsVersion::Tls13)),
            Some(_) => convert::invalid(field, "unknown TLS version"),
        }
    }
}

/// The lowest and highest version are in order (either may be unset).
fn version_range(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
    min_key: &str,
) -> Result<(), Vec<Invalid>> {
    match (min, max) {
        (Some(lo), Some(hi)) if lo > hi => Err(vec![Invalid::at(
            min_key,
            "the minimum TLS version is above the maximum",
        )]),
        _ => Ok(()),
    }
}

/// `listeners[].tls`: what an HTTPS listener presents and whom it accepts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates: when set, clients must present a certificate they signed.
    pub root: Option<PathBuf>,
    /// `minTLSVersion`: over `frontendPolicies.tls.minVersion`.
    #[serde(rename = "minTLSVersion")]
    pub min_version: Option<TlsVersion>,
    /// `maxTLSVersion`: over `frontendPolicies.tls.maxVersion`.
    #[serde(rename = "maxTLSVersion")]
    pub max_version: Option<TlsVersion>,
}

impl ListenerTls {
    /// Files named, versions in order.
    pub(crate) fn new(
        cert: PathBuf,
        key: PathBuf,
        root: Option<PathBuf>,
        min_version: Option<TlsVersion>,
        max_version: Option<TlsVersion>,
    ) -> Result<ListenerTls, Vec<Invalid>> {
        let mut problems = Vec::new();
        for (field, path) in [
            ("cert", Some(&cert)),
            ("key", Some(&key)),
            ("root", root.as_ref()),
        ] {
            if path.is_some_and(|p| p.as_os_str().is_empty()) {
                problems.push(Invalid::at(field, format!("`{field}` names no file")));
            }
        }
        problems.extend(
            version_range(min_version, max_version, "minTLSVersion")
                .err()
                .into_iter()
                .flatten(),
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ListenerTls {
            cert,
            key,
            root,
            min_version,
            max_version,
        })
    }
}

/// ALPN protocols offered to clients (both by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alpn {
    pub h2: bool,
    pub http1: bool,
}

impl Alpn {
    /// The protocol ids, preferred first.
    pub fn ids(&self) -> Vec<&'static str> {
        let mut ids = Vec::new();
        if self.h2 {
            ids.push("h2");
        }
        if self.http1 {
            ids.push("http/1.1");
        }
        ids
    }

    /// Only `h2` and `http/1.1` are spoken, on listeners and to backends alike.
    pub(crate) fn parse(names: &[String]) -> Result<Alpn, Vec<Invalid>> {
        let mut alpn = Alpn {
            h2: false,
            http1: false,
        };
        let mut problems = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match name.as_str() {
                "h2" => alpn.h2 = true,
                "http/1.1" => alpn.http1 = true,
                other => problems.push(Invalid::at(
                    &format!("alpn[{i}]"),
                    format!("ALPN protocol `{other}` is not served; use `h2` and/or `http/1.1`"),
                )),
            }
        }
        if names.is_empty() {
            problems.push(Invalid::at("alpn", "`alpn` needs at least one protocol"));
        }
        if problems.is_empty() {
            Ok(alpn)
        } else {
            Err(problems)
        }
    }
}

impl Serialize for Alpn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.ids().serialize(s)
    }
}

/// `frontendPolicies.tls`: how every HTTPS listener handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTls {
    /// A client must finish its TLS handshake within this time.
    #[serde(serialize_with = "as_humantime")]
    pub handshake_timeout: Duration,
    /// Protocols offered by ALPN.
    pub alpn: Alpn,
    /// Lowest version accepted, unless the listener sets `minTLSVersion`.
    pub min_version: Option<TlsVersion>,
    /// Highest version accepted, unless the listener sets `maxTLSVersion`.
    pub max_version: Option<TlsVersion>,
}

impl Default for FrontendTls {
    fn default() -> Self {
        FrontendTls {
            handshake_timeout: Duration::from_secs(15),
            alpn: Alpn {
                h2: true,
                http1: true,
            },
            min_version: None,
            max_version: None,
        }
    }
}

impl FrontendTls {
    /// A positive handshake timeout, versions in order.
    pub(crate) fn new(
        handshake_timeout: Duration,
        alpn: Alpn,
        min_version: Option<TlsVersion>,
        max_version: Option<TlsVersion>,
    ) -> Result<FrontendTls, Vec<Invalid>> {
        let mut problems = Vec::new();
        if handshake_timeout.is_zero() {
            problems.push(Invalid::at(
                "handshakeTimeout",
                "handshakeTimeout must be longer than 0s",
            ));
        }
        if !alpn.h2 && !alpn.http1 {
            problems.push(Invalid::at("alpn", "`alpn` needs at least one protocol"));
        }
        problems.extend(
            version_range(min_version, max_version, "minVersion")
                .err()
                .into_iter()
                .flatten(),
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(FrontendTls {
            handshake_timeout,
            alpn,
            min_version,
            max_version,
        })
    }

    /// The versions a listener accepts: its own settings win over these, one by one.
    pub fn versions(&self, listener: &ListenerTls) -> (Option<TlsVersion>, Option<TlsVersion>) {
        (
            listener.min_version.or(self.min_version),
            listener.max_version.or(self.max_version),
        )
    }
}

// === validation ===

impl Validator<'_> {
    fn tls_version(&mut self, text: Option<&str>, path: &YamlPath) -> Option<TlsVersion> {
        let text = text?;
        TlsVersion::parse(text)
            .map_err(|e| self.error(path, e))
            .ok()
    }

    fn unsupported_tls_field(&mut self, set: bool, path: &YamlPath, key: &str) {
        if set {
            self.error(
                &path.key(key),
                format!("`{key}` is not supported: rustls picks its safe defaults"),
            );
        }
    }

    pub(crate) fn listener_tls(
        &mut self,
        raw: &RawListenerTls,
        path: &YamlPath,
    ) -> Option<ListenerTls> {
        self.unsupported_tls_field(raw.cipher_suites.is_some(), path, "cipherSuites");
        let min = self.tls_version(raw.min_tls_version.as_deref(), &path.key("minTLSVersion"));
        let max = self.tls_version(raw.max_tls_version.as_deref(), &path.key("maxTLSVersion"));
        let built = ListenerTls::new(
            PathBuf::from(&raw.cert),
            PathBuf::from(&raw.key),
            raw.root.as_ref().map(PathBuf::from),
            min,
            max,
        );
        self.checked(built, path)
    }

    pub(crate) fn frontend_tls(
        &mut self,
        raw: &RawFrontendTls,
        path: &YamlPath,
    ) -> Option<FrontendTls> {
        self.unsupported_tls_field(raw.cipher_suites.is_some(), path, "cipherSuites");
        self.unsupported_tls_field(raw.key_exchange_groups.is_some(), path, "keyExchangeGroups");
        let defaults = FrontendTls::default();
        let timeout = match raw.handshake_timeout.as_deref() {
            Some(t) => self.duration(t, &path.key("handshakeTimeout"))?,
            None => defaults.handshake_timeout,
        };
        let alpn = match &raw.alpn {
            Some(names) => self.checked(Alpn::parse(names), path)?,
            None => defaults.alpn,
        };
        let min = self.tls_version(raw.min_version.as_deref(), &path.key("minVersion"));
        let max = self.tls_version(raw.max_version.as_deref(), &path.key("maxVersion"));
        self.checked(FrontendTls::new(timeout, alpn, min, max), path)
    }
}

// === proto ===

impl From<&ListenerTls> for pb::ListenerTls {
    fn from(t: &ListenerTls) -> Self {
        pb::ListenerTls {
            cert: path_string(&t.cert),
            key: path_string(&t.key),
            root: t.root.as_deref().map(path_string),
            min_version: t.min_version.map(TlsVersion::to_proto),
            max_version: t.max_version.map(TlsVersion::to_proto),
        }
    }
}

impl TryFrom<pb::ListenerTls> for ListenerTls {
    type Error = InvalidSnapshot;

    fn try_from(t: pb::ListenerTls) -> convert::Result<ListenerTls> {
        ListenerTls::new(
            t.cert.into(),
            t.key.into(),
            t.root.map(PathBuf::from),
            TlsVersion::from_proto(t.min_version, "minTLSVersion")?,
            TlsVersion::from_proto(t.max_version, "maxTLSVersion")?,
        )
        .map_err(InvalidSnapshot::from)
    }
}

impl From<&FrontendTls> for pb::FrontendTls {
    fn from(t: &FrontendTls) -> Self {
        pb::FrontendTls {
            handshake_timeout_nanos: nanos(t.handshake_timeout),
            alpn: t.alpn.ids().into_iter().map(String::from).collect(),
            min_version: t.min_version.map(TlsVersion::to_proto),
            max_version: t.max_version.map(TlsVersion::to_proto),
        }
    }
}

impl TryFrom<pb::FrontendTls> for FrontendTls {
    type Error = InvalidSnapshot;

    fn try_from(t: pb::FrontendTls) -> convert::Result<FrontendTls> {
        FrontendTls::new(
            duration(t.handshake_timeout_nanos),
            Alpn::parse(&t.alpn).map_err(InvalidSnapshot::from)?,
            TlsVersion::from_proto(t.min_version, "minVersion")?,
            TlsVersion::from_proto(t.max_version, "maxVersion")?,
        )
        .map_err(InvalidSnapshot::from)
    }
}
