//! `frontendPolicies.proxyProtocol`: a load balancer in front names the client in a PROXY
//! header (HAProxy's v1 text or v2 binary form) before anything else on the connection. The
//! header is parsed by the `ppp` crate and consumed; the bytes after it are left for TLS or
//! HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tollgate_shared::config::model::{ProxyMode, ProxyProtocol};

/// Longest wait for a whole header (agentgateway's); it is one small segment in practice.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest header read: v1 is at most 107 bytes, v2 with IPv6 addresses 52 plus its TLVs.
const MAX_HEADER: usize = 4096;
/// How long to wait before looking again at a header that arrived in part.
const PEEK_AGAIN: Duration = Duration::from_millis(5);

/// Reads the connection's PROXY header, if `policy` lets it have one: the client it names
/// (`None`: no header in optional mode, or one naming no address, such as v2's `LOCAL`), or
/// why the connection is refused.
pub async fn read(
    stream: &mut TcpStream,
    policy: ProxyProtocol,
) -> Result<Option<SocketAddr>, String> {
    let mut buf = vec![0; MAX_HEADER];
    loop {
        let n = stream.peek(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed before a PROXY header".to_string());
        }
        let parsed = HeaderResult::parse(&buf[..n]);
        if parsed.is_incomplete() {
            if n == buf.len() {
                return Err(format!("a PROXY header longer than {MAX_HEADER} bytes"));
            }
            tokio::time::sleep(PEEK_AGAIN).await;
            continue;
        }
        let (length, client) = match parsed {
            HeaderResult::V1(Ok(h)) if policy.version.allows_v1() => {
                (h.header.len(), v1_client(h.addresses))
            }
            HeaderResult::V2(Ok(h)) if policy.version.allows_v2() => (h.len(), v2_client(&h)),
            HeaderResult::V1(Ok(_)) | HeaderResult::V2(Ok(_)) => {
                return Err(
                    "a PROXY header of a version proxyProtocol.version does not accept".to_string(),
                );
            }
            _ if policy.mode == ProxyMode::Optional => return Ok(None),
            _ => return Err("no PROXY header (proxyProtocol.mode is strict)".to_string()),
        };
        let mut header = vec![0; length];
        stream
            .read_exact(&mut header)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(client);
    }
}

fn v1_client(addresses: v1::Addresses) -> Option<SocketAddr> {
    match addresses {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Unknown => None,
    }
}

fn v2_client(header: &v2::Header<'_>) -> Option<SocketAddr> {
    if header.command == v2::Command::Local {
        return None;
    }
    match header.addresses {
        v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::Unix(_) | v2::Addresses::Unspecified => None,
    }
}
