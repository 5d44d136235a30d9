//! One client connection, served until it ends, the port drains, or it holds the gateway with
//! nothing to do: no first request head within `headerReadTimeout`, or no request in progress
//! for `http1IdleTimeout` / `http2IdleTimeout` (`frontendPolicies.http`). Idle connections
//! are closed gracefully (HTTP/2 gets GOAWAY), then dropped if they linger; one open past
//! `maxConnectionDuration` is closed gracefully too, after its requests. The head and HTTP/2
//! limits of `frontendPolicies.http` and the TCP keepalives of `frontendPolicies.tcp` are set
//! here. A PROXY header (`proxyProtocol`) is read first and names the client; then
//! `networkAuthorization` decides, once, whether the connection is served. On an HTTPS bind
//! the TLS handshake comes next; its listener and client identity go with every request.

mod proxy_protocol;
mod watched;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::Version;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tollgate_shared::config::model::{FrontendHttp, Keepalives, ProxyProtocol};

use crate::authz::Rules;
use crate::http::body::ObservedBody;
use crate::proxy;
use crate::services::Services;
use crate::telemetry::fields::Source;
use crate::telemetry::record::RawPeer;
use crate::tls::{BindTls, TlsSession};
use watched::{Finished, Watched};

/// Largest request head (request line and headers) accepted; larger ones get 431.
const MAX_HEAD_SIZE: usize = 64 * 1024;
/// How long a connection asked to close (idle or draining) may take before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What the idle timer needs to know about a connection's requests. Requests only count and
/// stamp; the timer reads the stamps when it fires, so a request wakes nothing.
struct Activity {
    in_flight: AtomicUsize,
    /// 0 before the first request, then its HTTP major version (1 or 2).
    version: AtomicU8,
    /// When the last request ended, in nanoseconds after `opened`.
    last_end: AtomicU64,
    opened: Instant,
}

/// A request in progress, from its head until its response body is done or dropped.
struct Busy(Arc<Activity>);

impl Activity {
    fn new(opened: Instant) -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            version: AtomicU8::new(0),
            last_end: AtomicU64::new(0),
            opened,
        }
    }

    fn begin(self: &Arc<Self>, version: Version) -> Busy {
        let major = if version == Version::HTTP_2 { 2 } else { 1 };
        let _ = self
            .version
            .compare_exchange(0, major, Ordering::AcqRel, Ordering::Acquire);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// At `now`: the name of the timeout the connection has been idle past, or when to look
    /// again.
    fn check(&self, now: Instant, http: &FrontendHttp) -> Result<&'static str, Instant> {
        let (limit, setting) = match self.version.load(Ordering::Acquire) {
            0 => (http.header_read_timeout, "headerReadTimeout"),
            2 => (http.http2_idle_timeout, "http2IdleTimeout"),
            _ => (http.http1_idle_timeout, "http1IdleTimeout"),
        };
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Err(later(now, limit));
        }
        let quiet_since = self.opened + Duration::from_nanos(self.last_end.load(Ordering::Acquire));
        let deadline = later(quiet_since, limit);
        if deadline > now {
            Err(deadline)
        } else {
            Ok(setting)
        }
    }

    /// Resolves once the connection has had no request in progress for its timeout, with
    /// the name of the setting that expired.
    async fn idle(&self, http: &FrontendHttp) -> &'static str {
        loop {
            match self.check(Instant::now(), http) {
                Ok(setting) => return setting,
                Err(next) => tokio::time::sleep_until(next).await,
            }
        }
    }
}

/// `at + limit`, or 30 years on for a timeout too long for the clock (as tokio's own timers).
fn later(at: Instant, limit: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    at.checked_add(limit.min(FAR)).unwrap_or(at)
}

