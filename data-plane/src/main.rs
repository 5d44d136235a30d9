//! `tollgate`: the proxy binary (standalone on a file) and `tollgate check`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tollgate_data_plane::admin;
use tollgate_data_plane::gateway::Gateway;
use tollgate_data_plane::metrics::Metrics;
use tollgate_data_plane::source::allow::PushAllowList;
use tollgate_data_plane::source::control_plane::{
    Connection, ConnectionOptions, ControlPlaneSource,
};
use tollgate_data_plane::source::file::FileSource;
use tollgate_data_plane::source::{Outcome, report};
use tollgate_shared::admin::{read_token, require_token_off_loopback};
use tollgate_shared::config::model::{ListenAddr, Settings};
use tollgate_shared::config::redact;
use tollgate_shared::{ProcessEnv, Snapshot, load_file};

/// glibc malloc spent about a tenth of the proxy's CPU under load (perf, ai route at
/// saturation); mimalloc's thread-local free lists take most of that back. Built without
/// transparent huge pages (`no_thp`): its 2 MiB pages held 8 MiB of RSS at start, 12 MiB under
/// load, for no measurable CPU (docs/perf/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "A gateway for LLM and MCP traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file to serve and watch.
    #[arg(short = 'f', long = "file", conflicts_with = "control_plane")]
    file: Option<PathBuf>,
    /// Take snapshots from a control plane instead, e.g. https://tollgate-cp:15010.
    #[arg(long)]
    control_plane: Option<String>,
    /// Accept a plaintext http:// control plane (tests, local demos).
    #[arg(long, requires = "control_plane")]
    insecure_control_plane: bool,
    /// PEM CA that signed the control plane's certificate (default: the public web roots).
    #[arg(long, requires = "control_plane")]
    control_plane_ca: Option<PathBuf>,
    /// PEM client certificate for the control plane (mutual TLS).
    #[arg(long, requires_all = ["control_plane", "control_plane_key"])]
    control_plane_cert: Option<PathBuf>,
    /// PEM private key of --control-plane-cert.
    #[arg(long, requires = "control_plane_cert")]
    control_plane_key: Option<PathBuf>,
    /// File holding the control plane's bearer token (or set TOLLGATE_CONTROL_PLANE_TOKEN).
    #[arg(long, requires = "control_plane")]
    control_plane_token_file: Option<PathBuf>,
    /// A variable pushed configs may reference (`$NAME`, `inheritEnv`); repeat or comma-separate.
    #[arg(long, value_delimiter = ',', requires = "control_plane")]
    allow_env: Vec<String>,
    /// A stdio command pushed configs may run: an exact path, or a prefix ending with `/`.
    #[arg(long, requires = "control_plane")]
    allow_command: Vec<String>,
    /// A directory files named in pushed configs may come from.
    #[arg(long, requires = "control_plane")]
    allow_files_under: Vec<PathBuf>,
    /// This proxy's id on the control plane (default: hostname-pid).
    #[arg(long)]
    node_id: Option<String>,
    /// Gateway name (the `gateway` metric label).
    #[arg(long, default_value = "default")]
    gateway: String,
    /// Move every bind, admin, metrics and readiness address to this IP (e.g. 127.0.0.2).
    #[arg(long)]
    listen_ip: Option<IpAddr>,
    /// Admin API address (ip:port or off); overrides `config.adminAddr`.
    #[arg(long)]
    admin_addr: Option<String>,
    /// Metrics address (ip:port or off); overrides `config.statsAddr`.
    #[arg(long)]
    stats_addr: Option<String>,
    /// Readiness address (ip:port or off); overrides `config.readinessAddr`.
    #[arg(long)]
    readiness_addr: Option<String>,
    /// Threads that serve client connections, each with its own event loop and upstream
    /// pools (default: one per core); 0 serves them on the shared runtime.
    #[arg(long)]
    workers: Option<usize>,
    /// File holding the admin API's bearer token (or set TOLLGATE_ADMIN_TOKEN); required when
    /// the admin address is not loopback.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and print every error with file:line:column.
    Check {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Print the config's JSON Schema (as committed in `schema/config.json`).
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Check { file }) => return check(file),
        Some(Command::Schema) => {
            let schema = tollgate_shared::config::json_schema();
            println!("{}", serde_json::to_string_pretty(&schema).expect("JSON"));
            return ExitCode::SUCCESS;
        }
        None => {}
    }
    tollgate_shared::process::run("tollgate", run(cli))
}

