//! `tollgate-hyper-proxy PORT UPSTREAM_PORT`: the least a proxy built on Tollgate's stack can
//! do, for `tollgate-bench` to read the gateway's added latency against.
//!
//! The same crates as the gateway (a tokio current-thread runtime, hyper's HTTP/1 server,
//! hyper-util's pooled client, `TCP_NODELAY` both ways), on one thread like the nginx floor,
//! forwarding each request as it came: no routing, policy, telemetry or header handling.
#![forbid(unsafe_code)]

use anyhow::Context;
use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut port = || -> anyhow::Result<u16> {
        args.next()
            .context("usage: tollgate-hyper-proxy PORT UPSTREAM_PORT")?
            .parse()
            .context("a port is a number")
    };
    let (port, upstream) = (port()?, port()?);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(port, upstream))
}

async fn serve(port: u16, upstream: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build(connector);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let client = client.clone();
        let forward = service_fn(move |mut req: Request<Incoming>| {
            let client = client.clone();
            async move {
                let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                *req.uri_mut() = format!("http://127.0.0.1:{upstream}{pq}").parse()?;
                anyhow::Ok(client.request(req).await?)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), forward)
                .await;
        });
    }
}
