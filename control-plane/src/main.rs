//! `tollgate-cp`: watches gateway configs, validates them, streams snapshots to proxies.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tollgate_control_plane::admin::{self, AdminState};
use tollgate_control_plane::auth::{Authenticator, Tokens};
use tollgate_control_plane::certs;
use tollgate_control_plane::metrics::Metrics;
use tollgate_control_plane::registry::{Limits, Registry};
use tollgate_control_plane::store::Store;
use tollgate_control_plane::stream::StreamService;
use tollgate_control_plane::tls::{TlsFiles, TlsListener};
use tollgate_control_plane::watch::{self, Source};
use tollgate_shared::admin::{read_token, require_token_off_loopback};
use tollgate_shared::proto::v1::config_stream_server::ConfigStreamServer;
use tollgate_shared::{LoadMode, ProcessEnv, Snapshot, load_file_with};

/// Every edit is a whole file parsed, validated and encoded again: glibc malloc and free were
/// a fifth of the control plane's samples during edits of 10,000 routes (docs/perf/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Move the stream and admin addresses to this IP (default: loopback).
    #[arg(long)]
    listen_ip: Option<IpAddr>,
    /// Config stream (gRPC) address (default: 127.0.0.1:15010).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin API and metrics address.
    #[arg(long)]
    admin_addr: Option<SocketAddr>,
    /// PEM certificate chain: the config stream and the admin API speak TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA: proxies must present a certificate it signed (mutual TLS); the certificate's
    /// DNS SANs name the gateways it may subscribe to.
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// Proxies must present a bearer token: lines `NAME TOKEN GATEWAY[,GATEWAY...]`.
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    /// Serve the config stream without TLS or without proxy credentials (tests, local demos).
    #[arg(long)]
    insecure: bool,
    /// Most config streams open at once.
    #[arg(long, default_value_t = 1024)]
    max_streams: usize,
    /// Most config streams one credential may hold (replicas sharing it).
    #[arg(long, default_value_t = 32)]
    max_streams_per_identity: usize,
    /// How long a proxy that left stays listed (DISCONNECTED) before it is forgotten.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    forget_after: Duration,
    /// File holding the admin API's bearer token (or set TOLLGATE_CP_ADMIN_TOKEN); required
    /// when the admin address is not loopback.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Another name the admin API answers to as `Host` (besides its IPs and localhost).
    #[arg(long)]
    admin_host: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate every `*.yaml` gateway in DIR (or one file) and print every error.
    Check {
        /// A directory of gateway configs, or one config file.
        path: PathBuf,
    },
    /// Make the config stream's CA and certificates in DIR (offline; run again to rotate the
    /// certificates under the same CA).
    Certs {
        /// Output directory: `ca.crt`, `ca.key`, then `control-plane/` and one directory per
        /// proxy, each with `tls.crt`, `tls.key` and `ca.crt`.
        #[arg(long)]
        out: PathBuf,
        /// A name (DNS or IP) the control plane is reached by; repeat for more.
        #[arg(long, required = true)]
        server: Vec<String>,
        /// `NAME=GATEWAY[,GATEWAY...]`: a proxy certificate for identity NAME that may
        /// subscribe to those gateways; repeat for more.
        #[arg(long)]
        proxy: Vec<String>,
        /// How long the certificates are valid.
        #[arg(long, default_value = "90days", value_parser = humantime::parse_duration)]
        validity: Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Check { path }) => return check(path),
        Some(Command::Certs {
            out,
            server,
            proxy,
            validity,
        }) => return issue_certs(out, server, proxy, *validity),
        None => {}
    }
    tollgate_shared::process::run("tollgate-cp", run(cli))
}

fn issue_certs(out: &Path, server: &[String], proxy: &[String], validity: Duration) -> ExitCode {
    let plan = certs::Plan {
        out: out.to_path_buf(),
        server_names: server.to_vec(),
        proxies: proxy.to_vec(),
        validity: time::Duration::try_from(validity).unwrap_or(time::Duration::MAX),
    };
    match certs::issue(&plan) {
        Ok(dirs) => {
            for dir in dirs {
                println!("{}", dir.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate-cp certs: {e:#}");
            ExitCode::FAILURE
        }
    }
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
            Ok(config) => {
                for warning in config.warnings() {
                    eprintln!("{}: warning: {warning}", file.display());
                }
                println!(
                    "{} (gateway {name}): valid (version {})",
                    file.display(),
                    Snapshot::new(config).version
                );
            }
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
    let local = cli.listen_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let listen = cli.listen.unwrap_or(SocketAddr::new(local, 15010));
    let admin_addr = cli.admin_addr.unwrap_or(SocketAddr::new(local, 15011));
    let auth = Authenticator {
        client_certs: cli.client_ca.is_some(),
        tokens: cli.tokens_file.as_deref().map(Tokens::load).transpose()?,
    };
    if (auth.is_open() || cli.tls_cert.is_none()) && !cli.insecure {
        anyhow::bail!(
            "the config stream needs TLS (--tls-cert/--tls-key) and proxy credentials (--client-ca and/or --tokens-file); pass --insecure to serve it without"
        );
    }
    if cli.insecure {
        tracing::warn!(
            tls = cli.tls_cert.is_some(),
            credentials = !auth.is_open(),
            "--insecure: the config stream may be read or subscribed to by others"
        );
    }
    let admin_token = read_token(
        cli.admin_token_file.as_deref(),
        "--admin-token-file",
        "TOLLGATE_CP_ADMIN_TOKEN",
    )?;
    require_token_off_loopback(admin_addr, admin_token.as_deref(), admin::TOKEN_HINT)?;
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles::read(cert, key, cli.client_ca.as_deref())?),
        _ => None,
    };

    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(Store::new(metrics.clone()));
    let registry = Arc::new(Registry::new(Limits {
        max_streams: cli.max_streams,
        max_streams_per_identity: cli.max_streams_per_identity,
        forget_after: cli.forget_after,
    }));
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
    let router = admin::router(state, admin_addr, admin_token, cli.admin_host);
    match &tls {
        Some(files) => {
            let listener = TlsListener::new(admin_listener, files.admin_config()?)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "admin server stopped");
                }
            });
        }
        _ => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(admin_listener, router).await {
                    tracing::error!(error = %e, "admin server stopped");
                }
            });
        }
    }
    tracing::info!(%admin_addr, "admin API listening");

    let watch_store = store.clone();
    tokio::spawn(async move {
        if let Err(e) = watch::run(source, watch_store, seen).await {
            tracing::error!(error = %e, "cannot watch the config files; edits will not be picked up");
        }
    });

    let service = StreamService {
        auth,
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
    let mut server = tonic::transport::Server::builder();
    if let Some(files) = &tls {
        server = server
            .tls_config(files.stream_config())
            .map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key/--client-ca: {e}"))?;
    }
    server
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