fn check(file: &std::path::Path) -> ExitCode {
    match load_file(file, &ProcessEnv) {
        Ok(config) => {
            for warning in config.warnings() {
                eprintln!("{}: warning: {warning}", file.display());
            }
            println!(
                "{}: valid (version {})",
                file.display(),
                Snapshot::new(config).version
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", file.display(), errors.len());
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let listen_ip = cli.listen_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let loopback = cli.listen_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let workers = cli
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    tollgate_data_plane::workers::start(workers)?;
    let metrics = Arc::new(Metrics::new());
    let gw = Gateway::new(&cli.gateway, listen_ip, metrics.clone());

    // Process addresses come from the first config file, or from flags and defaults when
    // snapshots come from a control plane (they are not known before the first one).
    let (addrs, source): (Settings, tokio::task::JoinHandle<()>) = match (
        &cli.file,
        &cli.control_plane,
    ) {
        (Some(file), None) => {
            let mut source = FileSource::new(file.clone());
            let snapshot = match source.load() {
                Ok(Some(s)) => s,
                Ok(None) => anyhow::bail!(
                    "{}: the file did not change since it was read",
                    file.display()
                ),
                Err(errors) => anyhow::bail!("invalid config:\n{errors}"),
            };
            let settings = snapshot.config.settings.clone();
            let version = snapshot.version.clone();
            gw.apply(snapshot, source.source())?;
            let outcome = Outcome::Applied { version: &version };
            report(&metrics, &source.source(), outcome);
            let watch_gw = gw.clone();
            let task = tokio::spawn(async move {
                if let Err(e) = source.watch(watch_gw).await {
                    tracing::error!(error = %e, "cannot watch the config file; live reload is off");
                }
            });
            (settings, task)
        }
        (None, Some(url)) => {
            let node_id = cli.node_id.clone().unwrap_or_else(default_node_id);
            tracing::info!(url = %redact::url(url), gateway = %cli.gateway, %node_id, "taking snapshots from the control plane");
            let token = read_token(
                cli.control_plane_token_file.as_deref(),
                "--control-plane-token-file",
                "TOLLGATE_CONTROL_PLANE_TOKEN",
            )?;
            let connection = Connection::new(ConnectionOptions {
                url: url.clone(),
                insecure: cli.insecure_control_plane,
                ca: cli.control_plane_ca.clone(),
                identity: cli
                    .control_plane_cert
                    .clone()
                    .zip(cli.control_plane_key.clone()),
                token,
            })?;
            let cp = ControlPlaneSource {
                connection,
                gateway: cli.gateway.clone(),
                node_id,
                allow: PushAllowList {
                    env: cli.allow_env.clone(),
                    commands: cli.allow_command.clone(),
                    dirs: cli.allow_files_under.clone(),
                },
            };
            let task = tokio::spawn(cp.run(gw.clone()));
            (Settings::defaults(), task)
        }
        _ => anyhow::bail!("no config: pass -f FILE or --control-plane URL (see --help)"),
    };

    tokio::spawn(tollgate_data_plane::source::certs::watch(
        gw.clone(),
        metrics.clone(),
    ));
    tokio::spawn(tollgate_data_plane::source::htpasswd::watch(gw.clone()));
    tokio::spawn(tollgate_data_plane::source::openapi::watch(gw.clone()));

    let admin_addr = resolve_addr(
        cli.admin_addr.as_deref(),
        addrs.admin_addr,
        SocketAddr::new(loopback, 15000),
    )?;
    if let Some(addr) = admin_addr {
        let token = read_token(
            cli.admin_token_file.as_deref(),
            "--admin-token-file",
            "TOLLGATE_ADMIN_TOKEN",
        )?;
        require_token_off_loopback(addr, token.as_deref(), admin::TOKEN_HINT)?;
        // The Playground's origin: MCP routes accept browser requests from it.
        gw.services.mcp.set_admin_addr(addr);
        let router = admin::admin_router(gw.services.clone(), addr, token);
        admin::spawn("admin", addr, router).await?;
    }
    let servers = [
        (
            "metrics",
            &cli.stats_addr,
            addrs.stats_addr,
            SocketAddr::new(listen_ip, 15020),
            admin::stats_router(gw.services.clone()),
        ),
        (
            "readiness",
            &cli.readiness_addr,
            addrs.readiness_addr,
            SocketAddr::new(listen_ip, 15021),
            admin::readiness_router(gw.clone()),
        ),
    ];
    for (name, flag, configured, default, router) in servers {
        if let Some(addr) = resolve_addr(flag.as_deref(), configured, default)? {
            admin::spawn(name, addr, router).await?;
        }
    }

    shutdown_signal().await;
    tracing::info!("shutting down: draining connections");
    source.abort();
    gw.shutdown().await;
    Ok(())
}

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

/// CLI flag, else the config's value, else the default.
fn resolve_addr(
    flag: Option<&str>,
    configured: ListenAddr,
    default: SocketAddr,
) -> anyhow::Result<Option<SocketAddr>> {
    match flag {
        Some("off") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("invalid address `{text}`: {e}")),
        None => Ok(match configured {
            ListenAddr::Default => Some(default),
            ListenAddr::Off => None,
            ListenAddr::At(a) => Some(a),
        }),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on Unix");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
