//! A real `tollgate` process on free ports with its config in a temp dir.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::{binary, eventually, free_port};

pub struct Proxy {
    child: Child,
    pub dir: TempDir,
    pub config_path: PathBuf,
    pub ip: IpAddr,
    pub admin: SocketAddr,
    pub stats: SocketAddr,
    pub readiness: SocketAddr,
    log_path: PathBuf,
}

/// How to start a proxy; `Proxy::start` covers the common case.
pub struct ProxyOptions<'a> {
    /// Config file text (ignored with `control_plane`).
    pub config: &'a str,
    pub ip: IpAddr,
    pub env: Vec<(&'a str, &'a str)>,
    /// Take snapshots from this control plane (`http://ip:port`, with
    /// `--insecure-control-plane`; or `https://…`) for a gateway.
    pub control_plane: Option<(&'a str, &'a str)>,
    /// More flags (`--allow-env`, `--control-plane-ca`…).
    pub args: Vec<String>,
    /// Working directory (relative paths in the config resolve against it).
    pub cwd: Option<&'a std::path::Path>,
}

impl Default for ProxyOptions<'_> {
    fn default() -> Self {
        ProxyOptions {
            config: "",
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            env: Vec::new(),
            control_plane: None,
            args: Vec::new(),
            cwd: None,
        }
    }
}

impl Proxy {
    /// Starts a proxy on `config` and waits until it is ready.
    pub async fn start(config: &str) -> Proxy {
        let proxy = Proxy::spawn(ProxyOptions {
            config,
            ..Default::default()
        });
        proxy.wait_ready().await;
        proxy
    }

    /// Starts a proxy without waiting.
    pub fn spawn(opts: ProxyOptions<'_>) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, opts.config).unwrap();
        let log_path = dir.path().join("proxy.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let access_log = std::fs::File::create(dir.path().join("access.log")).unwrap();
        let addr = |port| SocketAddr::new(opts.ip, port);
        let (admin, stats, readiness) = (addr(free_port()), addr(free_port()), addr(free_port()));
        let mut cmd = Command::new(binary("tollgate"));
        match opts.control_plane {
            Some((url, gateway)) => {
                cmd.args(["--control-plane", url, "--gateway", gateway]);
                if url.starts_with("http://") {
                    cmd.arg("--insecure-control-plane");
                }
                &mut cmd
            }
            None => cmd.arg("-f").arg(&config_path),
        };
        cmd.arg("--listen-ip")
            .arg(opts.ip.to_string())
            .arg("--admin-addr")
            .arg(admin.to_string())
            .arg("--stats-addr")
            .arg(stats.to_string())
            .arg("--readiness-addr")
            .arg(readiness.to_string())
            .env("RUST_LOG", "info")
            .stdout(access_log)
            .stderr(log)
            .args(&opts.args)
            .kill_on_drop(true);
        if let Some(dir) = opts.cwd {
            cmd.current_dir(dir);
        }
        for (k, v) in opts.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn tollgate");
        Proxy {
            child,
            dir,
            config_path,
            ip: opts.ip,
            admin,
            stats,
            readiness,
            log_path,
        }
    }

    pub async fn wait_ready(&self) {
        let url = format!("http://{}/healthz/ready", self.readiness);
        eventually(Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                match crate::get(&url).await {
                    Ok(r) if r.status() == 200 => Ok(()),
                    Ok(r) => Err(format!("readiness {}", r.status())),
                    Err(e) => Err(format!("readiness: {e}; log:\n{}", self.log())),
                }
            }
        })
        .await
    }

    /// Rewrites the config file in place (as `echo > file` does).
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).unwrap();
    }

    /// Replaces the config file the way editors do: write a new file, rename it over.
    pub fn replace_config(&self, text: &str) {
        let tmp = self.dir.path().join(".config.yaml.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    /// `http://ip:port/path` on one of the config's binds.
    pub fn url(&self, port: u16, path: &str) -> String {
        format!("http://{}:{port}{path}", self.ip)
    }

    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        crate::get_json(&format!("http://{}{path}", self.admin)).await
    }

    /// The applied config's version.
    pub async fn version(&self) -> String {
        self.admin_json("/api/config").await["version"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until the applied version differs from `old`, returning the new one.
    pub async fn wait_version_change(&self, old: &str) -> String {
        eventually(Duration::from_secs(10), || async {
            let v = self.version().await;
            if v != old {
                Ok(v)
            } else {
                Err(format!("still version {old}; log:\n{}", self.log()))
            }
        })
        .await
    }

    pub async fn metrics(&self) -> String {
        crate::get(format!("http://{}/metrics", self.stats))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Sum of all samples of `name` whose labels contain every `label="value"` given.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// What the proxy wrote to stdout: its access log.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// The access log's JSON lines (`format: json`), once there are at least `n`.
    pub async fn access_log_json(&self, n: usize) -> Vec<serde_json::Value> {
        eventually(Duration::from_secs(5), || async {
            let lines: Vec<serde_json::Value> = self
                .access_log()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() >= n {
                Ok(lines)
            } else {
                Err(format!("{} access log lines of {n}", lines.len()))
            }
        })
        .await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the log holds `text` more than `before` times, e.g. a line a child wrote
    /// to its stderr when a call reached it.
    pub async fn wait_log(&self, text: &str, before: usize) {
        eventually(Duration::from_secs(10), || async {
            let log = self.log();
            if log.matches(text).count() > before {
                Ok(())
            } else {
                Err(format!("`{text}` not logged yet; log:\n{log}"))
            }
        })
        .await
    }

    /// Waits until the MCP sessions have `calls` calls in flight in all (admin API).
    pub async fn wait_mcp_in_flight(&self, calls: u64) {
        eventually(Duration::from_secs(10), || async {
            let sessions = self.admin_json("/api/mcp/sessions").await;
            let now: u64 = sessions["sessions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["inFlight"].as_u64())
                .sum();
            if now == calls {
                Ok(())
            } else {
                Err(format!("{now} MCP calls in flight, waiting for {calls}"))
            }
        })
        .await
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends SIGTERM and waits for the exit (at most 20 s).
    pub async fn terminate(&mut self) -> ExitStatus {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("proxy exits after SIGTERM")
            .unwrap()
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("proxy exited")
            .unwrap()
    }
}
