//! The members' metrics APIs: one Prometheus adapter per member cluster of the test bed, serving
//! `custom.metrics.k8s.io` and `external.metrics.k8s.io` through the member's aggregator from a
//! [`PrometheusStack`]. The adapters are started and registered by
//! `e2e/testbed/clusters.sh metrics-adapter start <prometheus-url>` and unregistered and stopped
//! on drop (`metrics-adapter stop`): an APIService left without its server would make discovery,
//! and with it namespace deletion, fail in that member.
//!
//! Each member's adapter serves only the series labelled `cluster="<member>"`, and the series
//! name picks the API (rules in `e2e/testbed/prometheus-adapter/rules.yaml`):
//!
//! | series name | labels | served as |
//! | --- | --- | --- |
//! | `<name>_per_pod` ([`POD_SUFFIX`]) | `namespace`, `pod`, `cluster` | pods metric ([`pods_path`]) |
//! | `<name>_per_deployment` ([`DEPLOYMENT_SUFFIX`]) | `namespace`, `deployment`, `cluster` | metric of a Deployment ([`object_path`]) |
//! | `<name>_external` ([`EXTERNAL_SUFFIX`]) | `namespace`, `cluster` | external metric, summed ([`external_path`]) |
//!
//! Push such series with [`PrometheusStack::push_series`]. A pods query lists only pods that
//! exist in the member (the adapter lists them from the member's API server).
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::prometheus::{PrometheusStack, encode};
use crate::{TestBed, repo_root};

/// Series ending in this are pods metrics of `custom.metrics.k8s.io`.
pub const POD_SUFFIX: &str = "_per_pod";
/// Series ending in this are Deployment metrics of `custom.metrics.k8s.io`.
pub const DEPLOYMENT_SUFFIX: &str = "_per_deployment";
/// Series ending in this are metrics of `external.metrics.k8s.io`.
pub const EXTERNAL_SUFFIX: &str = "_external";

/// The running adapters of a test bed's members; stopped (and their APIServices removed) on drop.
pub struct MetricsAdapters {
    state: PathBuf,
}

fn clusters_sh(state: &PathBuf, args: &[&str]) -> std::io::Result<Output> {
    Command::new(repo_root().join("e2e/testbed/clusters.sh"))
        .args(args)
        .env("FLOTILLA_STATE", state)
        .output()
}

impl MetricsAdapters {
    /// Starts (or restarts, pointed at `prometheus`) one adapter per member of `bed` and waits
    /// until every member's APIServices are Available.
    pub fn start(bed: &TestBed, prometheus: &PrometheusStack) -> Self {
        let state = bed.state_dir();
        let url = prometheus.url();
        let out = clusters_sh(&state, &["metrics-adapter", "start", &url])
            .expect("e2e/testbed/clusters.sh runs");
        assert!(
            out.status.success(),
            "clusters.sh metrics-adapter start {url} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Self { state }
    }

    /// The adapter log of `member`.
    pub fn log(&self, member: &str) -> String {
        std::fs::read_to_string(self.state.join(member).join("metrics-adapter.log"))
            .unwrap_or_default()
    }
}

impl Drop for MetricsAdapters {
    fn drop(&mut self) {
        match clusters_sh(&self.state, &["metrics-adapter", "stop"]) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "clusters.sh metrics-adapter stop failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("clusters.sh metrics-adapter stop: {e}"),
        }
    }
}

/// `/apis/custom.metrics.k8s.io/v1beta1/namespaces/<ns>/pods/*/<metric>`, with a pod label
/// selector when given.
pub fn pods_path(namespace: &str, metric: &str, selector: Option<&str>) -> String {
    let mut path =
        format!("/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/*/{metric}");
    if let Some(s) = selector {
        path.push_str(&format!("?labelSelector={}", encode(s)));
    }
    path
}

/// `/apis/custom.metrics.k8s.io/v1beta1/namespaces/<ns>/<resource>/<name>/<metric>`, e.g. for
/// `resource` `deployments.apps`.
pub fn object_path(namespace: &str, resource: &str, name: &str, metric: &str) -> String {
    format!("/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/{resource}/{name}/{metric}")
}

