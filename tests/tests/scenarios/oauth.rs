//! Issue 14, keys and discovery from an identity provider: `jwks.url` (fetched, refreshed,
//! re-fetched on an unknown `kid` at a bounded rate, 503 while unreachable) and
//! `mcpAuthentication` (RFC 9728 metadata, the 401 that points at it, the authorization
//! server's metadata, Keycloak's registration proxied), against a loopback identity provider.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::get_current_timestamp;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tollgate_tests::mcp::{McpClient, fake_target};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::upstream::FakeUpstream;
use tollgate_tests::{eventually, free_port, patience};

use super::keys::{TestKey, jwks};

/// A loopback identity provider: a JWKS that tests change (its fetches counted), RFC 8414 and
/// OpenID metadata, and Keycloak's client registration.
struct FakeIdp {
    addr: SocketAddr,
    state: Arc<IdpState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct IdpState {
    jwks: Mutex<String>,
    jwks_fetches: AtomicUsize,
    metadata_fetches: AtomicUsize,
    down: AtomicBool,
    registrations: Mutex<Vec<Value>>,
}

impl FakeIdp {
    async fn start(keys: &[&TestKey]) -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(IdpState::default());
        *state.jwks.lock() = jwks(keys);
        let base = format!("http://{addr}");
        let realm = format!("{base}/realms/mcp");
        let oauth = json!({"issuer": base, "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"), "jwks_uri": format!("{base}/jwks.json"),
            "registration_endpoint": format!("{base}/register")});
        let openid = json!({"issuer": realm,
            "authorization_endpoint": format!("{realm}/protocol/openid-connect/auth"),
            "token_endpoint": format!("{realm}/protocol/openid-connect/token"),
            "registration_endpoint": format!("{realm}/clients-registrations/openid-connect")});
        let app = axum::Router::new()
            .route("/jwks.json", get(serve_jwks))
            .route(
                "/.well-known/oauth-authorization-server",
                get(move |State(state): State<Arc<IdpState>>| async move {
                    state.metadata_fetches.fetch_add(1, Ordering::SeqCst);
                    Json(oauth)
                }),
            )
            .route(
                "/realms/mcp/.well-known/openid-configuration",
                get(move || async move { Json(openid) }),
            )
            .route(
                "/realms/mcp/clients-registrations/openid-connect",
                post(register),
            )
            .with_state(state.clone());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeIdp { addr, state, task }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_keys(&self, keys: &[&TestKey]) {
        *self.state.jwks.lock() = jwks(keys);
    }

    fn fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_jwks(State(state): State<Arc<IdpState>>) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let body = state.jwks.lock().clone();
    ([("content-type", "application/json")], body).into_response()
}

async fn register(State(state): State<Arc<IdpState>>, Json(request): Json<Value>) -> Response {
    state.registrations.lock().push(request.clone());
    let client = json!({"client_id": "registered-1", "redirect_uris": request["redirect_uris"]});
    (StatusCode::CREATED, Json(client)).into_response()
}

fn claims(issuer: &str, audience: &str) -> Value {
    json!({"iss": issuer, "sub": "alice", "aud": audience, "exp": get_current_timestamp() + 600})
}

/// A proxy with one strict `jwtAuth` route whose keys are at `idp`'s JWKS URL.
struct JwksRoute {
    proxy: Proxy,
    upstream: FakeUpstream,
    config: String,
    url: String,
}

