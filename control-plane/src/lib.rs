//! Tollgate's control plane: files -> validated snapshots -> one gRPC stream per proxy.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod certs;
pub mod metrics;
pub mod registry;
pub mod store;
pub mod stream;
pub mod tls;
pub mod watch;