/// `/apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>`, with a metric label
/// selector when given.
pub fn external_path(namespace: &str, metric: &str, selector: Option<&str>) -> String {
    let mut path = format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}");
    if let Some(s) = selector {
        path.push_str(&format!("?labelSelector={}", encode(s)));
    }
    path
}

/// One value a metrics API returned: the object it describes (`describedObject.name`; empty for
/// external metrics) and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    /// `describedObject.name`, empty for external metrics.
    pub object: String,
    /// The quantity, as a number.
    pub value: f64,
}

/// What a metrics API answered to a GET.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The values (a list, or the single object of an object metric).
    Values(Vec<MetricValue>),
    /// 404: the adapter knows no such metric (no series of it for this member).
    NotFound,
}

/// GETs `path` on `member`'s API server (`kubectl get --raw`), through the aggregator.
pub fn read(bed: &TestBed, member: &str, path: &str) -> Result<Answer> {
    let out = bed.kubectl(member, &["get", "--raw", path]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if err.contains("NotFound") || err.contains("could not find") {
            return Ok(Answer::NotFound);
        }
        bail!("kubectl --context {member} get --raw {path}: {err}");
    }
    let body: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{path}: not JSON: {}", String::from_utf8_lossy(&out.stdout)))?;
    let items = match body["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![body.clone()], // MetricValue of a single object
    };
    let mut values = Vec::new();
    for item in &items {
        let raw = item["value"]
            .as_str()
            .with_context(|| format!("{path}: an item without a value: {item}"))?;
        let value = parse_quantity(raw)
            .with_context(|| format!("{path}: the value {raw:?} is not a quantity"))?;
        let object = item["describedObject"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        values.push(MetricValue { object, value });
    }
    values.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(Answer::Values(values))
}

/// Polls [`read`] until it answers `expected` (values compared by object, then value); panics
/// with the last answer and the adapter's log tail after `timeout`.
pub fn wait_for_answer(
    bed: &TestBed,
    member: &str,
    path: &str,
    expected: &Answer,
    timeout: Duration,
) {
    let start = Instant::now();
    loop {
        let last = read(bed, member, path);
        if let Ok(answer) = &last
            && same(answer, expected)
        {
            return;
        }
        if start.elapsed() > timeout {
            let log =
                std::fs::read_to_string(bed.state_dir().join(member).join("metrics-adapter.log"))
                    .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{member} {path}: expected {expected:?} within {timeout:?}, last answer {last:?}\nadapter log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn same(a: &Answer, b: &Answer) -> bool {
    match (a, b) {
        (Answer::NotFound, Answer::NotFound) => true,
        (Answer::Values(a), Answer::Values(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    x.object == y.object
                        && (x.value - y.value).abs() <= 1e-9 * y.value.abs().max(1.0)
                })
        }
        _ => false,
    }
}

/// Parses a Kubernetes quantity (`12`, `1500m`, `2k`, `1.5Mi`, `3e2`) into a number.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let suffixes: [(&str, f64); 15] = [
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = s.strip_suffix(suffix)
            && let Ok(v) = number.parse::<f64>()
        {
            return Some(v * factor);
        }
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quantities() {
        assert_eq!(parse_quantity("12"), Some(12.0));
        assert_eq!(parse_quantity("1500m"), Some(1.5));
        assert_eq!(parse_quantity("2k"), Some(2000.0));
        assert_eq!(parse_quantity("1Ki"), Some(1024.0));
        assert_eq!(parse_quantity("3e2"), Some(300.0));
        assert_eq!(parse_quantity("-4"), Some(-4.0));
        assert_eq!(parse_quantity("x"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(
            pods_path("ns", "a_per_pod", Some("app=web")),
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/pods/*/a_per_pod?labelSelector=app%3Dweb"
        );
        assert_eq!(
            object_path("ns", "deployments.apps", "web", "b_per_deployment"),
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/deployments.apps/web/b_per_deployment"
        );
        assert_eq!(
            external_path("ns", "c_external", None),
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/c_external"
        );
    }
}