async fn jwks_route(idp: &FakeIdp) -> JwksRoute {
    let upstream = FakeUpstream::start("u").await;
    let port = free_port();
    let issuer = idp.base();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends: [{{host: \"{}\"}}]\n      policies:\n        jwtAuth:\n          mode: strict\n          issuer: {issuer}\n          audiences: [api]\n          jwks: {{url: \"{issuer}/jwks.json\"}}\n",
        upstream.authority()
    );
    let proxy = Proxy::start(&config).await;
    let url = proxy.url(port, "/r");
    JwksRoute {
        proxy,
        upstream,
        config,
        url,
    }
}

async fn status(url: &str, token: &str) -> (u16, String) {
    let resp = tollgate_tests::http()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn fetched_keys_follow_rotation_and_unknown_kids_cannot_flood_the_issuer() {
    let (first, second) = (TestKey::ec("first"), TestKey::rsa("second"));
    let idp = FakeIdp::start(&[&first]).await;
    let JwksRoute {
        proxy,
        config,
        url,
        upstream: _upstream,
    } = jwks_route(&idp).await;
    let issuer = idp.base();

    let (code, body) = status(&url, &first.token(&claims(&issuer, "api"))).await;
    assert_eq!(code, 200, "{body}");
    // The issuer rotates: a token of the new key makes the gateway fetch the set again.
    idp.set_keys(&[&second]);
    let fetched = idp.fetches();
    let (code, body) = status(&url, &second.token(&claims(&issuer, "api"))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(idp.fetches(), fetched + 1, "one fetch for the unknown kid");

    // Tokens naming keys nobody has: refused, and the issuer is not asked again (at most one
    // fetch every 10 s).
    let stranger = TestKey::ec("stranger");
    let fetched = idp.fetches();
    for i in 0..20 {
        let mut key = TestKey::ec("x");
        key.jwk["kid"] = json!(format!("random-{i}"));
        let (code, body) = status(&url, &key.token(&claims(&issuer, "api"))).await;
        assert_eq!(
            (code, body.as_str()),
            (401, "unauthorized: unknown token key")
        );
    }
    let (code, _) = status(&url, &stranger.token(&claims(&issuer, "api"))).await;
    assert_eq!(code, 401);
    assert!(
        idp.fetches() <= fetched + 1,
        "{} fetches for 21 unknown kids",
        idp.fetches() - fetched
    );
    // A reload keeps the fetched set (and its refresh task): no new fetch.
    let fetched = idp.fetches();
    let version = proxy.version().await;
    proxy.replace_config(&config.replace("audiences: [api]", "audiences: [api, other]"));
    proxy.wait_version_change(&version).await;
    let (code, body) = status(&url, &second.token(&claims(&issuer, "other"))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(idp.fetches(), fetched, "the reload reused the fetched keys");
    // The retired key no longer verifies.
    let (code, body) = status(&url, &first.token(&claims(&issuer, "api"))).await;
    assert_eq!(
        (code, body.as_str()),
        (401, "unauthorized: unknown token key")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_key_set_is_a_503_until_its_keys_arrive() {
    let key = TestKey::ed25519("k");
    let idp = FakeIdp::start(&[&key]).await;
    idp.state.down.store(true, Ordering::SeqCst);
    let JwksRoute {
        proxy,
        upstream,
        url,
        config: _,
    } = jwks_route(&idp).await;
    let issuer = idp.base();
    let token = key.token(&claims(&issuer, "api"));

    let (code, body) = status(&url, &token).await;
    assert_eq!(
        (code, body.as_str()),
        (503, "unauthorized: the token issuer's keys are unavailable")
    );
    assert!(upstream.requests().is_empty());
    // The issuer comes back: the background retry (or a request's fetch) finds the keys.
    idp.state.down.store(false, Ordering::SeqCst);
    eventually(patience(Duration::from_secs(20)), || async {
        match status(&url, &token).await {
            (200, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let log = proxy.log();
    assert!(log.contains("JWKS fetch failed"), "{log}");
    assert!(!log.contains(&token), "the token is never logged");
}

/// An MCP route behind `mcpAuthentication` with `extra` policy lines.
fn mcp_config(port: u16, issuer: &str, extra: &str) -> String {
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - matches:\n      - path: {{exact: /mcp}}\n      - path: {{exact: /.well-known/oauth-protected-resource/mcp}}\n      - path: {{pathPrefix: /.well-known/oauth-authorization-server/mcp}}\n      policies:\n        mcpAuthentication:\n          issuer: {issuer}\n          audiences: [mcp]\n          jwks: {{url: \"{}/jwks.json\"}}\n{extra}      backends:\n      - mcp:\n          targets:\n{}",
        issuer.split("/realms").next().unwrap(),
        fake_target("tools")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_clients_discover_the_authorization_server_and_need_its_token() {
    let key = TestKey::rsa("k");
    let idp = FakeIdp::start(&[&key]).await;
    let issuer = idp.base();
    let port = free_port();
    let config = mcp_config(
        port,
        &issuer,
        "          resourceMetadata:\n            scopesSupported: [read:all]\n            resourceDocumentation: http://docs.test/mcp\n",
    );
    let proxy = Proxy::start(&config).await;
    let base = proxy.url(port, "");
    let http = tollgate_tests::http();

    // No token: 401, and the challenge names the metadata (RFC 9728 §5.1).
    let mut anonymous = McpClient::new(&proxy.url(port, "/mcp"));
    let resp = anonymous
        .post(&tollgate_tests::mcp::initialize_request())
        .await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{metadata_url}\"")
    );
    anonymous.session = None;

    // The metadata: computed resource and issuer, the configured fields in snake_case.
    let metadata: Value = http
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], format!("{base}/mcp"));
    assert_eq!(metadata["authorization_servers"], json!([issuer]));
    assert_eq!(metadata["scopes_supported"], json!(["read:all"]));
    assert_eq!(metadata["resource_documentation"], "http://docs.test/mcp");

    // The authorization server's own metadata, served unchanged without an adapter.
    let server: Value = http
        .get(format!("{base}/.well-known/oauth-authorization-server/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(server["issuer"], issuer);
    assert_eq!(
        server["registration_endpoint"],
        format!("{issuer}/register")
    );
    // Anonymous clients cannot make the gateway fetch it again and again: it is cached.
    for _ in 0..5 {
        let again = http
            .get(format!("{base}/.well-known/oauth-authorization-server/mcp"))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 200);
    }
    assert_eq!(idp.state.metadata_fetches.load(Ordering::SeqCst), 1);

    // A bad token: 401 with `invalid_token`; a good one opens a session and calls tools.
    let wrong_audience = key.token(&claims(&issuer, "elsewhere"));
    let resp = http
        .post(proxy.url(port, "/mcp"))
        .bearer_auth(&wrong_audience)
        .header("accept", tollgate_tests::mcp::ACCEPT)
        .json(&tollgate_tests::mcp::initialize_request())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        format!("Bearer resource_metadata=\"{metadata_url}\", error=\"invalid_token\"").as_str()
    );
    assert_eq!(
        resp.text().await.unwrap(),
        "unauthorized: wrong token audience"
    );
    let token = key.token(&claims(&issuer, "mcp"));
    let authed = tollgate_tests::http_builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let mut client = McpClient::with_http(&proxy.url(port, "/mcp"), authed);
    let answer = client.initialize().await;
    assert!(answer.get("result").is_some(), "{answer}");
    assert!(!client.tool_names().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_keycloak_adapter_serves_openid_metadata_and_proxies_registration() {
    let key = TestKey::ec("k");
    let idp = FakeIdp::start(&[&key]).await;
    let realm = format!("{}/realms/mcp", idp.base());
    let port = free_port();
    let config = mcp_config(
        port,
        &realm,
        "          provider: {keycloak: {}}\n          resourceMetadata: {resource: \"http://mcp.test:9999/mcp\"}\n",
    );
    let proxy = Proxy::start(&config).await;
    let http = tollgate_tests::http();
    // The gateway names itself (the configured resource's origin) as the authorization server.
    let metadata: Value =
        tollgate_tests::get_json(&proxy.url(port, "/.well-known/oauth-protected-resource/mcp"))
            .await;
    assert_eq!(metadata["resource"], "http://mcp.test:9999/mcp");
    assert_eq!(
        metadata["authorization_servers"],
        json!(["http://mcp.test:9999/mcp"])
    );
    let served = proxy.url(port, "/.well-known/oauth-authorization-server/mcp");
    let server: Value = tollgate_tests::get_json(&served).await;
    assert_eq!(server["issuer"], "http://mcp.test:9999/mcp");
    assert_eq!(
        server["authorization_endpoint"],
        format!("{realm}/protocol/openid-connect/auth")
    );
    assert_eq!(
        server["registration_endpoint"],
        "http://mcp.test:9999/.well-known/oauth-authorization-server/mcp/client-registration"
    );
    // Registration goes to Keycloak through the gateway, which adds CORS.
    let resp = http
        .post(format!("{served}/client-registration"))
        .json(&json!({"redirect_uris": ["http://localhost:6274/callback"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let registered: Value = resp.json().await.unwrap();
    assert_eq!(registered["client_id"], "registered-1");
    assert_eq!(idp.state.registrations.lock().len(), 1);
    // Only POST, and a bounded body.
    let resp = http
        .get(format!("{served}/client-registration"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = http
        .post(format!("{served}/client-registration"))
        .header("content-type", "application/json")
        .body(vec![b' '; 100 << 10])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(idp.state.registrations.lock().len(), 1);
}
