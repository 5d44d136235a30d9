//! `tollgate-cp certs`: the one-shot, offline step that makes the config stream's private CA
//! and certificates (the control plane's and each proxy's), laid out as Kubernetes TLS Secrets.
//!
//! Run again with the same directory, it keeps the CA and issues new leaf certificates: that is
//! rotation, with nothing for the proxies to re-trust.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A CA outlives the certificates it signs by this much.
const CA_VALIDITY: Duration = Duration::days(3650);

/// What to issue.
pub struct Plan {
    pub out: PathBuf,
    /// DNS names (or IPs) the control plane is reached by.
    pub server_names: Vec<String>,
    /// `NAME=GATEWAY[,GATEWAY...]`: a proxy identity and the gateways it may subscribe to.
    pub proxies: Vec<String>,
    pub validity: Duration,
}

/// Writes `ca.crt`/`ca.key` (kept if present), `control-plane/{tls.crt,tls.key,ca.crt}` and
/// `<proxy>/{tls.crt,tls.key,ca.crt}`; returns the directories written.
pub fn issue(plan: &Plan) -> anyhow::Result<Vec<PathBuf>> {
    if plan.server_names.is_empty() {
        bail!("give the control plane's name with --server (e.g. --server control-plane)");
    }
    let proxies = plan
        .proxies
        .iter()
        .map(|p| parse_proxy(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    fs::create_dir_all(&plan.out).with_context(|| format!("{}", plan.out.display()))?;
    let (ca_pem, issuer, ca_expires) = ca(&plan.out)?;
    let now = OffsetDateTime::now_utc();
    let expires = now
        .checked_add(plan.validity)
        .filter(|t| *t <= ca_expires)
        .with_context(|| {
            format!("--validity: the certificates would outlive the CA (valid until {ca_expires})")
        })?;

    let mut written = Vec::new();
    let mut leaf = |dir: &str,
                    common_name: &str,
                    names: &[String],
                    usage: ExtendedKeyUsagePurpose|
     -> anyhow::Result<()> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = now - Duration::minutes(5);
        params.not_after = expires;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let dir = plan.out.join(dir);
        fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        write(&dir.join("tls.crt"), &cert.pem(), false)?;
        write(&dir.join("tls.key"), &key.serialize_pem(), true)?;
        write(&dir.join("ca.crt"), &ca_pem, false)?;
        written.push(dir);
        Ok(())
    };
    leaf(
        "control-plane",
        &plan.server_names[0],
        &plan.server_names,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    for (name, gateways) in &proxies {
        leaf(name, name, gateways, ExtendedKeyUsagePurpose::ClientAuth)?;
    }
    Ok(written)
}

/// `NAME=GATEWAY[,GATEWAY...]`; the name becomes a directory, so it is a plain word.
fn parse_proxy(spec: &str) -> anyhow::Result<(String, Vec<String>)> {
    let Some((name, gateways)) = spec.split_once('=') else {
        bail!("--proxy {spec}: expected NAME=GATEWAY[,GATEWAY...]");
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s != "control-plane"
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
            && !s.starts_with('.')
    };
    let gateways: Vec<String> = gateways.split(',').map(str::to_string).collect();
    if !plain(name) || !gateways.iter().all(|g| plain(g)) {
        bail!(
            "--proxy {spec}: names are letters, digits, `-`, `.` and `_` (`control-plane` is taken)"
        );
    }
    Ok((name.to_string(), gateways))
}

/// The CA in `out` (made now if absent) and when it expires.
fn ca(out: &Path) -> anyhow::Result<(String, Issuer<'static, KeyPair>, OffsetDateTime)> {
    let (cert_path, key_path) = (out.join("ca.crt"), out.join("ca.key"));
    if key_path.exists() {
        let pem =
            fs::read_to_string(&cert_path).with_context(|| format!("{}", cert_path.display()))?;
        let key = KeyPair::from_pem(
            &fs::read_to_string(&key_path).with_context(|| format!("{}", key_path.display()))?,
        )
        .with_context(|| format!("{}", key_path.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&pem, key)
            .with_context(|| format!("{}", cert_path.display()))?;
        let expires = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .ok()
            .and_then(|(_, der)| {
                let cert = der.parse_x509().ok()?;
                OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok()
            })
            .with_context(|| format!("{}: not a PEM certificate", cert_path.display()))?;
        return Ok((pem, issuer, expires));
    }
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "Tollgate config-stream CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + CA_VALIDITY;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write(&key_path, &key.serialize_pem(), true)?;
    write(&cert_path, &cert.pem(), false)?;
    let expires = params.not_after;
    Ok((cert.pem(), Issuer::new(params, key), expires))
}

/// Writes `text` to `path`; a private key is readable by its owner only.
fn write(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mode = if private { 0o600 } else { 0o644 };
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("{}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("{}", path.display()))
}
