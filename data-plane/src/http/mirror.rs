//! `requestMirror`: copies of requests sent on tasks of their own, their answers discarded, so a
//! mirror can never delay or change the real response; in-flight copies are bounded, and every
//! outcome is only counted.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Uri, header};
use http_body_util::BodyExt;
use prometheus::IntCounterVec;
use rand::Rng;
use tokio::sync::Semaphore;
use tollgate_shared::config::model::RequestMirror;

use crate::http::body::full;
use crate::http::client::HttpClient;

/// Copies in flight at once, over every route; more are skipped.
pub const MAX_IN_FLIGHT: usize = 256;
/// How long a copy may take, answer included.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a mirror's answer read (then the connection is dropped).
const MAX_ANSWER: usize = 64 << 10;

/// What became of one copy: the `result` label of `tollgate_mirror_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorResult {
    /// The mirror answered (whatever its status).
    Sent,
    /// No answer: refused, reset or timed out.
    Failed,
    /// Not sent: too many copies in flight, or a body too large to hold for a copy.
    Skipped,
}

impl MirrorResult {
    pub fn label(self) -> &'static str {
        match self {
            MirrorResult::Sent => "sent",
            MirrorResult::Failed => "failed",
            MirrorResult::Skipped => "skipped",
        }
    }
}

/// The process's mirror sender.
#[derive(Clone)]
pub struct Mirrors {
    client: HttpClient,
    in_flight: Arc<Semaphore>,
    counted: IntCounterVec,
}

impl Mirrors {
    pub fn new(client: HttpClient, counted: IntCounterVec) -> Mirrors {
        Mirrors {
            client,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            counted,
        }
    }

    /// Whether this request is one of the share `rule` copies.
    pub fn chosen(rule: &RequestMirror) -> bool {
        rule.percentage >= 1.0 || rand::rng().random_bool(rule.percentage.max(0.0))
    }

    /// Counts a copy that was chosen but cannot be sent.
    pub fn skip(&self, labels: &[&str; 4]) {
        count(&self.counted, labels, MirrorResult::Skipped);
    }

    /// Sends a copy of the request (`parts` as the backend gets them, `body` whole) to the
    /// mirror on its own task; returns at once.
    pub fn send(
        &self,
        rule: &RequestMirror,
        parts: &http::request::Parts,
        body: Bytes,
        labels: [&str; 4],
    ) {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.skip(&labels);
            return;
        };
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(uri) = format!("http://{}{pq}", rule.host).parse::<Uri>() else {
            self.skip(&labels);
            return;
        };
        let mut req = Request::new(full(body));
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = parts.headers.clone();
        if let Ok(host) = HeaderValue::from_str(&rule.host) {
            req.headers_mut().insert(header::HOST, host);
        }
        let client = self.client.clone();
        let counted = self.counted.clone();
        let labels = labels.map(str::to_string);
        tokio::spawn(async move {
            let _permit = permit;
            let call = async {
                let resp = client.request(req).await.ok()?;
                let limited = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER);
                let _ = limited.collect().await;
                Some(())
            };
            let result = match tokio::time::timeout(MIRROR_TIMEOUT, call).await {
                Ok(Some(())) => MirrorResult::Sent,
                _ => MirrorResult::Failed,
            };
            count(&counted, &labels.each_ref().map(String::as_str), result);
        });
    }
}

fn count(counted: &IntCounterVec, labels: &[&str; 4], result: MirrorResult) {
    let [bind, gateway, listener, route] = labels;
    counted
        .with_label_values(&[bind, gateway, listener, route, result.label()])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_share_follows_the_percentage() {
        let rule = |percentage| RequestMirror {
            host: "127.0.0.1:1".into(),
            percentage,
        };
        assert!((0..1000).all(|_| Mirrors::chosen(&rule(1.0))));
        assert!((0..1000).all(|_| !Mirrors::chosen(&rule(0.0))));
        let half = (0..10_000).filter(|_| Mirrors::chosen(&rule(0.5))).count();
        assert!((4_000..6_000).contains(&half), "{half} of 10000");
    }
}
