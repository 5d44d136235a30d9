//! Pipeline behaviour tested in-process through [`harness`]: routing, rewrites, CORS, rate
//! limits, retries, error bodies, timeouts and upstream event streams.

mod errors;
pub mod harness;
mod ratelimit;
mod routing;
mod streams;

/// A one-route config that proxies everything on the harness port to `upstream`.
fn simple_config(upstream: &str) -> String {
    format!(
        "binds:\n- port: {}\n  listeners:\n  - routes:\n    - name: all\n      backends:\n      - host: {upstream}\n",
        harness::PORT
    )
}
