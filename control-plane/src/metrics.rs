//! The control plane's own metrics: proxies, pushes, ACK/NACK and validation failures.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

pub struct Metrics {
    registry: Registry,
    pub connected_proxies: IntGauge,
    pub pushes: IntCounter,
    pub acks: IntCounter,
    pub nacks: IntCounter,
    pub push_to_ack: Histogram,
    pub validation_failures: IntCounterVec,
    /// 1 per connected proxy, labelled with its sync status; refreshed at scrape time.
    pub proxy_status: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let connected_proxies = IntGauge::new(
            "tollgate_cp_connected_proxies",
            "Proxies with an open config stream.",
        )
        .expect("valid");
        let pushes = IntCounter::new("tollgate_cp_pushes_total", "Snapshots sent to proxies.")
            .expect("valid");
        let acks =
            IntCounter::new("tollgate_cp_acks_total", "Snapshots proxies applied.").expect("valid");
        let nacks = IntCounter::new("tollgate_cp_nacks_total", "Snapshots proxies rejected.")
            .expect("valid");
        let push_to_ack = Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_cp_push_to_ack_seconds",
                "Time from a push to its ACK.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )
        .expect("valid");
        let validation_failures = IntCounterVec::new(
            Opts::new(
                "tollgate_cp_validation_failures_total",
                "Config edits rejected, by gateway.",
            ),
            &["gateway"],
        )
        .expect("valid");
        let proxy_status = IntGaugeVec::new(
            Opts::new(
                "tollgate_cp_proxy_status",
                "1 per connected proxy, by node, credential identity, gateway, sync status and acked version.",
            ),
            &["node_id", "identity", "gateway", "status", "version"],
        )
        .expect("valid");
        let registry = tollgate_shared::process::registry(vec![
            Box::new(proxy_status.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(connected_proxies.clone()),
            Box::new(pushes.clone()),
            Box::new(acks.clone()),
            Box::new(nacks.clone()),
            Box::new(push_to_ack.clone()),
            Box::new(validation_failures.clone()),
        ]);
        Metrics {
            registry,
            connected_proxies,
            pushes,
            acks,
            nacks,
            push_to_ack,
            validation_failures,
            proxy_status,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        tollgate_shared::process::render(&[&self.registry], &[])
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
