//! A real `tollgate-cp` process serving the gateway files of a temp dir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::{binary, free_port};

pub struct ControlPlane {
    child: Option<Child>,
    pub dir: TempDir,
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    log_path: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ControlPlane {
    /// Starts on free ports with `files` (name, text) written into its config dir, in
    /// plaintext and without proxy credentials (`--insecure`).
    pub async fn start(files: &[(&str, &str)]) -> ControlPlane {
        ControlPlane::start_with(files, &["--insecure".to_string()], &[]).await
    }

    /// Starts with these flags (TLS, credentials, limits) instead of `--insecure`, and these
    /// environment variables.
    pub async fn start_with(
        files: &[(&str, &str)],
        args: &[String],
        env: &[(&str, &str)],
    ) -> ControlPlane {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log_path = dir.path().join("cp.log.txt");
        let mut cp = ControlPlane {
            child: None,
            dir,
            grpc,
            admin,
            log_path,
            args: args.to_vec(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        cp.restart().await;
        cp
    }

    /// (Re)starts the process on the same ports and directory.
    pub async fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let child = Command::new(binary("tollgate-cp"))
            .arg("--config-dir")
            .arg(self.dir.path())
            .arg("--listen")
            .arg(self.grpc.to_string())
            .arg("--admin-addr")
            .arg(self.admin.to_string())
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tollgate-cp");
        self.child = Some(child);
        // The stream's port is bound last, after the admin API and the first load.
        crate::eventually(std::time::Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(self.grpc)
                .await
                .map_err(|e| format!("control plane not up: {e}"))
        })
        .await;
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        crate::get_json(&format!("http://{}{path}", self.admin)).await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

/// The first message of a config stream: `node` says hello for `gateway`, as a proxy that
/// takes plain full pushes only (one older than deltas and compression).
pub fn hello(node: &str, gateway: &str, build: &str) -> tollgate_shared::proto::v1::ProxyMessage {
    use tollgate_shared::proto::v1 as pb;
    pb::ProxyMessage {
        kind: Some(pb::proxy_message::Kind::Hello(pb::Hello {
            node_id: node.into(),
            gateway: gateway.into(),
            build: build.into(),
            accepts_delta: false,
            accepts_compressed: false,
        })),
    }
}
