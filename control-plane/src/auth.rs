//! Who may open a config stream and for which gateways: a client certificate signed by
//! `--client-ca`, a bearer token from `--tokens-file`, or both. Without either, only an
//! explicit `--insecure` lets anyone in.
//!
//! A certificate's identity is its subject CN (else its first DNS SAN), and its DNS SANs
//! name the gateways it may subscribe to. A token's line names its identity and gateways.
//! Tokens are kept as SHA-256 digests and compared in constant time, every entry each time.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tollgate_shared::files;
use tonic::{Request, Status};

/// Which gateways a credential may subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gateways {
    All,
    Only(Vec<String>),
}

impl Gateways {
    pub fn allows(&self, gateway: &str) -> bool {
        match self {
            Gateways::All => true,
            Gateways::Only(names) => names.iter().any(|n| n == gateway),
        }
    }

    /// What both allow.
    fn and(self, other: Gateways) -> Gateways {
        match (self, other) {
            (Gateways::All, g) | (g, Gateways::All) => g,
            (Gateways::Only(a), Gateways::Only(b)) => {
                Gateways::Only(a.into_iter().filter(|n| b.contains(n)).collect())
            }
        }
    }
}

/// A caller as its credential names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `cert:CN`, `token:NAME`, both joined by `+`, or `anonymous` (insecure mode).
    pub name: String,
    pub gateways: Gateways,
}

struct TokenEntry {
    name: String,
    digest: [u8; 32],
    gateways: Gateways,
}

/// `--tokens-file`: one token per line, `NAME TOKEN GATEWAY[,GATEWAY...]` (`*` for every
/// gateway); blank lines and `#` comments are skipped.
pub struct Tokens(Vec<TokenEntry>);

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    pub fn load(path: &Path) -> anyhow::Result<Tokens> {
        let text = files::read_to_string(path, files::MAX_SECRET)
            .map_err(|e| anyhow::anyhow!("--tokens-file {}: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|e| anyhow::anyhow!("--tokens-file {}: {e}", path.display()))
    }

    /// The error names the line, never the token.
    fn parse(text: &str) -> anyhow::Result<Tokens> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, token, gateways] = fields[..] else {
                anyhow::bail!("line {}: expected `NAME TOKEN GATEWAY[,GATEWAY...]`", i + 1);
            };
            if token.len() < 16 {
                anyhow::bail!("line {}: the token is shorter than 16 characters", i + 1);
            }
            let gateways = match gateways {
                "*" => Gateways::All,
                list => Gateways::Only(list.split(',').map(str::to_string).collect()),
            };
            entries.push(TokenEntry {
                name: name.to_string(),
                digest: digest(token),
                gateways,
            });
        }
        if entries.is_empty() {
            anyhow::bail!("no tokens");
        }
        Ok(Tokens(entries))
    }

    /// The entry whose token is `presented`; every entry is compared, in constant time.
    fn find(&self, presented: &str) -> Option<&TokenEntry> {
        let presented = digest(presented);
        let mut found = None;
        for entry in &self.0 {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(entry);
            }
        }
        found
    }
}

/// What a stream must present.
pub struct Authenticator {
    /// A client certificate is required (the TLS layer verified it against `--client-ca`).
    pub client_certs: bool,
    pub tokens: Option<Tokens>,
}

impl Authenticator {
    /// Whether no credential is asked for (`--insecure`).
    pub fn is_open(&self) -> bool {
        !self.client_certs && self.tokens.is_none()
    }

    /// The caller's identity; `unauthenticated` when a required credential is missing or
    /// wrong (the message never repeats what was presented).
    pub fn identify<T>(&self, req: &Request<T>) -> Result<Identity, Status> {
        let mut parts: Vec<Identity> = Vec::new();
        if self.client_certs {
            let certs = req.peer_certs().ok_or_else(|| {
                Status::unauthenticated(
                    "a client certificate signed by the control plane's CA is required",
                )
            })?;
            let leaf = certs
                .first()
                .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
            parts.push(certificate_identity(leaf.as_ref())?);
        }
        if let Some(tokens) = &self.tokens {
            let presented = req
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| Status::unauthenticated("a bearer token is required"))?;
            let entry = tokens
                .find(presented)
                .ok_or_else(|| Status::unauthenticated("unknown token"))?;
            parts.push(Identity {
                name: format!("token:{}", entry.name),
                gateways: entry.gateways.clone(),
            });
        }
        Ok(parts
            .into_iter()
            .reduce(|a, b| Identity {
                name: format!("{}+{}", a.name, b.name),
                gateways: a.gateways.and(b.gateways),
            })
            .unwrap_or(Identity {
                name: "anonymous".into(),
                gateways: Gateways::All,
            }))
    }
}

/// `cert:CN` (else the first DNS SAN), allowed the gateways its DNS SANs name.
fn certificate_identity(der: &[u8]) -> Result<Identity, Status> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|_| Status::unauthenticated("unreadable client certificate"))?;
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let name = cn
        .or_else(|| sans.first().cloned())
        .ok_or_else(|| Status::unauthenticated("the client certificate names no CN or DNS SAN"))?;
    Ok(Identity {
        name: format!("cert:{name}"),
        gateways: Gateways::Only(sans),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_names_and_gateways() {
        let tokens = Tokens::parse(
            "# comment\nedge edge-token-0123456789 edge,staging\nops ops-token-0123456789abc *\n",
        )
        .unwrap();
        let edge = tokens.find("edge-token-0123456789").unwrap();
        assert_eq!(edge.name, "edge");
        assert!(edge.gateways.allows("staging") && !edge.gateways.allows("prod"));
        assert!(
            tokens
                .find("ops-token-0123456789abc")
                .unwrap()
                .gateways
                .allows("x")
        );
        assert!(tokens.find("edge-token-012345678").is_none());
    }

    #[test]
    fn malformed_lines_are_named_without_the_token() {
        let err = Tokens::parse("a short-tok edge\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("line 1") && !err.contains("short-tok"),
            "{err}"
        );
        let err = Tokens::parse("a b\n").err().unwrap().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn both_credentials_allow_what_both_allow() {
        let a = Gateways::Only(vec!["a".into(), "b".into()]);
        assert_eq!(
            a.clone().and(Gateways::Only(vec!["b".into()])),
            Gateways::Only(vec!["b".into()])
        );
        assert_eq!(Gateways::All.and(a.clone()), a);
    }
}
