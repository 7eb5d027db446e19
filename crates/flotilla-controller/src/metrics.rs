//! Prometheus metrics of the controllers. The operator binary serves them at `/metrics`.
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 1 ms … ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric the controllers record.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<Labels, Counter>,
    reconcile_errors: Family<Labels, Counter>,
    reconcile_duration: Family<Labels, Histogram, fn() -> Histogram>,
    member_ready: Family<Labels, Gauge>,
    member_probe_latency: Family<Labels, Histogram, fn() -> Histogram>,
    member_transitions: Family<Labels, Counter>,
    placement_changes: Family<Labels, Counter>,
    failovers: Family<Labels, Counter>,
    drift_detected: Family<Labels, Counter>,
    drift_corrected: Family<Labels, Counter>,
    propagation_duration: Family<Labels, Histogram, fn() -> Histogram>,
    status_writes: Family<Labels, Counter>,
    status_write_bytes: Family<Labels, Counter>,
    member_watch_failures: Family<Labels, Counter>,
    orphaned_copies: Family<Labels, Gauge>,
    pub registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("flotilla");
        let m = Self {
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(latency_histogram),
            member_ready: Family::default(),
            member_probe_latency: Family::new_with_constructor(latency_histogram),
            member_transitions: Family::default(),
            placement_changes: Family::default(),
            failovers: Family::default(),
            drift_detected: Family::default(),
            drift_corrected: Family::default(),
            propagation_duration: Family::new_with_constructor(latency_histogram),
            status_writes: Family::default(),
            status_write_bytes: Family::default(),
            member_watch_failures: Family::default(),
            orphaned_copies: Family::default(),
            registry: Arc::new(Registry::default()),
        };
        registry.register(
            "reconciles",
            "Reconciles run, per controller",
            m.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, per controller and error",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, per controller",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "member_ready",
            "1 when the member cluster is Ready",
            m.member_ready.clone(),
        );
        registry.register(
            "member_probe_latency_seconds",
            "Round-trip time of member /readyz probes",
            m.member_probe_latency.clone(),
        );
        registry.register(
            "member_transitions",
            "Member health transitions, per cluster and new state",
            m.member_transitions.clone(),
        );
        registry.register(
            "placement_changes",
            "Changes of the selected cluster set, per kind",
            m.placement_changes.clone(),
        );
        registry.register(
            "failovers",
            "Selected clusters replaced because they became unhealthy, per kind",
            m.failovers.clone(),
        );
        registry.register(
            "drift_detected",
            "Member copies found drifted, per kind",
            m.drift_detected.clone(),
        );
        registry.register(
            "drift_corrected",
            "Drifted member copies restored, per kind",
            m.drift_corrected.clone(),
        );
        registry.register(
            "propagation_duration_seconds",
            "Time to apply one object to all its selected members",
            m.propagation_duration.clone(),
        );
        registry.register(
            "status_writes",
            "Status writes sent to the host, per writer",
            m.status_writes.clone(),
        );
        registry.register(
            "status_write_bytes",
            "Bytes of the status writes sent to the host, per writer",
            m.status_write_bytes.clone(),
        );
        registry.register(
            "member_watch_failures",
            "Member copy watches that failed and were restarted, per cluster",
            m.member_watch_failures.clone(),
        );
        registry.register(
            "orphaned_copies",
            "Copies in a member whose host object is gone, as the last sweep found them, per cluster",
            m.orphaned_copies.clone(),
        );
        Self {
            registry: Arc::new(registry),
            ..m
        }
    }

    pub fn reconciled(&self, controller: &'static str, took: Duration) {
        let labels = vec![("controller", controller.to_string())];
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn reconcile_failed(&self, controller: &'static str, error: &'static str) {
        self.reconcile_errors
            .get_or_create(&vec![
                ("controller", controller.to_string()),
                ("error", error.to_string()),
            ])
            .inc();
    }

    pub fn member_health(&self, cluster: &str, ready: bool, to_state: &'static str) {
        let labels = vec![("cluster", cluster.to_string())];
        self.member_ready
            .get_or_create(&labels)
            .set(i64::from(ready));
        self.member_transitions
            .get_or_create(&vec![
                ("cluster", cluster.to_string()),
                ("state", to_state.to_string()),
            ])
            .inc();
    }

    pub fn member_probed(&self, cluster: &str, latency: Duration) {
        self.member_probe_latency
            .get_or_create(&vec![("cluster", cluster.to_string())])
            .observe(latency.as_secs_f64());
    }

    pub fn forget_member(&self, cluster: &str) {
        let labels = vec![("cluster", cluster.to_string())];
        self.member_ready.remove(&labels);
        self.member_probe_latency.remove(&labels);
        self.member_watch_failures.remove(&labels);
        self.orphaned_copies.remove(&labels);
    }

    pub fn placement_changed(&self, kind: &'static str) {
        self.placement_changes
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }

    pub fn failed_over(&self, kind: &'static str) {
        self.failovers
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }

    pub fn drift(&self, kind: &'static str, corrected: bool) {
        let labels = vec![("kind", kind.to_string())];
        self.drift_detected.get_or_create(&labels).inc();
        if corrected {
            self.drift_corrected.get_or_create(&labels).inc();
        }
    }

    pub fn propagated(&self, kind: &'static str, took: Duration) {
        self.propagation_duration
            .get_or_create(&vec![("kind", kind.to_string())])
            .observe(took.as_secs_f64());
    }

    /// One status write of `bytes` bytes by `writer` (federatedingress, syncer, membercluster).
    pub fn status_written(&self, writer: &'static str, bytes: usize) {
        let labels = vec![("writer", writer.to_string())];
        self.status_writes.get_or_create(&labels).inc();
        self.status_write_bytes
            .get_or_create(&labels)
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    pub fn watch_failed(&self, cluster: &str) {
        self.member_watch_failures
            .get_or_create(&vec![("cluster", cluster.to_string())])
            .inc();
    }

    pub fn orphaned_copies(&self, cluster: &str, count: usize) {
        self.orphaned_copies
            .get_or_create(&vec![("cluster", cluster.to_string())])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_show_up_in_the_exposition() {
        let m = Metrics::new();
        m.reconciled("federatedingress", Duration::from_millis(3));
        m.reconcile_failed("federatedingress", "member_api");
        m.member_health("member1", true, "Ready");
        let text = m.encode();
        assert!(
            text.contains(r#"flotilla_reconciles_total{controller="federatedingress"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"flotilla_reconcile_errors_total{controller="federatedingress",error="member_api"} 1"#
        ));
        assert!(text.contains(r#"flotilla_member_ready{cluster="member1"} 1"#));
    }
}
