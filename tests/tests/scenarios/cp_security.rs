//! A control plane only its own proxies can talk to (issue 13): credentials on the config
//! stream, gateways per credential, bounded state, proxies that refuse plaintext and pushes
//! outside their allow-list, secrets that travel as references. Certificates are made here.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use prost::Message;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::Value;
use tempfile::TempDir;
use tollgate_shared::proto::v1 as pb;
use tollgate_shared::proto::v1::config_stream_client::ConfigStreamClient;
use tollgate_tests::control_plane::hello;
use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::{ControlPlane, FakeUpstream, Proxy, eventually, free_port};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A test CA and the files of the certificates it issued.
struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, "tollgate test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca,
        };
        std::fs::write(pki.ca_path(), pki.ca.pem()).unwrap();
        pki
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// Issues a certificate for `cn` with DNS/IP `sans`: (cert file, key file).
    fn issue(&self, cn: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_path, key_path) = (
            self.dir.path().join(format!("{cn}.pem")),
            self.dir.path().join(format!("{cn}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// An HTTPS client trusting this CA.
    fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem().as_bytes()).unwrap();
        tollgate_tests::http_builder()
            .add_root_certificate(ca)
            .build()
            .unwrap()
    }

    /// Flags for a control plane serving TLS with a certificate for 127.0.0.1.
    fn server_flags(&self) -> Vec<String> {
        let (cert, key) = self.issue("control-plane", &["localhost", "127.0.0.1"]);
        vec![
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ]
    }
}

/// What a raw stream client presents.
#[derive(Default)]
struct Creds {
    ca: Option<String>,
    cert: Option<(PathBuf, PathBuf)>,
    token: Option<String>,
}

type Subscription = (
    tokio::sync::mpsc::Sender<pb::ProxyMessage>,
    tonic::Streaming<pb::ServerMessage>,
);

/// Opens a stream and says hello; a connection failure is an `unavailable` status.
async fn subscribe(
    url: &str,
    creds: &Creds,
    gateway: &str,
    node: &str,
) -> Result<Subscription, tonic::Status> {
    let mut endpoint = Endpoint::from_shared(url.to_string()).unwrap();
    if let Some(ca) = &creds.ca {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some((cert, key)) = &creds.cert {
            tls = tls.identity(Identity::from_pem(
                std::fs::read(cert).unwrap(),
                std::fs::read(key).unwrap(),
            ));
        }
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("{e:?}")))?;
    let mut client = ConfigStreamClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(hello(node, gateway, "test")).await.unwrap();
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    if let Some(token) = &creds.token {
        let value = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    let inbound = client.stream(request).await?.into_inner();
    Ok((tx, inbound))
}

/// The first push on a stream.
async fn first_push(inbound: &mut tonic::Streaming<pb::ServerMessage>) -> pb::Push {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .expect("a push within 10s")
            .expect("stream open")
            .expect("a message");
        if let Some(pb::server_message::Kind::Push(p)) = msg.kind {
            return p;
        }
    }
}