impl Drop for Busy {
    fn drop(&mut self) {
        // Stamped before the count drops, so a timer that sees no request in progress also
        // sees when the last one ended.
        let ended = self.0.opened.elapsed().as_nanos();
        self.0
            .last_end
            .store(u64::try_from(ended).unwrap_or(u64::MAX), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where a connection came in and what ends it early.
pub struct Accepted<S = TcpStream> {
    pub stream: S,
    pub peer: SocketAddr,
    pub port: u16,
    /// The port is draining: finish the requests in progress, then close.
    pub drain: CancellationToken,
    /// The drain timeout passed: close now.
    pub force_close: CancellationToken,
}

/// What `frontendPolicies` asks of a connection, from the config in force when it arrived.
pub struct ConnectionPolicy {
    pub http: FrontendHttp,
    pub keepalives: Option<Keepalives>,
    pub proxy_protocol: Option<ProxyProtocol>,
    pub network_authorization: Option<Arc<Rules>>,
}

/// Serves one accepted connection: plain, or after the TLS handshake of its bind.
pub async fn accept(
    services: Arc<Services>,
    mut conn: Accepted,
    policy: ConnectionPolicy,
    tls: Option<Arc<BindTls>>,
) {
    let _ = conn.stream.set_nodelay(true);
    if let Some(k) = policy.keepalives {
        set_keepalives(&conn.stream, k);
    }
    let (peer, port) = (conn.peer, conn.port);
    let raw_peer = match admit(&mut conn, &policy).await {
        Ok(raw_peer) => raw_peer,
        Err(why) => {
            tracing::debug!(%peer, port, "closing a connection: {why}");
            return;
        }
    };
    let http = policy.http;
    let Some(tls) = tls else {
        return serve(services, conn, http, None, raw_peer).await;
    };
    let Accepted {
        stream,
        peer,
        port,
        drain,
        force_close,
    } = conn;
    let handshake = tokio::select! {
        done = tls.accept(stream) => done,
        _ = force_close.cancelled() => return,
    };
    match handshake {
        Ok((stream, session)) => {
            let conn = Accepted {
                stream,
                peer,
                port,
                drain,
                force_close,
            };
            serve(services, conn, http, Some(session), raw_peer).await;
        }
        Err(e) => tracing::debug!(%peer, port, error = %e, "TLS handshake failed"),
    }
}

/// The connection's PROXY header, then `networkAuthorization`: the TCP peer when a header
/// named another client (who is then `conn.peer`), or why the connection is refused.
async fn admit(
    conn: &mut Accepted,
    policy: &ConnectionPolicy,
) -> Result<Option<SocketAddr>, String> {
    let mut raw_peer = None;
    if let Some(pp) = policy.proxy_protocol {
        let read = proxy_protocol::read(&mut conn.stream, pp);
        let client = tokio::select! {
            read = tokio::time::timeout(proxy_protocol::HEADER_TIMEOUT, read) => {
                read.map_err(|_| "no whole PROXY header in time".to_string())??
            }
            _ = conn.force_close.cancelled() => return Err("the port closed".to_string()),
        };
        if let Some(client) = client {
            raw_peer = Some(conn.peer);
            conn.peer = client;
        }
    }
    if let Some(rules) = &policy.network_authorization {
        let source = Source {
            peer: conn.peer,
            raw_peer,
        };
        if !rules.allows_connection(&source) {
            return Err(format!(
                "frontendPolicies.networkAuthorization refuses client {}",
                conn.peer
            ));
        }
    }
    Ok(raw_peer)
}

/// `frontendPolicies.tcp.keepalives` on a client socket (a failure is only logged: the
/// connection still works).
fn set_keepalives(stream: &TcpStream, k: Keepalives) {
    let socket = socket2::SockRef::from(stream);
    let set = if k.enabled {
        let probes = socket2::TcpKeepalive::new()
            .with_time(k.time)
            .with_interval(k.interval)
            .with_retries(k.retries);
        socket.set_tcp_keepalive(&probes)
    } else {
        socket.set_keepalive(false)
    };
    if let Err(e) = set {
        tracing::debug!(error = %e, "cannot set TCP keepalives");
    }
}

/// The HTTP/1 and HTTP/2 server with `frontendPolicies.http`'s limits (hyper's defaults for
/// the unset ones).
fn server(http: &FrontendHttp) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut h1 = builder.http1();
    h1.timer(TokioTimer::new())
        .header_read_timeout(http.header_read_timeout)
        .max_buf_size(MAX_HEAD_SIZE);
    if let Some(n) = http.http1_max_headers {
        h1.max_headers(n as usize);
    }
    let mut h2 = builder.http2();
    h2.timer(TokioTimer::new())
        .keep_alive_interval(http.http2_keepalive_interval);
    // hyper's own defaults (1 MiB windows) stay unless the config sets a value.
    if let Some(size) = http.http2_window_size {
        h2.initial_stream_window_size(size);
    }
    if let Some(size) = http.http2_connection_window_size {
        h2.initial_connection_window_size(size);
    }
    if let Some(size) = http.http2_frame_size {
        h2.max_frame_size(size);
    }
    if let Some(size) = http.http2_max_header_size {
        h2.max_header_list_size(size);
    }
    if let Some(timeout) = http.http2_keepalive_timeout {
        h2.keep_alive_timeout(timeout);
    }
    builder
}

/// Resolves when a connection has been open for `limit` (never without one).
async fn lifetime(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

/// Serves HTTP/1.1 and HTTP/2 on one connection until it ends.
async fn serve<S>(
    services: Arc<Services>,
    conn: Accepted<S>,
    http: FrontendHttp,
    session: Option<TlsSession>,
    raw_peer: Option<SocketAddr>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Accepted {
        stream,
        peer,
        port,
        drain,
        force_close,
    } = conn;
    let activity = Arc::new(Activity::new(Instant::now()));
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |mut req: http::Request<_>| {
        let services = services.clone();
        if let Some(session) = &session {
            req.extensions_mut().insert(session.clone());
        }
        if let Some(raw) = raw_peer {
            req.extensions_mut().insert(RawPeer(raw));
        }
        let busy = tracked.begin(req.version());
        async move {
            let resp = proxy::serve(&services, req, port, peer).await;
            Ok::<_, Infallible>(resp.map(|b| ObservedBody::new(b, move || drop(busy))))
        }
    });
    let builder = server(&http);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let signals = std::pin::pin!(async {
        tokio::select! {
            biased;
            _ = force_close.cancelled() => None,
            _ = drain.cancelled() => Some(true),
            _ = lifetime(http.max_connection_duration) => {
                tracing::debug!(%peer, port, "closing a connection open past frontendPolicies.http.maxConnectionDuration");
                Some(true)
            }
            setting = activity.idle(&http) => {
                tracing::debug!(%peer, port, "closing a connection idle past frontendPolicies.http.{setting}");
                Some(false)
            }
        }
    });
    let draining = match Watched::new(conn.as_mut(), signals).await {
        Finished::Connection(_) | Finished::Signal(None) => return,
        Finished::Signal(Some(draining)) => draining,
    };
    conn.as_mut().graceful_shutdown();
    // A draining connection finishes its requests (the drain timeout forces it); an idle one
    // has none and gets a short grace.
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = force_close.cancelled() => {}
        _ = tokio::time::sleep(CLOSE_GRACE), if !draining => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idleness_counts_from_the_last_request_end_and_never_during_one() {
        let http = FrontendHttp {
            header_read_timeout: Duration::from_secs(1),
            http1_idle_timeout: Duration::from_secs(2),
            http2_idle_timeout: Duration::from_secs(3),
            ..FrontendHttp::default()
        };
        let opened = Instant::now();
        let secs = |n| opened + Duration::from_secs(n);
        let activity = Arc::new(Activity::new(opened));
        assert_eq!(activity.check(opened, &http), Err(secs(1)));
        assert_eq!(activity.check(secs(1), &http), Ok("headerReadTimeout"));
        let busy = activity.begin(Version::HTTP_11);
        assert_eq!(
            activity.check(secs(100), &http),
            Err(secs(102)),
            "a request in progress is never idle"
        );
        drop(busy);
        let Err(deadline) = activity.check(opened, &http) else {
            panic!("idle before its timeout");
        };
        assert!(deadline >= secs(2) && deadline < secs(3), "{deadline:?}");
        assert_eq!(activity.check(secs(100), &http), Ok("http1IdleTimeout"));
        let forever = FrontendHttp {
            http1_idle_timeout: Duration::MAX,
            ..http
        };
        assert!(
            activity.check(secs(100), &forever).is_err(),
            "a timeout past the clock's range never expires"
        );
        let h2 = Arc::new(Activity::new(opened));
        drop(h2.begin(Version::HTTP_2));
        assert_eq!(h2.check(secs(100), &http), Ok("http2IdleTimeout"));
    }

    #[tokio::test]
    async fn keepalives_are_set_on_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let socket = socket2::SockRef::from(&accepted);
        set_keepalives(
            &accepted,
            Keepalives {
                enabled: true,
                time: Duration::from_secs(42),
                interval: Duration::from_secs(7),
                retries: 3,
            },
        );
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(42)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(7)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 3);
        set_keepalives(
            &accepted,
            Keepalives {
                enabled: false,
                ..Keepalives::default()
            },
        );
        assert!(!socket.keepalive().unwrap());
        drop(client);
    }
}
