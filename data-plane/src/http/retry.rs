//! The one retry loop for every backend kind: attempts, retryable statuses and errors,
//! backoff, and where each attempt goes (a weighted pick among hosts, failover between AI
//! providers) as the caller's policy.

use std::future::Future;

use http::{HeaderMap, HeaderValue, StatusCode};
use tollgate_shared::config::model::Retry;

use super::error::ProxyError;

/// What one attempt came to, when it did not fail.
pub enum Attempt<R> {
    /// An upstream answered with this status; retried when the policy lists it.
    Answered(StatusCode, R),
    /// The gateway answered itself; never retried.
    Local(R),
}

/// Where attempts go and what happens between them.
pub struct Policy<'a, N, B> {
    /// The route's retry policy; `None` means one attempt.
    pub retry: Option<&'a Retry>,
    /// Named in the error when no target is left to try.
    pub route: &'a str,
    /// The target of the next attempt; `None` when nothing is left.
    pub next: N,
    /// Called with the target just tried before each retry (the retry counter).
    pub before_retry: B,
}

/// Tells the upstream that a request is a retry: `x-retry-attempt: <attempt>` after the first.
pub fn mark_attempt(headers: &mut HeaderMap, attempt: u32) {
    if attempt > 0 {
        headers.insert("x-retry-attempt", HeaderValue::from(attempt));
    }
}

/// Runs `send(target, attempt)` (attempt 0 first) until an answer is final: not listed in the
/// retry codes, a failure that is not worth another try, or the last attempt's outcome.
pub async fn run<T, R, N, B, S, F>(policy: Policy<'_, N, B>, mut send: S) -> Result<R, ProxyError>
where
    T: Copy,
    N: FnMut() -> Option<T>,
    B: FnMut(T),
    S: FnMut(T, u32) -> F,
    F: Future<Output = Result<Attempt<R>, ProxyError>>,
{
    let Policy {
        retry,
        route,
        mut next,
        mut before_retry,
    } = policy;
    let attempts = retry.map_or(1, |r| r.attempts);
    let mut last_error = None;
    for attempt in 0..attempts {
        let Some(target) = next() else {
            break;
        };
        let last = attempt + 1 >= attempts;
        match send(target, attempt).await {
            Ok(Attempt::Answered(status, answer))
                if last || !retry.is_some_and(|r| r.codes.contains(&status.as_u16())) =>
            {
                return Ok(answer);
            }
            Ok(Attempt::Answered(..)) => {}
            Ok(Attempt::Local(answer)) => return Ok(answer),
            Err(e) if !last && e.is_retryable() => last_error = Some(e),
            Err(e) => return Err(e),
        }
        before_retry(target);
        if let Some(backoff) = retry.and_then(|r| r.backoff) {
            tokio::time::sleep(backoff).await;
        }
    }
    Err(last_error.unwrap_or_else(|| ProxyError::NoBackend(route.to_string())))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy(attempts: u32, codes: &[u16]) -> Retry {
        Retry {
            attempts,
            codes: codes.to_vec(),
            backoff: None,
        }
    }

    /// Runs the loop over targets 0, 1, 2...; attempt `n` gets the status `outcomes[n]`, or
    /// times out when it is `None`. Returns the result, the attempts sent and the targets
    /// retried.
    async fn drive(
        retry: Option<&Retry>,
        targets: usize,
        outcomes: &[Option<u16>],
    ) -> (Result<u16, ProxyError>, Vec<(usize, u32)>, Vec<usize>) {
        let mut next_target = 0;
        let mut sent = Vec::new();
        let mut retried = Vec::new();
        let result = run(
            Policy {
                retry,
                route: "r",
                next: || {
                    next_target += 1;
                    (next_target <= targets).then_some(next_target - 1)
                },
                before_retry: |t| retried.push(t),
            },
            |target, attempt| {
                sent.push((target, attempt));
                let outcome = match outcomes[attempt as usize] {
                    Some(code) => Ok(Attempt::Answered(StatusCode::from_u16(code).unwrap(), code)),
                    None => Err(ProxyError::UpstreamTimeout {
                        backend: "a".into(),
                        timeout: Duration::from_secs(1),
                    }),
                };
                async move { outcome }
            },
        )
        .await;
        (result, sent, retried)
    }

    #[tokio::test]
    async fn listed_codes_and_retryable_errors_are_retried_until_the_last_attempt() {
        let retry = policy(3, &[503]);
        let (result, sent, retried) = drive(Some(&retry), 9, &[Some(503), None, Some(503)]).await;
        assert_eq!(result.unwrap(), 503, "the last attempt's answer is final");
        assert_eq!(sent, [(0, 0), (1, 1), (2, 2)]);
        assert_eq!(retried, [0, 1]);
    }

    #[tokio::test]
    async fn unlisted_codes_and_no_policy_answer_at_once() {
        let retry = policy(3, &[503]);
        let (result, sent, _) = drive(Some(&retry), 9, &[Some(500)]).await;
        assert_eq!((result.unwrap(), sent.len()), (500, 1));
        let (result, sent, _) = drive(None, 9, &[Some(503)]).await;
        assert_eq!((result.unwrap(), sent.len()), (503, 1));
    }

    #[tokio::test]
    async fn running_out_of_targets_ends_with_the_last_error_or_no_backend() {
        let retry = policy(3, &[]);
        let (result, sent, _) = drive(Some(&retry), 1, &[None]).await;
        assert!(matches!(result, Err(ProxyError::UpstreamTimeout { .. })));
        assert_eq!(sent.len(), 1);
        let (result, _, _) = drive(Some(&retry), 0, &[]).await;
        assert!(matches!(result, Err(ProxyError::NoBackend(r)) if r == "r"));
    }
}
