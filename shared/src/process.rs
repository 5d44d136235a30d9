//! Process plumbing both binaries share: logging to stderr, the async runtime around `main`,
//! and Prometheus registries that collect their metrics and render them as text.

use std::future::Future;
use std::process::ExitCode;

use prometheus::core::Collector;
use prometheus::{Encoder, Registry, TextEncoder};

/// Logs to stderr (`RUST_LOG`, default `info`), runs `main` on a multi-threaded runtime, and
/// turns its error into `name: error` and a failure exit code.
pub fn run(name: &str, main: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    match runtime
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(main))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A registry holding `collectors`.
pub fn registry(collectors: Vec<Box<dyn Collector>>) -> Registry {
    let registry = Registry::new();
    for c in collectors {
        registry.register(c).expect("metric names are unique");
    }
    registry
}

/// The text exposition format of a registry.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("text encoding cannot fail");
    String::from_utf8(buf).expect("exposition text is UTF-8")
}
