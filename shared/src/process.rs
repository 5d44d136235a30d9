//! Process plumbing both binaries share: logging to stderr, the async runtime around `main`,
//! and Prometheus registries that collect their metrics and render them as text.

use std::future::Future;
use std::process::ExitCode;
use std::sync::OnceLock;

use prometheus::core::Collector;
use prometheus::{Encoder, Registry, TextEncoder};
use tracing_subscriber::EnvFilter;

/// Logs to stderr (`RUST_LOG`, default `info`), runs `main` on a multi-threaded runtime, and
/// turns its error into `name: error` and a failure exit code.
pub fn run(name: &str, main: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(default_filter())
        .with_writer(std::io::stderr)
        .with_filter_reloading();
    let _ = LOG_FILTER.set(Box::new({
        let handle = builder.reload_handle();
        move |filter| handle.reload(filter).is_ok()
    }));
    builder.init();
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

type Reload = Box<dyn Fn(EnvFilter) -> bool + Send + Sync>;

static LOG_FILTER: OnceLock<Reload> = OnceLock::new();

/// `RUST_LOG`, or `info`.
fn default_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Applies `config.logging.level` to this process's logs; `RUST_LOG`, when set, wins.
pub fn set_log_level(level: Option<&str>) {
    let Some(reload) = LOG_FILTER.get() else {
        return;
    };
    let filter = match level {
        Some(level) if std::env::var_os("RUST_LOG").is_none() => EnvFilter::new(level),
        _ => default_filter(),
    };
    reload(filter);
}

/// A registry holding `collectors`.
pub fn registry(collectors: Vec<Box<dyn Collector>>) -> Registry {
    let registry = Registry::new();
    for c in collectors {
        registry.register(c).expect("metric names are unique");
    }
    registry
}

/// The text exposition format of registries, without the metric families named in `skip`.
pub fn render(registries: &[&Registry], skip: &[String]) -> String {
    let mut families: Vec<_> = registries
        .iter()
        .flat_map(|r| r.gather())
        .filter(|f| !skip.iter().any(|s| s == f.name()))
        .collect();
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut buf)
        .expect("text encoding cannot fail");
    String::from_utf8(buf).expect("exposition text is UTF-8")
}
