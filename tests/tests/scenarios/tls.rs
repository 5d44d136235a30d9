//! TLS: HTTPS listeners (SNI, client certificates and their identity in CEL, renewal on disk
//! under load, a broken certificate on reload), `backendTLS` to HTTPS upstreams (private CA,
//! mutual TLS, a wrong name refused, `insecure`, LLM providers), and agentgateway's own `tls`
//! example. Every certificate is made here, at test time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tempfile::TempDir;
use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::tls::{Issued, TestCa, https_client, peer_certificate, server_config};
use tollgate_tests::{FakeUpstream, Proxy, eventually, free_port};

/// A temp dir of PEM files named in configs.
struct Files(TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// Writes `issued` as `<name>.pem` and `<name>-key.pem`.
    fn pair(&self, name: &str, issued: &Issued) -> (String, String) {
        let (cert, key) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}-key.pem")),
        );
        issued.write(&cert, &key);
        (cert.display().to_string(), key.display().to_string())
    }

    fn ca(&self, name: &str, ca: &TestCa) -> String {
        let path = self.path(&format!("{name}.pem"));
        ca.write(&path);
        path.display().to_string()
    }
}

fn https_url(port: u16, host: &str, path: &str) -> String {
    format!("https://{host}:{port}{path}")
}

/// One HTTPS listener to `upstream` with `tls` (a YAML flow map) and optional config extras.
fn https_config(port: u16, tls: &str, upstream: &str, extra: &str) -> String {
    format!(
        "{extra}binds:\n- port: {port}\n  listeners:\n  - name: secure\n    protocol: HTTPS\n    tls: {tls}\n    routes:\n    - name: all\n      backends:\n      - host: {upstream}\n"
    )
}

/// A test CA, its `localhost` certificate (serial 1) on disk and an upstream: the start of the
/// tests that serve one HTTPS listener.
struct Localhost {
    ca: TestCa,
    files: Files,
    issued: Issued,
    cert: String,
    key: String,
    up: FakeUpstream,
    port: u16,
}

impl Localhost {
    async fn new() -> Localhost {
        let ca = TestCa::new("ca");
        let files = Files::new();
        let issued = ca.issue("localhost", &["localhost"], 1);
        let (cert, key) = files.pair("server", &issued);
        Localhost {
            ca,
            files,
            issued,
            cert,
            key,
            up: FakeUpstream::start("u").await,
            port: free_port(),
        }
    }

    /// The HTTPS listener's config with this certificate file and key file.
    fn config(&self, cert: &str, key: &str) -> String {
        https_config(
            self.port,
            &format!("{{cert: {cert}, key: {key}}}"),
            &self.up.authority(),
            "",
        )
    }
}

