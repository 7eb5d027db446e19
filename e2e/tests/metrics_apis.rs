//! The members' metrics APIs on the test bed: a real Prometheus (fed through the Pushgateway) and
//! one Prometheus adapter per member, registered in the member's aggregator. Each member's
//! `custom.metrics.k8s.io` (pods, and a Deployment) and `external.metrics.k8s.io` answer with
//! that member's own series, selected by the `cluster` label; a member with no series answers
//! 404. Pure API reads (`kubectl get --raw`, what the operator's member reads go through): no
//! Flotilla operator runs here.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_e2e::TestBed;
use flotilla_e2e::metrics_adapter::{
    Answer, MetricValue, MetricsAdapters, external_path, object_path, pods_path, wait_for_answer,
};
use flotilla_e2e::prometheus::{PrometheusStack, Series};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const PODS_METRIC: &str = "e2e_requests_per_pod";
const DEPLOYMENT_METRIC: &str = "e2e_ready_per_deployment";
const EXTERNAL_METRIC: &str = "e2e_queue_external";

/// A namespace in every member, deleted (without waiting) when the test ends.
struct Namespace<'a> {
    bed: &'a TestBed,
    name: String,
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        for member in self.bed.members() {
            self.bed.kubectl(
                &member,
                &["delete", "namespace", &self.name, "--wait=false"],
            );
        }
    }
}

/// Pods exist as API objects only (no scheduler, no kubelet: they stay Pending), which is all
/// the adapter needs to list them for a pods/* query.
fn pods(bed: &TestBed, member: &str, ns: &str) {
    // The ServiceAccount admission refuses pods until the namespace's `default` ServiceAccount
    // exists (made by the controller-manager).
    let start = Instant::now();
    while !bed
        .kubectl(member, &["-n", ns, "get", "serviceaccount", "default"])
        .status
        .success()
    {
        assert!(
            start.elapsed() < WAIT,
            "{member}: no default ServiceAccount in {ns}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (name, app) in [("web-0", "web"), ("web-1", "web"), ("other-0", "other")] {
        bed.apply(
            member,
            &json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
                "spec": {
                    "automountServiceAccountToken": false,
                    "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]
                }
            })
            .to_string(),
        );
    }
}

fn values(items: &[(&str, f64)]) -> Answer {
    Answer::Values(
        items
            .iter()
            .map(|(object, value)| MetricValue {
                object: object.to_string(),
                value: *value,
            })
            .collect(),
    )
}

/// Every member but the last gets its own values (member k: pods 10k+1, 10k+2 and 10k+9,
/// Deployment 100+k, external 200+k and 300+k); the last gets none and must answer 404 for all
/// three (with two members, both get values).
#[test]
fn each_member_serves_its_own_series() {
    let bed = TestBed::get();
    let members = bed.members();
    assert!(
        members.len() >= 2,
        "the test bed needs two members, has {members:?}"
    );
    let prom = PrometheusStack::start();
    let started = Instant::now();
    let _adapters = MetricsAdapters::start(&bed, &prom);
    eprintln!(
        "adapters of {} members started and Available in {:?}",
        members.len(),
        started.elapsed()
    );
    let ns = Namespace {
        bed: &bed,
        name: bed.namespace("metrics"),
    };
    let ns_doc =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name}}).to_string();
    for member in &members {
        bed.apply(member, &ns_doc);
        pods(&bed, member, &ns.name);
    }

    let with_values: Vec<(usize, &String)> = if members.len() >= 3 {
        members[..members.len() - 1].iter().enumerate().collect()
    } else {
        members.iter().enumerate().collect()
    };
    let ns_name = ns.name.as_str();
    for (i, member) in &with_values {
        let k = (*i + 1) as f64;
        let cluster = member.as_str();
        let pod = |pod: &'static str, value: f64| Series {
            name: PODS_METRIC,
            labels: vec![("cluster", cluster), ("namespace", ns_name), ("pod", pod)],
            value,
        };
        let queue = |queue: &'static str, value: f64| Series {
            name: EXTERNAL_METRIC,
            labels: vec![
                ("cluster", cluster),
                ("namespace", ns_name),
                ("queue", queue),
            ],
            value,
        };
        let series = [
            pod("web-0", 10.0 * k + 1.0),
            pod("web-1", 10.0 * k + 2.0),
            pod("other-0", 10.0 * k + 9.0),
            Series {
                name: DEPLOYMENT_METRIC,
                labels: vec![
                    ("cluster", cluster),
                    ("namespace", ns_name),
                    ("deployment", "web"),
                ],
                value: 100.0 + k,
            },
            queue("a", 200.0 + k),
            queue("b", 300.0 + k),
        ];
        prom.push_series(&format!("{ns_name}-{member}"), &series);
    }
    // A series of another cluster in the same namespace, which no member may serve.
    prom.push_series(
        &format!("{ns_name}-elsewhere"),
        &[Series {
            name: EXTERNAL_METRIC,
            labels: vec![
                ("cluster", "elsewhere"),
                ("namespace", ns_name),
                ("queue", "a"),
            ],
            value: 1000.0,
        }],
    );

    let pushed = Instant::now();
    for (i, member) in &with_values {
        let k = (*i + 1) as f64;
        wait_for_answer(
            &bed,
            member,
            &pods_path(ns_name, PODS_METRIC, Some("app=web")),
            &values(&[("web-0", 10.0 * k + 1.0), ("web-1", 10.0 * k + 2.0)]),
            WAIT,
        );
        wait_for_answer(
            &bed,
            member,
            &pods_path(ns_name, PODS_METRIC, None),
            &values(&[
                ("other-0", 10.0 * k + 9.0),
                ("web-0", 10.0 * k + 1.0),
                ("web-1", 10.0 * k + 2.0),
            ]),
            WAIT,
        );
        wait_for_answer(
            &bed,
            member,
            &object_path(ns_name, "deployments.apps", "web", DEPLOYMENT_METRIC),
            &values(&[("web", 100.0 + k)]),
            WAIT,
        );
        wait_for_answer(
            &bed,
            member,
            &external_path(ns_name, EXTERNAL_METRIC, None),
            &values(&[("", 500.0 + 2.0 * k)]),
            WAIT,
        );
        wait_for_answer(
            &bed,
            member,
            &external_path(ns_name, EXTERNAL_METRIC, Some("queue=a")),
            &values(&[("", 200.0 + k)]),
            WAIT,
        );
        eprintln!(
            "{member}: pods, Deployment and external values as pushed ({:?} after the push)",
            pushed.elapsed()
        );
    }
    if members.len() >= 3 {
        let last = members.last().unwrap();
        for path in [
            pods_path(ns_name, PODS_METRIC, None),
            object_path(ns_name, "deployments.apps", "web", DEPLOYMENT_METRIC),
            external_path(ns_name, EXTERNAL_METRIC, None),
        ] {
            wait_for_answer(&bed, last, &path, &Answer::NotFound, WAIT);
        }
        eprintln!("{last}: no series of its own, 404 for all three");
    }
}
