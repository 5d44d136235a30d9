//! `policies.backendTLS`: how the gateway's connections to a backend are secured (roots, a
//! client certificate, the name verified and sent as SNI, ALPN).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::tls::Alpn;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, path_string};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackendTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub root: Option<String>,
    pub hostname: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub insecure_host: bool,
    pub alpn: Option<Vec<String>>,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    pub key_exchange_groups: Option<Vec<String>>,
}

/// How much of the backend's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verification {
    /// Chain to the roots, and the name (or one of `subjectAltNames`).
    Full,
    /// `insecureHost`: the chain only, any name.
    InsecureHost,
    /// `insecure`: nothing.
    Insecure,
}

/// `backendTLS`: TLS to the backend; the same policy yields one client, built per apply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTls {
    /// PEM CA certificates trusted for the backend; `None` = the public web roots.
    pub root: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS (with `key`).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Name sent as SNI and verified; `None` = the backend's host.
    pub hostname: Option<String>,
    /// What is verified.
    pub verification: Verification,
    /// ALPN protocols offered; `None` = `http/1.1`.
    pub alpn: Option<Vec<String>>,
    /// Names accepted in the certificate instead of the hostname (DNS, IP or URI SANs).
    pub subject_alt_names: Vec<String>,
}

impl BackendTls {
    /// A client certificate comes with its key; names to verify need verification on.
    pub(crate) fn new(
        root: Option<PathBuf>,
        identity: (Option<PathBuf>, Option<PathBuf>),
        hostname: Option<String>,
        verification: Verification,
        alpn: Option<Vec<String>>,
        subject_alt_names: Vec<String>,
    ) -> Result<BackendTls, Vec<Invalid>> {
        let (cert, key) = identity;
        let mut problems = Vec::new();
        match (&cert, &key) {
            (Some(_), None) => problems.push(Invalid::at("key", "`cert` needs its `key`")),
            (None, Some(_)) => problems.push(Invalid::at("cert", "`key` needs its `cert`")),
            _ => {}
        }
        if verification != Verification::Full && !subject_alt_names.is_empty() {
            problems.push(Invalid::at(
                "subjectAltNames",
                "`subjectAltNames` are not checked when `insecure` or `insecureHost` is set",
            ));
        }
        if let Some(h) = &hostname
            && (h.is_empty()
                || h.parse::<http::uri::Authority>()
                    .map_or(true, |a| a.port().is_some() || a.host() != h))
        {
            problems.push(Invalid::at(
                "hostname",
                format!("`{h}` is not a hostname (no port, scheme or path)"),
            ));
        }
        if let Some(Err(unspoken)) = alpn.as_deref().map(Alpn::parse) {
            problems.extend(unspoken);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(BackendTls {
            root,
            cert,
            key,
            hostname,
            verification,
            alpn,
            subject_alt_names,
        })
    }
}

impl Validator<'_> {
    pub fn backend_tls(&mut self, raw: &RawBackendTls, path: &YamlPath) -> Option<BackendTls> {
        if raw.key_exchange_groups.is_some() {
            self.error(
                &path.key("keyExchangeGroups"),
                "`keyExchangeGroups` is not supported: rustls picks its safe defaults",
            );
        }
        let verification = match (raw.insecure, raw.insecure_host) {
            (true, true) => {
                self.error(
                    &path.key("insecureHost"),
                    "`insecure` already skips every check; keep one of `insecure` and `insecureHost`",
                );
                return None;
            }
            (true, false) => Verification::Insecure,
            (false, true) => Verification::InsecureHost,
            (false, false) => Verification::Full,
        };
        let built = BackendTls::new(
            raw.root.as_ref().map(PathBuf::from),
            (
                raw.cert.as_ref().map(PathBuf::from),
                raw.key.as_ref().map(PathBuf::from),
            ),
            raw.hostname.clone(),
            verification,
            raw.alpn.clone(),
            raw.subject_alt_names.clone(),
        );
        self.checked(built, path)
    }
}

impl From<&BackendTls> for pb::BackendTls {
    fn from(t: &BackendTls) -> Self {
        pb::BackendTls {
            root: t.root.as_deref().map(path_string),
            cert: t.cert.as_deref().map(path_string),
            key: t.key.as_deref().map(path_string),
            hostname: t.hostname.clone(),
            insecure: t.verification == Verification::Insecure,
            insecure_host: t.verification == Verification::InsecureHost,
            alpn: t.alpn.clone().unwrap_or_default(),
            subject_alt_names: t.subject_alt_names.clone(),
        }
    }
}

impl TryFrom<pb::BackendTls> for BackendTls {
    type Error = InvalidSnapshot;

    fn try_from(t: pb::BackendTls) -> convert::Result<BackendTls> {
        let verification = match (t.insecure, t.insecure_host) {
            (true, true) => return convert::invalid("insecureHost", "set with `insecure`"),
            (true, false) => Verification::Insecure,
            (false, true) => Verification::InsecureHost,
            (false, false) => Verification::Full,
        };
        BackendTls::new(
            t.root.map(PathBuf::from),
            (t.cert.map(PathBuf::from), t.key.map(PathBuf::from)),
            t.hostname,
            verification,
            (!t.alpn.is_empty()).then_some(t.alpn),
            t.subject_alt_names,
        )
        .map_err(InvalidSnapshot::from)
    }
}
