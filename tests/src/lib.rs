//! End-to-end harness: real `tollgate` processes on free loopback ports, fake upstreams,
//! config files edited on disk, and a bounded `eventually`.

pub mod bedrock;
pub mod bench;
pub mod cloud;
pub mod control_plane;
pub mod llm;
pub mod mcp;
pub mod otlp;
pub mod proxy;
pub mod tls;
pub mod upstream;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use control_plane::ControlPlane;
pub use llm::{FakeLlm, Kind};
pub use proxy::Proxy;
pub use upstream::FakeUpstream;

/// A port that was free a moment ago on 127.0.0.1, never handed out twice by this process.
///
/// Ports come from 10000-29999, below Linux's ephemeral range (32768+), so a socket bound to
/// port 0 elsewhere in the tests (fake upstreams, clients) can never take a port that a
/// proxy was told to use but has not bound yet.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 100) as u16 * 200;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 20_000;
        let port = 10_000 + (start + offset) % 20_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// reqwest is built with rustls but no crypto provider (the proxy brings its own); tests use ring.
pub fn http_builder() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// A plain HTTP client for tests.
pub fn http() -> reqwest::Client {
    http_builder().build().expect("HTTP client")
}

/// GETs `url`.
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http().get(url).send().await
}

/// Sends `req`: the status, the `WWW-Authenticate` challenge (if any) and the body.
pub async fn challenged(req: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
    let resp = req.send().await.expect("the request is sent");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, challenge, resp.text().await.unwrap_or_default())
}

/// GETs `url` and parses the JSON answer.
pub async fn get_json(url: &str) -> serde_json::Value {
    crate::get(url).await.unwrap().json().await.unwrap()
}

/// An axum app served until this is dropped: what every fake server holds.
pub struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `app` on `listener` until the returned [`Serving`] is dropped.
pub fn serve<L>(listener: L, app: axum::Router) -> Serving
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    Serving(tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    }))
}

/// A TCP listener whose connections send small writes at once, as providers' servers do:
/// with Nagle's algorithm, a fake's last stream event can wait for the gateway's delayed ACK.
pub fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

/// POSTs `body` as JSON with a client's bearer key (which an LLM route's `backendAuth`
/// replaces).
pub async fn post_json(url: &str, body: serde_json::Value) -> reqwest::Response {
    http()
        .post(url)
        .header("authorization", "Bearer client-key")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The whole body of `resp` as text, read chunk by chunk as a stream arrives.
pub async fn body_text(resp: reqwest::Response) -> String {
    use futures_util::StreamExt;
    let mut out = String::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    out
}

/// Arguments that turn off a proxy's admin, stats and readiness listeners, for proxies that
/// only need their data plane (or nothing but their control-plane stream).
pub const SIDE_LISTENERS_OFF: [&str; 6] = [
    "--admin-addr",
    "off",
    "--stats-addr",
    "off",
    "--readiness-addr",
    "off",
];

/// A built binary of the workspace: next to the running executable, or next to its `deps/`
/// folder when that is a test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let mut dir = exe.parent().expect("target dir");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target dir");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Test patience multiplier for slow machines (`TOLLGATE_TEST_PATIENCE=3`).
pub fn patience(base: Duration) -> Duration {
    let factor: u32 = std::env::var("TOLLGATE_TEST_PATIENCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    base * factor
}

/// Waits `base` times the patience factor: only for checks that something does NOT happen,
/// which have no state to wait on. Anything that does happen is waited on with [`eventually`].
pub async fn settle(base: Duration) {
    tokio::time::sleep(patience(base)).await;
}

/// Retries `check` until it returns `Ok`, for at most `within` (times the patience factor).
pub async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + patience(within);
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                panic!("condition not met within {within:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// The workspace root (for seed and example configs).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The walkthrough's seed configs: `TOLLGATE_SEED_DIR` (which `tests/run.sh` sets), else the
/// read-only `shared/` folder beside the checkout.
pub fn seed_configs() -> PathBuf {
    match std::env::var_os("TOLLGATE_SEED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root()
            .parent()
            .unwrap()
            .join("shared/seed/configs"),
    }
}

/// A seed config with only `hostOverride` added to each `ai` provider, pointing OpenAI
/// providers at `openai` and Anthropic ones at `anthropic` (the fakes).
pub fn seed_with_overrides(name: &str, openai: &str, anthropic: &str) -> String {
    with_overrides(&seed_configs().join(name), openai, anthropic)
}

/// Any config file with `hostOverride` added to its `ai` providers.
pub fn with_overrides(path: &std::path::Path, openai: &str, anthropic: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut doc: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
    add_overrides(&mut doc, openai, anthropic);
    yaml_serde::to_string(&doc).unwrap()
}

fn add_overrides(v: &mut yaml_serde::Value, openai: &str, anthropic: &str) {
    match v {
        yaml_serde::Value::Mapping(m) => {
            let target = m
                .get("provider")
                .and_then(|p| p.as_mapping())
                .and_then(|p| {
                    if p.contains_key("openAI") {
                        Some(openai)
                    } else if p.contains_key("anthropic") {
                        Some(anthropic)
                    } else {
                        None
                    }
                });
            if let Some(addr) = target {
                m.insert("hostOverride".into(), addr.into());
            }
            for (_, child) in m.iter_mut() {
                add_overrides(child, openai, anthropic);
            }
        }
        yaml_serde::Value::Sequence(s) => s
            .iter_mut()
            .for_each(|c| add_overrides(c, openai, anthropic)),
        _ => {}
    }
}