#[tokio::test]
async fn https_listener_serves_a_client_trusting_the_ca() {
    let ca = TestCa::new("test ca");
    let files = Files::new();
    let (cert, key) = files.pair(
        "server",
        &ca.issue("localhost", &["localhost", "127.0.0.1"], 1),
    );
    let up = FakeUpstream::start("plain").await;
    let port = free_port();
    let tls = format!("{{cert: {cert}, key: {key}, minTLSVersion: TLS_V1_3}}");
    let proxy = Proxy::start(&https_config(port, &tls, &up.authority(), "")).await;
    let client = https_client(&ca.pem, None).build().unwrap();
    let resp = client
        .get(https_url(port, "localhost", "/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/hello");
    // ALPN offers h2 (and HTTP/1.1).
    let mut alpn = tollgate_tests::tls::client_config(&ca.pem, None);
    alpn.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(alpn))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // Plain HTTP on the HTTPS port gets no answer.
    assert!(
        tollgate_tests::get(proxy.url(port, "/hello"))
            .await
            .is_err()
    );
    // TLS 1.2 is below the listener's minimum.
    let tls12 = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(tollgate_tests::tls::roots(&ca.pem))
    .with_no_client_auth();
    let old = tollgate_tests::http_builder()
        .tls_backend_preconfigured(tls12)
        .build()
        .unwrap();
    assert!(
        old.get(https_url(port, "localhost", "/"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn client_certificates_are_required_and_their_identity_reaches_cel() {
    let ca = TestCa::new("server ca");
    let clients = TestCa::new("clients ca");
    let files = Files::new();
    let (cert, key) = files.pair("server", &ca.issue("localhost", &["localhost"], 1));
    let root = files.ca("clients", &clients);
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let tls = format!("{{cert: {cert}, key: {key}, root: {root}}}");
    let logging = "config:\n  logging:\n    format: json\n    fields:\n      add: {client_subject: source.subject, client_issuer: source.issuer, client_sans: source.subjectAltNames}\n";
    let proxy = Proxy::start(&https_config(port, &tls, &up.authority(), logging)).await;
    let url = https_url(port, "localhost", "/who");

    // No certificate, or one from another CA: no request reaches the upstream.
    let anonymous = https_client(&ca.pem, None).build().unwrap();
    assert!(anonymous.get(&url).send().await.is_err());
    let stranger = TestCa::new("stranger").issue("mallory", &["spiffe://evil/m"], 9);
    let forged = https_client(&ca.pem, Some(&stranger)).build().unwrap();
    assert!(forged.get(&url).send().await.is_err());
    assert!(up.requests().is_empty());

    let alice = clients.issue(
        "alice",
        &["spiffe://example.org/alice", "alice.example.org"],
        2,
    );
    let client = https_client(&ca.pem, Some(&alice)).build().unwrap();
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let line = eventually(Duration::from_secs(5), || async {
        proxy
            .access_log()
            .lines()
            .find(|l| l.contains("client_subject"))
            .map(str::to_string)
            .ok_or_else(|| format!("no access log line; log:\n{}", proxy.log()))
    })
    .await;
    let record: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["client_subject"], "CN=alice", "{line}");
    assert_eq!(record["client_issuer"], "CN=clients ca", "{line}");
    assert_eq!(
        record["client_sans"],
        serde_json::json!(["spiffe://example.org/alice", "alice.example.org"]),
        "{line}"
    );

    // The client CA file renewed on disk: new connections chain to the new roots only.
    let successor = TestCa::new("clients ca 2");
    successor.write(std::path::Path::new(&root));
    let bob = successor.issue("bob", &["bob.example.org"], 3);
    let bob_client = https_client(&ca.pem, Some(&bob)).build().unwrap();
    eventually(Duration::from_secs(10), || async {
        match bob_client.get(&url).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let alice_again = https_client(&ca.pem, Some(&alice)).build().unwrap();
    assert!(
        alice_again.get(&url).send().await.is_err(),
        "the old CA is gone"
    );
    // A broken CA file keeps the last good roots.
    std::fs::write(&root, "not a certificate").unwrap();
    proxy.wait_log("renewed certificate not used", 0).await;
    let bob_again = https_client(&ca.pem, Some(&bob)).build().unwrap();
    assert_eq!(bob_again.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn sni_picks_the_listener_and_the_host_header_cannot_leave_it() {
    let ca = TestCa::new("ca");
    let clients = TestCa::new("clients");
    let files = Files::new();
    let api = ca.issue("api.test", &["api.test"], 10);
    let wild = ca.issue("*.apps.test", &["*.apps.test"], 11);
    let (api_cert, api_key) = files.pair("api", &api);
    let (wild_cert, wild_key) = files.pair("wild", &wild);
    let root = files.ca("clients", &clients);
    let (up_api, up_apps) = (
        FakeUpstream::start("api").await,
        FakeUpstream::start("apps").await,
    );
    let port = free_port();
    // `api.test` requires a client certificate; `*.apps.test` does not.
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - name: api\n    hostname: api.test\n    protocol: HTTPS\n    tls: {{cert: {api_cert}, key: {api_key}, root: {root}}}\n    routes:\n    - backends:\n      - host: {}\n  - name: apps\n    hostname: '*.apps.test'\n    protocol: HTTPS\n    tls: {{cert: {wild_cert}, key: {wild_key}}}\n    routes:\n    - backends:\n      - host: {}\n",
        up_api.authority(),
        up_apps.authority()
    );
    let _proxy = Proxy::start(&config).await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let resolve = |b: reqwest::ClientBuilder| {
        b.resolve("api.test", addr)
            .resolve("one.apps.test", addr)
            .build()
            .unwrap()
    };
    let client = resolve(https_client(
        &ca.pem,
        Some(&clients.issue("c", &["c.test"], 3)),
    ));
    let resp = client
        .get(https_url(port, "api.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_certificate(&resp), api.der);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["upstream"],
        "api"
    );
    let resp = client
        .get(https_url(port, "one.apps.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_certificate(&resp), wild.der);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["upstream"],
        "apps"
    );

    // A handshake for the open listener with `Host: api.test` stays on that listener: the
    // client-certificate listener is not reached around its handshake.
    let anonymous = resolve(https_client(&ca.pem, None));
    let resp = anonymous
        .get(https_url(port, "one.apps.test", "/"))
        .header("host", "api.test")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["upstream"],
        "apps"
    );
    assert!(
        up_api.requests().len() == 1,
        "only the authenticated request reached api"
    );
    // An unknown name gets no certificate at all.
    let unknown = https_client(&ca.pem, None)
        .resolve("other.test", addr)
        .danger_accept_invalid_hostnames(true)
        .build()
        .unwrap();
    assert!(
        unknown
            .get(https_url(port, "other.test", "/"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_renewed_certificate_reaches_new_connections_under_load_and_a_broken_one_is_kept_out() {
    let ca = TestCa::new("ca");
    let files = Files::new();
    let first = ca.issue("localhost", &["localhost"], 100);
    let (cert, key) = files.pair("server", &first);
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let tls = format!("{{cert: {cert}, key: {key}}}");
    let proxy = Proxy::start(&https_config(port, &tls, &up.authority(), "")).await;
    let url = https_url(port, "localhost", "/load");

    // Clients open a new connection per request, all through the renewal.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let client = https_client(&ca.pem, None).build().unwrap();
        let (url, stop, ok, failed) = (url.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let client = https_client(&ca.pem, None).build().unwrap();
    let served = || async {
        let resp = client.get(&url).send().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(peer_certificate(&resp))
    };
    assert_eq!(served().await.unwrap(), first.der);
    let second = ca.issue("localhost", &["localhost"], 200);
    second.write(Path::new(&cert), Path::new(&key));
    eventually(Duration::from_secs(10), || async {
        match served().await? {
            der if der == second.der => Ok(()),
            _ => Err(format!("still the old certificate; log:\n{}", proxy.log())),
        }
    })
    .await;

    // A broken renewal: the last good pair keeps serving, and the failure is logged and counted.
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    proxy.wait_log("renewed certificate not used", 0).await;
    assert_eq!(served().await.unwrap(), second.der);
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert!(ok.load(Ordering::Relaxed) > 10, "the load ran");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed; log:\n{}",
        proxy.log()
    );
    // Counted as renewals, not as config loads: the config in force is still the one applied.
    for result in ["result=\"success\"", "result=\"failure\""] {
        let renewals = proxy
            .metric("tollgate_tls_certificate_reloads_total", &[result])
            .await;
        assert!(renewals >= 1.0, "{result}: {renewals}");
    }
    assert_eq!(
        proxy
            .metric("agentgateway_config_reloads_total", &["result=\"failure\""])
            .await,
        0.0
    );
    assert_eq!(
        proxy.metric("agentgateway_config_synchronized", &[]).await,
        1.0
    );
    assert!(!proxy.log().contains(second.key_pem.lines().nth(1).unwrap()));
}

#[tokio::test]
async fn a_config_naming_an_unreadable_certificate_is_rejected_and_the_last_good_one_serves() {
    let tls = Localhost::new().await;
    let Localhost {
        ca,
        files,
        issued,
        cert,
        key,
        ..
    } = &tls;
    let port = tls.port;
    let good = tls.config(cert, key);
    let proxy = Proxy::start(&good).await;
    let version = proxy.version().await;
    // The key of another certificate: readable, but not this certificate's.
    let other = ca.issue("localhost", &["localhost"], 2);
    let (_, other_key) = files.pair("other", &other);
    let missing = files.path("missing.pem").display().to_string();
    for config in [tls.config(&missing, key), tls.config(cert, &other_key)] {
        let before = proxy.log().matches("config rejected").count();
        proxy.replace_config(&config);
        proxy.wait_log("config rejected", before).await;
        assert_eq!(proxy.version().await, version);
    }
    let log = proxy.log();
    assert!(
        log.contains("missing.pem"),
        "the error names the file:\n{log}"
    );
    assert!(log.contains("does not fit certificate"), "{log}");
    for secret in [&issued.key_pem, &other.key_pem] {
        assert!(
            !log.contains(secret.lines().nth(1).unwrap()),
            "no key material in logs"
        );
    }
    let client = https_client(&ca.pem, None).build().unwrap();
    let resp = client
        .get(https_url(port, "localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_certificate(&resp), issued.der);
}

/// A route per `backendTLS` case, each to its own HTTPS upstream.
#[tokio::test]
async fn backend_tls_private_ca_mutual_tls_wrong_name_and_insecure() {
    let ca = TestCa::new("upstream ca");
    let gateway_ca = TestCa::new("gateway clients ca");
    let files = Files::new();
    let root = files.ca("upstream-ca", &ca);
    let named = ca.issue("upstream.test", &["upstream.test"], 1);
    let by_ip = ca.issue("ip", &["127.0.0.1"], 2);
    let self_signed = TestCa::new("nobody").issue("x", &["x.test"], 3);
    let (gw_cert, gw_key) = files.pair(
        "gateway",
        &gateway_ca.issue("gateway", &["gateway.test"], 4),
    );
    let up_named = FakeUpstream::start_tls("named", server_config(&named, None)).await;
    let up_ip = FakeUpstream::start_tls("ip", server_config(&by_ip, None)).await;
    let up_mtls =
        FakeUpstream::start_tls("mtls", server_config(&by_ip, Some(&gateway_ca.pem))).await;
    let up_self = FakeUpstream::start_tls("self", server_config(&self_signed, None)).await;
    let port = free_port();
    let route = |name: &str, up: &FakeUpstream, tls: &str| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: /{name}}}}}]\n      policies:\n        backendTLS: {tls}\n      backends:\n      - host: {}\n",
            up.authority()
        )
    };
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}{}{}{}{}{}",
        route(
            "hostname",
            &up_named,
            &format!("{{root: {root}, hostname: upstream.test}}")
        ),
        route("ip", &up_ip, &format!("{{root: {root}}}")),
        route("wrongname", &up_named, &format!("{{root: {root}}}")),
        route(
            "mtls",
            &up_mtls,
            &format!("{{root: {root}, cert: {gw_cert}, key: {gw_key}}}")
        ),
        route("nocert", &up_mtls, &format!("{{root: {root}}}")),
        route("insecure", &up_self, "{insecure: true}"),
        route(
            "sans",
            &up_named,
            &format!("{{root: {root}, subjectAltNames: [upstream.test]}}")
        ),
    );
    let proxy = Proxy::start(&config).await;
    let http = tollgate_tests::http();
    let call = |path: &str| http.get(proxy.url(port, path)).send();
    for (path, upstream) in [
        ("/hostname", "named"),
        ("/ip", "ip"),
        ("/mtls", "mtls"),
        ("/insecure", "self"),
        ("/sans", "named"),
    ] {
        let resp = call(path).await.unwrap();
        let status = resp.status();
        assert_eq!(
            status,
            200,
            "{path}: {}; log:\n{}",
            resp.text().await.unwrap(),
            proxy.log()
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["upstream"], upstream, "{path}");
    }
    let resp = call("/wrongname").await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("not valid for the expected name"), "{body}");
    assert!(
        !body.contains("127.0.0.1"),
        "no address in the answer: {body}"
    );
    let resp = call("/nocert").await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("TLS"), "{body}");
    assert!(!body.contains("127.0.0.1"), "{body}");
}

#[tokio::test]
async fn an_llm_provider_with_backend_tls_is_called_over_https() {
    let ca = TestCa::new("provider ca");
    let files = Files::new();
    let root = files.ca("ca", &ca);
    let up = FakeUpstream::start_tls(
        "llm",
        server_config(&ca.issue("llm", &["llm.test"], 1), None),
    )
    .await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - ai:\n          name: p\n          provider: {{openAI: {{model: gpt-4o}}}}\n          hostOverride: {}\n          policies:\n            backendTLS: {{root: {root}, hostname: llm.test}}\n            ai:\n              routes: {{'*': passthrough}}\n",
        up.authority()
    );
    let proxy = Proxy::start(&config).await;
    let resp = tollgate_tests::http()
        .post(proxy.url(port, "/v1/chat/completions"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "log:\n{}", proxy.log());
    up.wait_request("/v1/chat/completions").await;
}

/// agentgateway's `examples/tls/config.yaml` as published (only the port changed): cert files
/// at the relative paths it names, under the proxy's working directory.
const AGENTGATEWAY_TLS_EXAMPLE: &str =
    "# yaml-language-server: $schema=https://agentgateway.dev/schema/config
binds:
- port: 3000
  listeners:
  - name: default
    protocol: HTTPS
    tls:
      cert: examples/tls/certs/cert.pem
      key: examples/tls/certs/key.pem
    routes:
    - backends:
      - mcp:
          targets:
          - name: everything
            stdio:
              cmd: npx
              args: [\"@modelcontextprotocol/server-everything\"]
";

#[tokio::test]
async fn agentgateway_tls_example_loads_and_serves_https() {
    let ca = TestCa::new("ca");
    let cwd = Files::new();
    std::fs::create_dir_all(cwd.path("examples/tls/certs")).unwrap();
    ca.issue("localhost", &["localhost"], 1).write(
        &cwd.path("examples/tls/certs/cert.pem"),
        &cwd.path("examples/tls/certs/key.pem"),
    );
    let port = free_port();
    let config = AGENTGATEWAY_TLS_EXAMPLE.replace("port: 3000", &format!("port: {port}"));
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        cwd: Some(cwd.0.path()),
        ..Default::default()
    });
    proxy.wait_ready().await;
    let client = https_client(&ca.pem, None).build().unwrap();
    // As in the example's README: the MCP route answers over HTTPS, refusing a request that
    // is not MCP (before any child is started).
    let resp = client
        .get(https_url(port, "localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "log:\n{}", proxy.log());
}

/// Gateway A serves MCP on an HTTPS listener that requires a client certificate; gateway B
/// reaches it as a remote target with `backendTLS` (private CA, client certificate, and a
/// `hostname` other than the URL's host).
#[tokio::test(flavor = "multi_thread")]
async fn a_remote_mcp_target_is_reached_with_backend_tls() {
    let ca = TestCa::new("a ca");
    let gateways = TestCa::new("gateways ca");
    let files = Files::new();
    let (a_cert, a_key) = files.pair("a", &ca.issue("a.test", &["a.test"], 1));
    let (b_cert, b_key) = files.pair("b", &gateways.issue("gateway-b", &["b.test"], 2));
    let (a_root, b_root) = (files.ca("a-ca", &ca), files.ca("gateways", &gateways));
    let a_port = free_port();
    let plain = tollgate_tests::mcp::config(a_port, &["one"], "", "");
    let a_config = plain.replace(
        "  - routes:\n",
        &format!(
            "  - protocol: HTTPS\n    tls: {{cert: {a_cert}, key: {a_key}, root: {b_root}}}\n    routes:\n"
        ),
    );
    let _a = Proxy::start(&a_config).await;
    let b_port = free_port();
    let b_config = |tls: &str| {
        format!(
            "binds:\n- port: {b_port}\n  listeners:\n  - routes:\n    - policies:\n        backendTLS: {tls}\n      backends:\n      - mcp:\n          targets:\n          - name: remote\n            mcp: {{host: \"https://127.0.0.1:{a_port}/mcp\"}}\n"
        )
    };
    let b = Proxy::start(&b_config(&format!(
        "{{root: {a_root}, hostname: a.test, cert: {b_cert}, key: {b_key}}}"
    )))
    .await;
    let mut c = tollgate_tests::mcp::McpClient::connect(&b.url(b_port, "/mcp")).await;
    assert_eq!(
        c.call_text("echo", serde_json::json!({"text": "over tls"}))
            .await,
        "one: over tls"
    );
}

#[tokio::test]
async fn backend_tls_on_a_plain_http_mcp_target_is_refused_by_check() {
    let files = Files::new();
    let config = files.path("gw.yaml");
    std::fs::write(
        &config,
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        backendTLS: {insecure: true}\n      backends:\n      - mcp:\n          targets:\n          - name: remote\n            mcp: {host: \"http://127.0.0.1:9/mcp\"}\n",
    )
    .unwrap();
    let out = std::process::Command::new(tollgate_tests::binary("tollgate"))
        .arg("check")
        .arg("-f")
        .arg(&config)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("target `remote` is http://"), "{text}");
}

/// Certificates named in a pushed config are read by the proxy from its own disk: a readable
/// pair serves HTTPS, a missing file is a NACK naming it, and the last good config serves on.
#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_config_is_served_over_https_and_a_missing_certificate_is_a_nack() {
    let tls = Localhost::new().await;
    let Localhost {
        ca,
        files,
        issued,
        cert,
        key,
        ..
    } = &tls;
    let port = tls.port;
    let good = tls.config(cert, key);
    let cp = tollgate_tests::ControlPlane::start(&[("g.yaml", &good)]).await;
    let url = cp.url();
    // Files a pushed config names must lie where the proxy allows (issue 13, point 5).
    let allowed = files.path("x");
    let allowed = allowed.parent().unwrap().display().to_string();
    let proxy = Proxy::spawn(ProxyOptions {
        control_plane: Some((&url, "g")),
        args: vec!["--allow-files-under".into(), allowed],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let client = https_client(&ca.pem, None).build().unwrap();
    let https = https_url(port, "localhost", "/");
    let resp = eventually(Duration::from_secs(10), || async {
        client.get(&https).send().await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(peer_certificate(&resp), issued.der);

    let missing = files.path("missing.pem").display().to_string();
    cp.write("g.yaml", &tls.config(&missing, key));
    eventually(Duration::from_secs(10), || async {
        let v = cp.json("/api/proxies").await;
        match v["proxies"][0]["lastNack"].as_str() {
            Some(m) if m.contains("missing.pem") => Ok(()),
            _ => Err(format!("{v}")),
        }
    })
    .await;
    let resp = client.get(&https).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // A certificate outside the allowed directories is refused, naming the field.
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("server.pem");
    std::fs::copy(cert, &outside).unwrap();
    cp.write("g.yaml", &tls.config(&outside.display().to_string(), key));
    eventually(Duration::from_secs(10), || async {
        let v = cp.json("/api/proxies").await;
        match v["proxies"][0]["lastNack"].as_str() {
            Some(m) if m.contains("tls.cert") && m.contains("--allow-files-under") => Ok(()),
            _ => Err(format!("{v}")),
        }
    })
    .await;
}
