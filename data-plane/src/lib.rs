//! Tollgate's data plane: config sources feed `Gateway::apply`; listeners run the pipeline.
#![forbid(unsafe_code)]

pub mod admin;
pub mod clock;
pub mod gateway;
pub mod llm;
pub mod mcp;
pub mod metrics;
pub mod proxy;
pub mod ratelimit;
pub mod runtime;
pub mod source;
pub mod telemetry;
pub mod ui;