fn gateway_config(port: u16, tag: &str) -> String {
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: api\n      policies:\n        requestHeaderModifier: {{set: [{{name: x-tag, value: \"{tag}\"}}]}}\n      backends: [{{host: \"127.0.0.1:9\"}}]\n"
    )
}

fn tokens_file(dir: &TempDir, lines: &str) -> String {
    let path = dir.path().join("tokens");
    std::fs::write(&path, lines).unwrap();
    path.display().to_string()
}

const TOKEN_A: &str = "token-for-gateway-a-0123456789";
const TOKEN_A2: &str = "other-token-for-gateway-a-0123";
const TOKEN_B: &str = "token-for-gateway-b-0123456789";

/// The control plane's `/api/proxies`, over TLS when it has a certificate from `pki`.
async fn proxies(cp: &ControlPlane, pki: Option<&Pki>) -> Vec<Value> {
    let v = match pki {
        None => cp.json("/api/proxies").await,
        Some(pki) => pki
            .client()
            .get(format!("https://127.0.0.1:{}/api/proxies", cp.admin.port()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    };
    v["proxies"].as_array().unwrap().clone()
}

/// Without a certificate or a token the stream is refused before any snapshot is sent, and
/// nothing is recorded; the right credential gets the snapshot.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_without_credentials_gets_no_snapshot() {
    let pki = Pki::new();
    let tokens = tempfile::tempdir().unwrap();
    let mut flags = pki.server_flags();
    flags.extend(["--client-ca".into(), pki.ca_path().display().to_string()]);
    let files = [("a.yaml", gateway_config(free_port(), "a"))];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let mtls = ControlPlane::start_with(&files, &flags, &[]).await;
    let token_flags = {
        let mut f = pki.server_flags();
        f.extend([
            "--tokens-file".into(),
            tokens_file(&tokens, &format!("a-proxies {TOKEN_A} a\n")),
        ]);
        f
    };
    let by_token = ControlPlane::start_with(&files, &token_flags, &[]).await;
    let url = |cp: &ControlPlane| format!("https://127.0.0.1:{}", cp.grpc.port());
    let ca = Some(pki.ca_pem());

    let plaintext = subscribe(&mtls.url(), &Creds::default(), "a", "n").await;
    assert!(plaintext.is_err(), "a plaintext client is refused");
    let no_cert = Creds {
        ca: ca.clone(),
        ..Default::default()
    };
    let refused = subscribe(&url(&mtls), &no_cert, "a", "n").await;
    assert!(refused.is_err(), "no client certificate");
    let stranger = Pki::new();
    let foreign = Creds {
        ca: ca.clone(),
        cert: Some(stranger.issue("a-proxies", &["a"])),
        ..Default::default()
    };
    assert!(
        subscribe(&url(&mtls), &foreign, "a", "n").await.is_err(),
        "a certificate from another CA"
    );
    for token in [None, Some("wrong-token-0123456789abcdef".to_string())] {
        let creds = Creds {
            ca: ca.clone(),
            token,
            ..Default::default()
        };
        let status = subscribe(&url(&by_token), &creds, "a", "n")
            .await
            .expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert!(!status.message().contains("wrong-token"), "{status:?}");
    }
    assert!(proxies(&mtls, Some(&pki)).await.is_empty());
    assert!(proxies(&by_token, Some(&pki)).await.is_empty());

    let good = Creds {
        ca: ca.clone(),
        cert: Some(pki.issue("a-proxies", &["a"])),
        ..Default::default()
    };
    let (_tx, mut inbound) = subscribe(&url(&mtls), &good, "a", "n").await.unwrap();
    first_push(&mut inbound).await;
    let good = Creds {
        ca,
        token: Some(TOKEN_A.into()),
        ..Default::default()
    };
    let (_tx, mut inbound) = subscribe(&url(&by_token), &good, "a", "n").await.unwrap();
    first_push(&mut inbound).await;
    assert_eq!(
        proxies(&mtls, Some(&pki)).await[0]["identity"],
        "cert:a-proxies"
    );
    assert_eq!(
        proxies(&by_token, Some(&pki)).await[0]["identity"],
        "token:a-proxies"
    );
}

/// A credential for gateway `a` cannot subscribe to `b` (certificate SANs and token lines
/// alike); with both credentials required, each must allow the gateway.
#[tokio::test(flavor = "multi_thread")]
async fn a_credential_for_one_gateway_cannot_subscribe_to_another() {
    let pki = Pki::new();
    let tokens = tempfile::tempdir().unwrap();
    let mut flags = pki.server_flags();
    flags.extend([
        "--client-ca".into(),
        pki.ca_path().display().to_string(),
        "--tokens-file".into(),
        tokens_file(
            &tokens,
            &format!("a-proxies {TOKEN_A} a\nb-proxies {TOKEN_B} b\n"),
        ),
    ]);
    let (a, b) = (
        gateway_config(free_port(), "a"),
        gateway_config(free_port(), "b"),
    );
    let cp = ControlPlane::start_with(&[("a.yaml", &a), ("b.yaml", &b)], &flags, &[]).await;
    let url = format!("https://127.0.0.1:{}", cp.grpc.port());
    let creds = |cert: (PathBuf, PathBuf), token: &str| Creds {
        ca: Some(pki.ca_pem()),
        cert: Some(cert),
        token: Some(token.into()),
    };
    let cert_a = pki.issue("a-proxies", &["a"]);
    for (creds, gateway) in [
        (creds(cert_a.clone(), TOKEN_A), "b"),
        (creds(cert_a.clone(), TOKEN_B), "b"),
        (creds(pki.issue("b-proxies", &["b"]), TOKEN_A), "b"),
    ] {
        let status = subscribe(&url, &creds, gateway, "n")
            .await
            .expect_err("refused");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains("`b`"), "{status:?}");
    }
    let (_tx, mut inbound) = subscribe(&url, &creds(cert_a, TOKEN_A), "a", "n")
        .await
        .unwrap();
    first_push(&mut inbound).await;
    let list = proxies(&cp, Some(&pki)).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["identity"], "cert:a-proxies+token:a-proxies");
}

/// The same node id under another credential is recorded apart and cannot end the first
/// stream; the same credential and node id replaces it; per-credential streams are bounded.
#[tokio::test(flavor = "multi_thread")]
async fn identity_spoofing_is_recorded_apart_and_replicas_are_bounded() {
    let pki = Pki::new();
    let tokens = tempfile::tempdir().unwrap();
    let mut flags = pki.server_flags();
    flags.extend([
        "--tokens-file".into(),
        tokens_file(
            &tokens,
            &format!("real {TOKEN_A} a\nspoofer {TOKEN_A2} a\n"),
        ),
        "--max-streams-per-identity".into(),
        "2".into(),
    ]);
    let config = gateway_config(free_port(), "a");
    let cp = ControlPlane::start_with(&[("a.yaml", &config)], &flags, &[]).await;
    let url = format!("https://127.0.0.1:{}", cp.grpc.port());
    let creds = |token: &str| Creds {
        ca: Some(pki.ca_pem()),
        token: Some(token.into()),
        ..Default::default()
    };
    let (_real_tx, mut real) = subscribe(&url, &creds(TOKEN_A), "a", "proxy-1")
        .await
        .unwrap();
    first_push(&mut real).await;
    let (_spoof_tx, mut spoof) = subscribe(&url, &creds(TOKEN_A2), "a", "proxy-1")
        .await
        .unwrap();
    first_push(&mut spoof).await;
    let list = proxies(&cp, Some(&pki)).await;
    let mut identities: Vec<(String, String)> = list
        .iter()
        .map(|p| {
            (
                p["identity"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    identities.sort();
    assert_eq!(
        identities,
        [
            ("token:real".to_string(), "STALE".to_string()),
            ("token:spoofer".to_string(), "STALE".to_string())
        ]
    );

    // Same credential, same node id: the newer stream replaces the older one.
    let (_again_tx, mut again) = subscribe(&url, &creds(TOKEN_A), "a", "proxy-1")
        .await
        .unwrap();
    first_push(&mut again).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = real.message().await {}
    })
    .await;
    assert!(ended.is_ok(), "the replaced stream ends");
    assert_eq!(proxies(&cp, Some(&pki)).await.len(), 2);

    // Replicas share a credential up to --max-streams-per-identity.
    let (_second_tx, _second) = subscribe(&url, &creds(TOKEN_A), "a", "proxy-2")
        .await
        .unwrap();
    let status = subscribe(&url, &creds(TOKEN_A), "a", "proxy-3")
        .await
        .expect_err("over the bound");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("--max-streams-per-identity"),
        "{status:?}"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Made-up gateway names are refused with a status naming them and leave nothing behind:
/// the registry stays empty and the control plane's memory flat.
#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_to_unknown_gateways_are_refused_and_nothing_is_kept() {
    let config = gateway_config(free_port(), "a");
    let cp = ControlPlane::start(&[("a.yaml", &config)]).await;
    let pid = cp.pid().unwrap();
    let status = subscribe(&cp.url(), &Creds::default(), "nope", "n")
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(status.message().contains("`nope`"), "{status:?}");
    let before = rss_kib(pid);
    let channel = Endpoint::from_shared(cp.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let long = "x".repeat(200);
    for i in 0..3000 {
        let mut client = ConfigStreamClient::new(channel.clone());
        let hello = hello(&format!("n{i}"), &format!("{long}-{i}"), "test");
        let refused = client.stream(tokio_stream::iter([hello])).await;
        assert!(refused.is_err(), "made-up gateway {i} was accepted");
    }
    let after = rss_kib(pid);
    println!("control plane RSS: {before} KiB before, {after} KiB after 3,000 made-up gateways");
    assert!(after < before + 16 * 1024, "{before} -> {after} KiB");
    assert!(proxies(&cp, None).await.is_empty());
    let gateways = cp.json("/api/gateways").await;
    assert_eq!(gateways["gateways"].as_array().unwrap().len(), 1);

    // A hello's build string is bounded like its names (records outlive their streams).
    let mut client = ConfigStreamClient::new(channel);
    let long_build = hello("n", "a", &"b".repeat(1_000_000));
    let status = client
        .stream(tokio_stream::iter([long_build]))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("hello.build"), "{status:?}");
}

/// A proxy refuses an `http://` control plane without `--insecure-control-plane`, and an
/// `https://` one is never tried in plaintext.
#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_refuses_plaintext_and_never_downgrades_https() {
    let out = tokio::process::Command::new(tollgate_tests::binary("tollgate"))
        .args(["--control-plane", "http://127.0.0.1:9", "--gateway", "a"])
        .args(tollgate_tests::SIDE_LISTENERS_OFF)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--insecure-control-plane"), "{stderr}");

    let pki = Pki::new();
    let config = gateway_config(free_port(), "a");
    let cp = ControlPlane::start(&[("a.yaml", &config)]).await;
    let https = format!("https://127.0.0.1:{}", cp.grpc.port());
    let proxy = Proxy::spawn(ProxyOptions {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 40)),
        control_plane: Some((&https, "a")),
        args: vec![
            "--control-plane-ca".into(),
            pki.ca_path().display().to_string(),
        ],
        ..Default::default()
    });
    let ready = format!("http://{}/healthz/ready", proxy.readiness);
    eventually(Duration::from_secs(10), || async {
        match tollgate_tests::get(&ready).await {
            Ok(r) if r.status() == 503 && proxy.log().contains("config stream lost") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    tollgate_tests::settle(Duration::from_secs(1)).await;
    assert!(
        proxies(&cp, None).await.is_empty(),
        "no plaintext stream reached it"
    );
}

/// A real proxy over mutual TLS and a token: ready and serving; the admin API speaks TLS
/// too, checks `Host` and wants its token.
#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_syncs_over_mutual_tls_and_the_admin_api_is_guarded() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let admin_token = dir.path().join("admin-token");
    std::fs::write(&admin_token, "admin-token-0123456789\n").unwrap();
    let mut flags = pki.server_flags();
    flags.extend([
        "--client-ca".into(),
        pki.ca_path().display().to_string(),
        "--tokens-file".into(),
        tokens_file(&dir, &format!("edge {TOKEN_A} edge\n")),
        "--admin-token-file".into(),
        admin_token.display().to_string(),
    ]);
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = super::simple_config(port, &up.authority());
    let cp = ControlPlane::start_with(&[("edge.yaml", &config)], &flags, &[]).await;
    let (cert, key) = pki.issue("edge-proxies", &["edge"]);
    let proxy_token = dir.path().join("proxy-token");
    std::fs::write(&proxy_token, TOKEN_A).unwrap();
    let https = format!("https://127.0.0.1:{}", cp.grpc.port());
    let path = |p: &PathBuf| p.display().to_string();
    let proxy = Proxy::spawn(ProxyOptions {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 41)),
        control_plane: Some((&https, "edge")),
        args: vec![
            "--control-plane-ca".into(),
            path(&pki.ca_path()),
            "--control-plane-cert".into(),
            path(&cert),
            "--control-plane-key".into(),
            path(&key),
            "--control-plane-token-file".into(),
            path(&proxy_token),
        ],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let r = tollgate_tests::get(proxy.url(port, "/")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!proxy.log().contains(TOKEN_A), "the token is never logged");

    let client = pki.client();
    let admin = format!("https://127.0.0.1:{}", cp.admin.port());
    let get = |path: &str, host: Option<&str>, token: Option<&str>| {
        let mut req = client.get(format!("{admin}{path}"));
        if let Some(h) = host {
            req = req.header("host", h);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(get("/api/proxies", None, None).await.unwrap().status(), 401);
    let token = Some("admin-token-0123456789");
    let r = get("/api/proxies", Some("evil.example"), token)
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let list: Value = get("/api/proxies", None, token)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["proxies"][0]["identity"], "cert:edge-proxies+token:edge",
        "{list}"
    );
    assert_eq!(list["proxies"][0]["status"], "SYNCED", "{list}");
    assert_eq!(get("/healthz", None, None).await.unwrap().status(), 200);
}

/// A pushed stdio command or variable outside the proxy's allow-list is NACKed with the
/// field named and not applied; allowed ones are applied.
#[tokio::test(flavor = "multi_thread")]
async fn pushed_commands_and_variables_outside_the_allow_list_are_nacked() {
    let port = free_port();
    let stdio = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: shell\n            stdio: {{cmd: /bin/sh, args: [\"-c\", \"touch /tmp/pwned\"]}}\n"
    );
    let variable = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - policies:\n        backendAuth: {{key: \"$PROXY_ONLY_SECRET\"}}\n      backends: [{{host: \"127.0.0.1:9\"}}]\n"
    );
    let inherit = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: t\n            stdio: {{cmd: /usr/bin/true, inheritEnv: [PROXY_ONLY_SECRET]}}\n"
    );
    let cp = ControlPlane::start(&[
        ("stdio.yaml", &stdio),
        ("variable.yaml", &variable),
        ("inherit.yaml", &inherit),
    ])
    .await;
    let url = cp.url();
    let cases = [
        (
            "stdio",
            50,
            "stdio.cmd: command `/bin/sh` is not allowed",
            vec![],
        ),
        (
            "variable",
            51,
            "policies.backendAuth.key: variable `PROXY_ONLY_SECRET` is not allowed",
            vec![],
        ),
        (
            "inherit",
            52,
            "stdio.inheritEnv: variable `PROXY_ONLY_SECRET` is not allowed",
            vec!["--allow-command".to_string(), "/usr/bin/true".to_string()],
        ),
    ];
    let mut running = Vec::new();
    for (gateway, ip, want, args) in cases {
        let proxy = Proxy::spawn(ProxyOptions {
            ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, ip)),
            env: vec![("PROXY_ONLY_SECRET", "sk-proxy-only")],
            control_plane: Some((&url, gateway)),
            args,
            ..Default::default()
        });
        running.push((proxy, gateway, want));
    }
    for (proxy, gateway, want) in &running {
        eventually(Duration::from_secs(10), || async {
            let list = proxies(&cp, None).await;
            let me = list.iter().find(|p| p["gateway"] == *gateway);
            match me.and_then(|p| p["lastNack"].as_str()) {
                Some(nack) if nack.contains(want) && nack.contains("binds[0]") => Ok(()),
                _ => Err(format!("{list:?}")),
            }
        })
        .await;
        let ready = format!("http://{}/healthz/ready", proxy.readiness);
        let r = tollgate_tests::get(&ready).await.unwrap();
        assert_eq!(r.status(), 503, "{gateway}: nothing was applied");
    }
    assert!(!std::path::Path::new("/tmp/pwned").exists());

    let allowed = Proxy::spawn(ProxyOptions {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)),
        env: vec![("PROXY_ONLY_SECRET", "sk-proxy-only")],
        control_plane: Some((&url, "variable")),
        args: vec!["--allow-env".into(), "PROXY_ONLY_SECRET".into()],
        ..Default::default()
    });
    allowed.wait_ready().await;
}

/// Secrets travel as `$VAR` references: the push, the control plane's dump and the proxy's
/// dump carry no value, though the control plane's environment has it; `check` warns about
/// a literal one.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_travel_as_references() {
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - policies:\n        backendAuth: {{key: \"$CP_SECRET\"}}\n        requestHeaderModifier: {{set: [{{name: x-api-key, value: \"${{CP_SECRET}}\"}}]}}\n      backends: [{{host: \"127.0.0.1:9\"}}]\n    - name: tools\n      matches: [{{path: {{pathPrefix: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: remote\n            mcp: {{host: \"http://127.0.0.1:9/mcp?token=${{CP_SECRET}}\"}}\n          - name: local\n            stdio: {{cmd: /usr/bin/true, args: [\"--token=${{CP_SECRET}}\"]}}\n"
    );
    let cp = ControlPlane::start_with(
        &[("s.yaml", &config)],
        &["--insecure".into()],
        &[("CP_SECRET", "sk-cp-side-value")],
    )
    .await;
    let (_tx, mut inbound) = subscribe(&cp.url(), &Creds::default(), "s", "n")
        .await
        .unwrap();
    let push = first_push(&mut inbound).await;
    let wire = pb::Config::decode(push.config.as_ref()).unwrap();
    let text = format!("{wire:?}");
    assert!(text.contains("$CP_SECRET"), "{text}");
    assert!(text.contains("token=${CP_SECRET}"), "{text}");
    assert!(text.contains("--token=${CP_SECRET}"), "{text}");
    assert!(!text.contains("sk-cp-side-value"), "{text}");
    let dump = cp.json("/api/gateways/s/config").await.to_string();
    assert!(!dump.contains("sk-cp-side-value"), "{dump}");

    let proxy = Proxy::spawn(ProxyOptions {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 54)),
        env: vec![("CP_SECRET", "sk-proxy-side-value")],
        control_plane: Some((&cp.url(), "s")),
        args: vec![
            "--allow-env".into(),
            "CP_SECRET".into(),
            "--allow-command".into(),
            "/usr/bin/true".into(),
        ],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let dump = proxy.admin_json("/api/config").await.to_string();
    assert!(dump.contains("$CP_SECRET"), "{dump}");
    assert!(!dump.contains("-side-value"), "{dump}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("literal.yaml");
    std::fs::write(
        &file,
        config
            .replace("\"$CP_SECRET\"", "\"sk-literal-in-file\"")
            .replace("?token=${CP_SECRET}", "?token=literal-url-token")
            .replace("--token=${CP_SECRET}", "--token=literal-arg-token"),
    )
    .unwrap();
    for (bin, args) in [
        ("tollgate", vec!["check".to_string(), "-f".to_string()]),
        ("tollgate-cp", vec!["check".to_string()]),
    ] {
        let out = std::process::Command::new(tollgate_tests::binary(bin))
            .args(&args)
            .arg(&file)
            .env("CP_SECRET", "x")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{bin}: {stderr}");
        assert!(
            stderr.contains("policies.backendAuth.key: a credential is written literally"),
            "{bin}: {stderr}"
        );
        assert!(
            stderr.contains("mcp.targets[0].mcp.host: a credential is written literally"),
            "{bin}: {stderr}"
        );
        assert!(!stderr.contains("sk-literal-in-file"), "{bin}: {stderr}");
        assert!(
            stderr.contains("stdio.args[0]: a credential is written literally"),
            "{bin}: {stderr}"
        );
        assert!(!stderr.contains("literal-url-token"), "{bin}: {stderr}");
        assert!(!stderr.contains("literal-arg-token"), "{bin}: {stderr}");
    }
}

/// Point 7: `tollgate-cp certs` (the deploy's one-shot step) issues what a control plane and a
/// proxy sync with over mutual TLS; run again, it keeps the CA and renews the certificates.
#[tokio::test(flavor = "multi_thread")]
async fn the_certs_step_issues_a_working_pki_and_rotates_under_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = |extra: &[&str]| {
        let out = std::process::Command::new(tollgate_tests::binary("tollgate-cp"))
            .args(["certs", "--out"])
            .arg(dir.path())
            .args(["--server", "127.0.0.1", "--proxy", "edge-proxies=edge"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    certs(&[]);
    let read = |p: &str| std::fs::read(dir.path().join(p)).unwrap();
    let (ca, proxy_cert) = (read("ca.crt"), read("edge-proxies/tls.crt"));
    assert_eq!(read("edge-proxies/ca.crt"), ca);
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "control-plane/tls.key", "edge-proxies/tls.key"] {
        let mode = std::fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{key} is private");
    }
    certs(&[]);
    assert_eq!(read("ca.crt"), ca, "the CA is kept");
    assert_ne!(
        read("edge-proxies/tls.crt"),
        proxy_cert,
        "the certificate is renewed"
    );

    let path = |p: &str| dir.path().join(p).display().to_string();
    let flags = [
        "--tls-cert".to_string(),
        path("control-plane/tls.crt"),
        "--tls-key".into(),
        path("control-plane/tls.key"),
        "--client-ca".into(),
        path("ca.crt"),
    ];
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let config = super::simple_config(port, &up.authority());
    let cp = ControlPlane::start_with(&[("edge.yaml", &config)], &flags, &[]).await;
    let https = format!("https://127.0.0.1:{}", cp.grpc.port());
    let proxy = Proxy::spawn(ProxyOptions {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 42)),
        control_plane: Some((&https, "edge")),
        args: vec![
            "--control-plane-ca".into(),
            path("edge-proxies/ca.crt"),
            "--control-plane-cert".into(),
            path("edge-proxies/tls.crt"),
            "--control-plane-key".into(),
            path("edge-proxies/tls.key"),
        ],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let r = tollgate_tests::get(proxy.url(port, "/")).await.unwrap();
    assert_eq!(r.status(), 200);

    // Certificates never outlive their CA.
    let out = std::process::Command::new(tollgate_tests::binary("tollgate-cp"))
        .args(["certs", "--out"])
        .arg(dir.path())
        .args(["--server", "cp", "--validity", "100000years"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("would outlive the CA"));

    // A name that would escape the output directory is refused.
    let out = std::process::Command::new(tollgate_tests::binary("tollgate-cp"))
        .args(["certs", "--out"])
        .arg(dir.path())
        .args(["--server", "cp", "--proxy", "../x=edge"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--proxy ../x=edge"));
}
