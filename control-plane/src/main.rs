//! `tollgate-cp`: watches gateway configs, validates them, streams snapshots to proxies.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tollgate_control_plane::admin::{self, AdminState};
use tollgate_control_plane::metrics::Metrics;
use tollgate_control_plane::registry::Registry;
use tollgate_control_plane::store::Store;
use tollgate_control_plane::stream::StreamService;
use tollgate_control_plane::watch::{self, Source};
use tollgate_shared::proto::v1::config_stream_server::ConfigStreamServer;
use tollgate_shared::{LoadMode, ProcessEnv, Snapshot, load_file_with};

#[derive(Parser)]
#[command(name = "tollgate-cp", version, about = "Tollgate control plane")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Every `*.yaml` in DIR is a gateway named by its file stem.
    #[arg(long, conflicts_with = "file")]
    config_dir: Option<PathBuf>,
    /// One config file, served as gateway `default`.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Move the stream and admin addresses to this IP.
    #[arg(long)]
    listen_ip: Option<IpAddr>,
    /// Config stream (gRPC) address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin API and metrics address.
    #[arg(long)]
    admin_addr: Option<SocketAddr>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate every `*.yaml` gateway in DIR (or one file) and print every error.
    Check {
        /// A directory of gateway configs, or one config file.
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Check { path }) = &cli.command {
        return check(path);
    }
    tollgate_shared::process::run("tollgate-cp", run(cli))
}

fn check(path: &Path) -> ExitCode {
    let source = if path.is_file() {
        Source::File(path.to_path_buf())
    } else {
        Source::Dir(path.to_path_buf())
    };
    let files = match source.gateways() {
        Ok(files) if !files.is_empty() => files,
        Ok(_) => {
            eprintln!("tollgate-cp: no *.yaml files in {}", path.display());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("tollgate-cp: cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let mut failed = 0;
    for (name, file) in &files {
        match load_file_with(file, &ProcessEnv, LoadMode::DeferSecrets) {
            Ok(config) => println!(
                "{} (gateway {name}): valid (version {})",
                file.display(),
                Snapshot::new(config).version
            ),
            Err(errors) => {
                failed += 1;
                for e in errors.iter() {
                    eprintln!("{e}");
                }
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failed} of {} gateway config(s) invalid", files.len());
        ExitCode::FAILURE
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let source = match (cli.config_dir, cli.file) {
        (Some(d), None) => Source::Dir(d),
        (None, Some(f)) => Source::File(f),
        _ => anyhow::bail!("pass --config-dir DIR or -f FILE (see --help)"),
    };
    let any = cli.listen_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let local = cli.listen_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let listen = cli.listen.unwrap_or(SocketAddr::new(any, 15010));
    let admin_addr = cli.admin_addr.unwrap_or(SocketAddr::new(local, 15011));

    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(Store::new(metrics.clone()));
    let registry = Arc::new(Registry::default());
    let mut seen = HashMap::new();
    watch::sync(&source, &store, &mut seen);

    let admin_listener = tokio::net::TcpListener::bind(admin_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {admin_addr} for the admin API: {e}"))?;
    let state = AdminState {
        store: store.clone(),
        registry: registry.clone(),
        metrics: metrics.clone(),
    };
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin_listener, admin::router(state)).await {
            tracing::error!(error = %e, "admin server stopped");
        }
    });
    tracing::info!(%admin_addr, "admin API listening");

    let watch_store = store.clone();
    tokio::spawn(async move {
        if let Err(e) = watch::run(source, watch_store, seen).await {
            tracing::error!(error = %e, "cannot watch the config files; edits will not be picked up");
        }
    });

    let service = StreamService {
        store,
        registry,
        metrics,
        keepalive: Duration::from_secs(5),
        send_timeout: Duration::from_secs(10),
    };
    let incoming = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} for the config stream: {e}"))?;
    tracing::info!(%listen, "config stream listening");
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .add_service(ConfigStreamServer::new(service))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(incoming),
            shutdown(),
        )
        .await?;
    Ok(())
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on Unix");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
