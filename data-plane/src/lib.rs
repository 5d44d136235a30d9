//! Tollgate's data plane: config sources feed `Gateway::apply`; listeners run the pipeline.
//!
//! Layers, each importing only those below it: `gateway` (ports, apply) -> `proxy` (the
//! pipeline) -> backends (`llm`, `mcp`) -> `http` (bodies, client, errors); `services` is
//! what requests share, `runtime` the compiled config.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api_key;
pub mod authz;
pub mod clock;
pub mod connection;
pub mod fetch;
pub mod gateway;
pub mod health;
pub mod htpasswd;
pub mod http;
pub mod jwt;
pub mod llm;
pub mod mcp;
pub mod metrics;
pub mod proxy;
pub mod ratelimit;
pub mod runtime;
pub mod series;
pub mod services;
pub mod source;
pub mod telemetry;
pub mod tls;
pub mod ui;
pub mod workers;
