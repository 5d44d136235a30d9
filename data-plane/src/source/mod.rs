//! Where snapshots come from. Every source ends in `Gateway::apply` and reports what became of
//! the config through [`report`], so that reloads log and count alike whatever their source.

pub mod allow;
pub mod certs;
pub mod control_plane;
pub mod file;
mod files;
pub mod htpasswd;
pub mod openapi;

use tollgate_shared::SnapshotSource;

use crate::metrics::Metrics;

/// What became of a config a source offered.
pub enum Outcome<'a> {
    Applied {
        version: &'a str,
    },
    /// Not in force: the previous config, if any, keeps serving.
    Rejected {
        version: Option<&'a str>,
        error: &'a str,
    },
}

/// One log line, `agentgateway_config_reloads_total{source, result}` and
/// `agentgateway_config_synchronized`.
pub fn report(metrics: &Metrics, source: &SnapshotSource, outcome: Outcome<'_>) {
    let label = match source {
        SnapshotSource::File(_) => "file",
        SnapshotSource::ControlPlane(_) => "control-plane",
    };
    let (result, synchronized) = match outcome {
        Outcome::Applied { version } => {
            tracing::info!(%source, %version, "config applied");
            ("success", 1)
        }
        Outcome::Rejected { version, error } => {
            tracing::error!(%source, version = version.unwrap_or("-"), "config rejected; the last good config keeps serving:\n{error}");
            ("failure", 0)
        }
    };
    metrics.reloads.with_label_values(&[label, result]).inc();
    metrics.config_synchronized.set(synchronized);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_count_by_source_and_result_and_set_the_gauge() {
        let m = Metrics::new();
        let file = SnapshotSource::File("gw.yaml".into());
        let cp = SnapshotSource::ControlPlane("http://cp".into());
        report(&m, &file, Outcome::Applied { version: "v1" });
        assert_eq!(m.config_synchronized.get(), 1);
        let error = "bad";
        report(
            &m,
            &cp,
            Outcome::Rejected {
                version: Some("v2"),
                error,
            },
        );
        assert_eq!(m.config_synchronized.get(), 0);
        let count = |labels: [&str; 2]| m.reloads.with_label_values(&labels).get();
        assert_eq!(count(["file", "success"]), 1);
        assert_eq!(count(["control-plane", "failure"]), 1);
        assert_eq!(count(["control-plane", "success"]), 0);
    }
}
