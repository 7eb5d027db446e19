//! ScalingPolicy end to end: a real Prometheus and Pushgateway feed an External metric; the
//! operator scales a Deployment spread over member clusters through their scale subresources.
//! Scale-up limited by the rate policy, the split following the weights, scale-down after the
//! stabilization window, a killed member's share moving to the others, no scaling while
//! Prometheus is down or the query returns nothing, a member HPA respected (then taken over),
//! and bad input reported as conditions.
//!
//! The test bed has no kubelets: Deployments never get running pods, but their scale
//! subresource (`spec.replicas`) is all the controller reads and writes.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flotilla_api::ScalingPolicy;
use flotilla_e2e::prometheus::PrometheusStack;
use flotilla_e2e::{Operator, OperatorOptions, Outage, TestBed, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const TARGET: &str = "web";

/// The workload in one member, with `replicas`.
fn deployment(bed: &TestBed, member: &str, ns: &str, replicas: i32) {
    bed.apply(
        member,
        &json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": TARGET, "namespace": ns},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": TARGET}},
                "template": {
                    "metadata": {"labels": {"app": TARGET}},
                    "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]}
                }
            }
        })
        .to_string(),
    );
}

/// A policy on `sum(<metric>{job="<ns>"})` with an AverageValue target of 10 per replica.
fn policy(ns: &str, metric: &str, spec: Value) -> String {
    let mut s = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": TARGET},
        "metrics": [{
            "type": "External",
            "external": {
                "metric": {"name": metric},
                "prometheus": {"query": format!(r#"sum({metric}{{job="{ns}"}})"#)},
                "target": {"type": "AverageValue", "averageValue": "10"}
            }
        }],
    });
    if let (Some(s), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "ScalingPolicy",
        "metadata": {"name": "web", "namespace": ns},
        "spec": s,
    })
    .to_string()
}

fn operator(bed: &TestBed, name: &str, prometheus: &PrometheusStack) -> Operator {
    Operator::start_with(
        bed,
        name,
        OperatorOptions {
            extra_env: vec![("FLOTILLA_PROMETHEUS_URL".into(), prometheus.url())],
            ..OperatorOptions::default()
        },
    )
}

/// `spec.replicas` of the workload in each member (None where it does not exist).
async fn replicas(bed: &TestBed, ns: &str, members: &[&str]) -> Vec<Option<i32>> {
    let mut out = Vec::new();
    for m in members {
        let api: Api<Deployment> = Api::namespaced(bed.client(m).await, ns);
        out.push(
            api.get_opt(TARGET)
                .await
                .unwrap()
                .and_then(|d| d.spec)
                .and_then(|s| s.replicas),
        );
    }
    out
}

async fn wait_replicas(bed: &TestBed, ns: &str, members: &[&str], want: &[i32], timeout: Duration) {
    let want: Vec<Option<i32>> = want.iter().map(|r| Some(*r)).collect();
    let what = format!("replicas {want:?} in {members:?}");
    eventually(&what, timeout, || {
        let want = want.clone();
        async move {
            let now = replicas(bed, ns, members).await;
            Ok((now == want).then_some(()))
        }
    })
    .await
    .unwrap();
}

async fn get_policy(bed: &TestBed, ns: &str) -> ScalingPolicy {
    let api: Api<ScalingPolicy> = Api::namespaced(bed.client("host").await, ns);
    api.get("web").await.unwrap()
}

/// Waits until the policy satisfies `check`; returns it. Status is written after the replicas,
/// so a test that has just seen the replicas change must wait for it.
async fn wait_policy(
    bed: &TestBed,
    ns: &str,
    what: &str,
    check: impl Fn(&ScalingPolicy) -> bool,
) -> ScalingPolicy {
    let check = &check;
    eventually(what, WAIT, || async move {
        let sp = get_policy(bed, ns).await;
        Ok(check(&sp).then_some(sp))
    })
    .await
    .unwrap()
}

fn desired_total(sp: &ScalingPolicy) -> Option<i32> {
    sp.status.as_ref().and_then(|s| s.desired_replicas)
}

/// (status, reason, message) of a condition.
fn condition(sp: &ScalingPolicy, type_: &str) -> Option<(String, String, String)> {
    sp.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn wait_condition(
    bed: &TestBed,
    ns: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> String {
    let what = format!("{type_}={status} ({reason})");
    eventually(&what, WAIT, || async move {
        let sp = get_policy(bed, ns).await;
        Ok(condition(&sp, type_)
            .filter(|(s, r, _)| s == status && r == reason)
            .map(|(_, _, m)| m))
    })
    .await
    .unwrap()
}

fn cluster_state(sp: &ScalingPolicy, cluster: &str) -> Option<(String, i32)> {
    sp.status
        .as_ref()?
        .clusters
        .iter()
        .find(|c| c.cluster == cluster)
        .map(|c| (c.state.clone(), c.desired_replicas))
}

/// Waits until the namespace's events contain every one of `needles`; returns them all.
async fn wait_events(bed: &TestBed, ns: &str, needles: &[&str]) -> String {
    eventually(&format!("events {needles:?}"), WAIT, || {
        let all = bed.events(ns);
        async move { Ok(needles.iter().all(|n| all.contains(n)).then_some(all)) }
    })
    .await
    .unwrap()
}

/// Keeps asserting `check` for `period`.
async fn holds(what: &str, period: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < period {
        assert!(
            check().await,
            "{what}: stopped holding after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn scales_with_a_prometheus_metric_within_its_policies_and_weights() {
    let bed = TestBed::get();
    bed.federation();
    let prom = PrometheusStack::start();
    let _op = operator(&bed, "scaling-rise-fall", &prom);
    let ns = bed.namespace_everywhere("sp-rise");
    let members = ["member1", "member2"];
    // Already at the split the first value asks for, so the first scale-up period starts clean.
    deployment(&bed, "member1", &ns, 2);
    deployment(&bed, "member2", &ns, 1);
    prom.set(&ns, "sp_queue", 30.0);
    bed.apply(
        "host",
        &policy(
            &ns,
            "sp_queue",
            json!({
                "placement": {"clusters": members},
                "minReplicas": 1, "maxReplicas": 30,
                "distribution": {"clusters": [{"name": "member1", "weight": 2}, {"name": "member2", "weight": 1}]},
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 3, "periodSeconds": 5}]},
                    "scaleDown": {"stabilizationWindowSeconds": 5, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}]}
                }
            }),
        ),
    );
    // 30 / 10 per replica = 3, split 2:1.
    wait_replicas(&bed, &ns, &members, &[2, 1], WAIT).await;
    wait_policy(&bed, &ns, "desired 3 from a valid metric", |sp| {
        desired_total(sp) == Some(3)
            && condition(sp, "ScalingActive").map(|c| c.1).as_deref() == Some("ValidMetricFound")
    })
    .await;

    // 120 → 12 replicas, but at most +3 pods per 5 s: 3 → 6 → 9 → 12.
    let visible = prom.set(&ns, "sp_queue", 120.0);
    let mut seen: Vec<(Duration, i32)> = Vec::new();
    while seen.last().map(|(_, t)| *t) != Some(12) {
        assert!(
            visible.elapsed() < Duration::from_secs(40),
            "did not reach 12: {seen:?}"
        );
        let now = replicas(&bed, &ns, &members).await;
        let total: i32 = now.iter().flatten().sum();
        if seen.last().map(|(_, t)| *t) != Some(total) {
            seen.push((visible.elapsed(), total));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("scale-up totals after the metric became visible: {seen:?}");
    // Totals between writes can be transient (one member written before the other); the steps
    // the autoscaler made are those reached by both members.
    let steps: Vec<i32> = seen
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| t % 3 == 0)
        .collect();
    assert_eq!(steps.first(), Some(&3), "{seen:?}");
    assert!(
        steps.contains(&6) && steps.contains(&9),
        "the rate limit should make steps of 3: {seen:?}"
    );
    let reached_6 = seen.iter().find(|(_, t)| *t == 6).map(|(d, _)| *d).unwrap();
    let reached_12 = seen.last().map(|(d, _)| *d).unwrap();
    assert!(
        reached_12 - reached_6 >= Duration::from_secs(9),
        "two more 5 s periods from 6 to 12: {seen:?}"
    );
    wait_replicas(&bed, &ns, &members, &[8, 4], WAIT).await;
    let sp = wait_policy(&bed, &ns, "status at 12 = 8 + 4", |sp| {
        sp.status
            .as_ref()
            .is_some_and(|s| (s.desired_replicas, s.current_replicas) == (Some(12), Some(12)))
            && cluster_state(sp, "member1") == Some(("Scaled".into(), 8))
    })
    .await;
    assert!(sp.status.unwrap().last_scale_time.is_some());
    wait_events(
        &bed,
        &ns,
        &[
            "SuccessfulRescale: New size: 6",
            "split: member1=8, member2=4",
        ],
    )
    .await;

    // 50 → 5 replicas, only once the 5 s scale-down window has passed.
    let visible = prom.set(&ns, "sp_queue", 50.0);
    holds(
        "replicas stay up within the scale-down window",
        Duration::from_secs(3),
        async || replicas(&bed, &ns, &members).await == vec![Some(8), Some(4)],
    )
    .await;
    wait_replicas(&bed, &ns, &members, &[3, 2], WAIT).await;
    let fell_after = visible.elapsed();
    println!("scale-down 12 → 5 after {fell_after:?}");
    // The window runs from the last high recommendation, made by the last poll before the new
    // value was visible: at most one poll (1 s) earlier.
    assert!(
        fell_after >= Duration::from_millis(3500),
        "fell too early: {fell_after:?}"
    );
    wait_policy(&bed, &ns, "desired 5", |sp| desired_total(sp) == Some(5)).await;
}

#[tokio::test]
async fn a_killed_members_share_moves_to_the_others_and_back() {
    let bed = TestBed::get();
    bed.federation();
    let prom = PrometheusStack::start();
    let _op = operator(&bed, "scaling-failover", &prom);
    let ns = bed.namespace_everywhere("sp-fail");
    let members = ["member1", "member2", "member3"];
    for m in members {
        deployment(&bed, m, &ns, 1);
    }
    prom.set(&ns, "sp_load", 90.0);
    bed.apply(
        "host",
        &policy(
            &ns,
            "sp_load",
            json!({
                "placement": {
                    "clusters": members,
                    "constraints": {"tolerations": [{"key": "flotilla.dev/cost-tier", "operator": "Exists"}]}
                },
                "minReplicas": 1, "maxReplicas": 30,
                "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 30, "periodSeconds": 1}]}}
            }),
        ),
    );
    wait_replicas(&bed, &ns, &members, &[3, 3, 3], WAIT).await;

    let killed = Instant::now();
    let mut outage = Outage::kill(&bed, "member2");
    // The total stays 9; member2's 3 go to member1 and member3.
    let survivors = ["member1", "member3"];
    eventually("member2's share moved", Duration::from_secs(90), || async {
        let r = replicas(&bed, &ns, &survivors).await;
        Ok((r.iter().flatten().sum::<i32>() == 9).then_some(()))
    })
    .await
    .unwrap();
    println!("share moved {:?} after the kill", killed.elapsed());
    let r = replicas(&bed, &ns, &survivors).await;
    assert!(r.iter().all(|x| matches!(x, Some(4 | 5))), "{r:?}");
    wait_policy(&bed, &ns, "9 desired, member2 unreachable", |sp| {
        desired_total(sp) == Some(9)
            && cluster_state(sp, "member2").map(|c| c.0).as_deref() == Some("Unreachable")
    })
    .await;
    wait_events(&bed, &ns, &["FailedOver", "ReplicasRedistributed"]).await;

    outage.restore();
    wait_replicas(&bed, &ns, &members, &[3, 3, 3], Duration::from_secs(90)).await;
    wait_policy(&bed, &ns, "member2 scaled to 3 again", |sp| {
        cluster_state(sp, "member2") == Some(("Scaled".into(), 3))
    })
    .await;
}

#[tokio::test]
async fn missing_metrics_never_scale() {
    let bed = TestBed::get();
    bed.federation();
    let mut prom = PrometheusStack::start();
    let _op = operator(&bed, "scaling-no-data", &prom);
    let ns = bed.namespace_everywhere("sp-nodata");
    let members = ["member1", "member2"];
    for m in members {
        deployment(&bed, m, &ns, 2);
    }
    let spec = json!({
        "placement": {"clusters": members},
        "minReplicas": 1, "maxReplicas": 10,
        "behavior": {
            "scaleUp": {"policies": [{"type": "Pods", "value": 10, "periodSeconds": 1}]},
            "scaleDown": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}]}
        }
    });
    bed.apply("host", &policy(&ns, "sp_absent", spec));

    // Nothing pushed yet: the query returns no sample.
    let message = wait_condition(
        &bed,
        &ns,
        "ScalingActive",
        "False",
        "FailedGetExternalMetric",
    )
    .await;
    assert!(message.contains("no samples"), "{message}");
    holds(
        "no scaling without a sample",
        Duration::from_secs(4),
        async || replicas(&bed, &ns, &members).await == vec![Some(2), Some(2)],
    )
    .await;

    // A value: 60 → 6, split evenly.
    prom.set(&ns, "sp_absent", 60.0);
    wait_replicas(&bed, &ns, &members, &[3, 3], WAIT).await;
    wait_condition(&bed, &ns, "ScalingActive", "True", "ValidMetricFound").await;

    // Prometheus down: the condition says so, and the replicas stay, even though the load
    // pushed meanwhile would scale down to 1.
    prom.stop_prometheus();
    prom.push(&ns, "sp_absent", 5.0);
    let message = wait_condition(
        &bed,
        &ns,
        "ScalingActive",
        "False",
        "FailedGetExternalMetric",
    )
    .await;
    assert!(message.contains("unreachable"), "{message}");
    // Polled every second, but nothing changes: no status write either.
    let version = get_policy(&bed, &ns).await.metadata.resource_version;
    holds(
        "no scaling while Prometheus is down",
        Duration::from_secs(5),
        async || replicas(&bed, &ns, &members).await == vec![Some(3), Some(3)],
    )
    .await;
    assert_eq!(
        get_policy(&bed, &ns).await.metadata.resource_version,
        version,
        "status rewritten without a change"
    );
    assert_eq!(desired_total(&get_policy(&bed, &ns).await), Some(6));

    // Back: the pushed value (5 → 1 replica) applies.
    prom.start_prometheus();
    wait_condition(&bed, &ns, "ScalingActive", "True", "ValidMetricFound").await;
    let r = eventually(
        "scaled down to 1 after Prometheus returned",
        WAIT,
        || async {
            let r = replicas(&bed, &ns, &members).await;
            Ok((r.iter().flatten().sum::<i32>() == 1).then_some(r))
        },
    )
    .await
    .unwrap();
    println!("after Prometheus returned: {r:?}");
}

#[tokio::test]
async fn a_member_hpa_is_respected_then_taken_over() {
    let bed = TestBed::get();
    bed.federation();
    let prom = PrometheusStack::start();
    let _op = operator(&bed, "scaling-conflict", &prom);
    let ns = bed.namespace_everywhere("sp-hpa");
    let members = ["member1", "member2"];
    deployment(&bed, "member1", &ns, 1);
    deployment(&bed, "member2", &ns, 4);
    bed.apply(
        "member2",
        &json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "local", "namespace": &*ns},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": TARGET},
                "minReplicas": 1, "maxReplicas": 10, "targetCPUUtilizationPercentage": 80
            }
        })
        .to_string(),
    );
    prom.set(&ns, "sp_conflict", 60.0);
    bed.apply(
        "host",
        &policy(
            &ns,
            "sp_conflict",
            json!({
                "placement": {"clusters": members},
                "minReplicas": 1, "maxReplicas": 10,
                "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 10, "periodSeconds": 1}]}}
            }),
        ),
    );
    // member2 is left to its HPA: member1 takes the whole total of 6.
    let message = wait_condition(
        &bed,
        &ns,
        "MemberConflict",
        "True",
        "MemberAutoscalerConflict",
    )
    .await;
    assert!(
        message.contains(&format!("member2: {ns}/local")),
        "{message}"
    );
    wait_replicas(&bed, &ns, &members, &[6, 4], WAIT).await;
    holds("member2 untouched", Duration::from_secs(4), async || {
        replicas(&bed, &ns, &members).await == vec![Some(6), Some(4)]
    })
    .await;
    wait_policy(&bed, &ns, "member2 in Conflict", |sp| {
        cluster_state(sp, "member2").map(|c| c.0).as_deref() == Some("Conflict")
    })
    .await;
    wait_events(&bed, &ns, &["MemberAutoscalerConflict"]).await;

    // TakeOver: Flotilla writes member2's share too.
    bed.kubectl_ok(
        "host",
        &[
            "patch",
            "scalingpolicy",
            "web",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"memberAutoscalerConflict":"TakeOver"}}"#,
        ],
    );
    wait_condition(
        &bed,
        &ns,
        "MemberConflict",
        "True",
        "MemberAutoscalerTakenOver",
    )
    .await;
    wait_replicas(&bed, &ns, &members, &[3, 3], WAIT).await;
}

#[tokio::test]
async fn bad_input_is_reported_as_conditions() {
    let bed = TestBed::get();
    bed.federation();
    let prom = PrometheusStack::start();
    let _op = operator(&bed, "scaling-bad-input", &prom);
    let ns = bed.namespace_everywhere("sp-bad");
    let members = ["member1", "member2"];
    deployment(&bed, "member1", &ns, 2);

    // A PromQL syntax error; the workload exists only in member1.
    let mut doc: Value = serde_json::from_str(&policy(
        &ns,
        "x",
        json!({"placement": {"clusters": members}, "maxReplicas": 5}),
    ))
    .unwrap();
    doc["spec"]["metrics"][0]["external"]["prometheus"]["query"] = json!("sum(rate(");
    bed.apply("host", &doc.to_string());
    let message = wait_condition(&bed, &ns, "ScalingActive", "False", "QueryParseError").await;
    assert!(
        message.contains("metrics[0].external.prometheus.query"),
        "{message}"
    );
    // A query Prometheus cannot answer with one number (no series yet).
    doc["spec"]["metrics"][0]["external"]["prometheus"]["query"] = json!("sum(x)");
    bed.apply("host", &doc.to_string());
    let message = wait_condition(
        &bed,
        &ns,
        "ScalingActive",
        "False",
        "FailedGetExternalMetric",
    )
    .await;
    assert!(message.contains("no samples"), "{message}");
    let sp = eventually("member2 reported TargetMissing", WAIT, || async {
        let sp = get_policy(&bed, &ns).await;
        Ok(cluster_state(&sp, "member2")
            .filter(|c| c.0 == "TargetMissing")
            .map(|_| sp))
    })
    .await
    .unwrap();
    assert_eq!(
        cluster_state(&sp, "member1").map(|c| c.0),
        Some("Scaled".into())
    );
    assert_eq!(replicas(&bed, &ns, &["member1"]).await, vec![Some(2)]);

    // A target reference that is not a group/version: refused at admission where the API
    // server runs the CRD's rules; stored past them (as on an older server), reported, nothing
    // read or written.
    doc["spec"]["targetRef"]["apiVersion"] = json!("apps/");
    if bed.admission_runs_cel("host") {
        let out = bed.kubectl_with_stdin("host", &["apply", "-f", "-"], Some(&doc.to_string()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("spec.targetRef.apiVersion"),
            "not refused at admission:\n{stderr}"
        );
    }
    bed.store_past_cel_rules("scalingpolicies.federation.flotilla.dev", &doc.to_string());
    let message = wait_condition(&bed, &ns, "AbleToScale", "False", "InvalidTargetRef").await;
    assert!(message.contains("targetRef.apiVersion"), "{message}");

    // A workload that exists nowhere.
    doc["spec"]["targetRef"] =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "ghost"});
    bed.apply("host", &doc.to_string());
    let message = wait_condition(&bed, &ns, "AbleToScale", "False", "FailedGetScale").await;
    assert!(message.contains("does not exist"), "{message}");
    assert_eq!(replicas(&bed, &ns, &["member1"]).await, vec![Some(2)]);
}

/// A tenant who may write ScalingPolicies only in its own host namespace reads only that
/// namespace's series: the operator pins every selector of the query to the policy's namespace,
/// and refuses a query that names another.
#[tokio::test]
async fn a_tenants_query_reads_only_its_own_namespaces_series() {
    let bed = TestBed::get();
    bed.federation();
    let prom = PrometheusStack::start();
    let _op = operator(&bed, "scaling-tenant", &prom);
    let ns = bed.namespace_everywhere("sp-tenant");
    let other = bed.namespace_everywhere("sp-other");
    deployment(&bed, "member1", &ns, 1);
    // The same metric name in both namespaces: 20 in the tenant's (2 replicas at 10 each), 150
    // in the other's (15 replicas, or 17 for the sum of both).
    prom.set(&ns, "sp_tenant", 20.0);
    prom.set(&other, "sp_tenant", 150.0);

    let tenant = format!("tenant-of-{ns}");
    bed.apply(
        "host",
        &json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "scaling-author", "namespace": *ns},
             "rules": [{"apiGroups": ["federation.flotilla.dev"], "resources": ["scalingpolicies"],
                        "verbs": ["get", "list", "create", "update", "patch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "scaling-author", "namespace": *ns},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "scaling-author"},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": tenant}]}
        ]})
        .to_string(),
    );
    let as_tenant = |doc: &str| {
        let out = bed.kubectl_with_stdin("host", &["apply", "--as", &tenant, "-f", "-"], Some(doc));
        assert!(
            out.status.success(),
            "the tenant could not apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The tenant may not write in the other namespace at all.
    let denied = bed.kubectl_with_stdin(
        "host",
        &["apply", "--as", &tenant, "-f", "-"],
        Some(&policy(&other, "sp_tenant", json!({}))),
    );
    assert!(
        !denied.status.success(),
        "the tenant wrote outside its namespace"
    );

    // No namespace in the query: the operator adds the tenant's.
    let mut doc: Value = serde_json::from_str(&policy(
        &ns,
        "sp_tenant",
        json!({"placement": {"clusters": ["member1"]}, "minReplicas": 1, "maxReplicas": 30,
               "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 30, "periodSeconds": 1}]}}}),
    ))
    .unwrap();
    doc["spec"]["metrics"][0]["external"]["prometheus"]["query"] = json!("sum(sp_tenant)");
    as_tenant(&doc.to_string());
    wait_replicas(&bed, &ns, &["member1"], &[2], WAIT).await;
    wait_policy(&bed, &ns, "the tenant's value only", |sp| {
        desired_total(sp) == Some(2)
    })
    .await;

    // Naming the other namespace is refused, and nothing is scaled on it.
    doc["spec"]["metrics"][0]["external"]["prometheus"]["query"] =
        json!(format!(r#"sum(sp_tenant{{namespace="{other}"}})"#));
    as_tenant(&doc.to_string());
    let message = wait_condition(&bed, &ns, "ScalingActive", "False", "QueryNotScopable").await;
    assert!(message.contains("namespace"), "{message}");
    // A regular expression that would match every namespace is refused too.
    doc["spec"]["metrics"][0]["external"]["prometheus"]["query"] =
        json!(r#"sum(sp_tenant{namespace=~".+"})"#);
    as_tenant(&doc.to_string());
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert_eq!(replicas(&bed, &ns, &["member1"]).await, vec![Some(2)]);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let sp = get_policy(&bed, &ns).await;
    assert_eq!(
        condition(&sp, "ScalingActive").map(|(s, r, _)| (s, r)),
        Some(("False".into(), "QueryNotScopable".into()))
    );
}

/// Two ScalingPolicies on one workload are a conflict reported on both, and neither scales it;
/// once one is deleted the other scales.
#[tokio::test]
async fn two_policies_on_one_workload_are_a_conflict_and_neither_scales() {
    let bed = TestBed::get();
    bed.federation();
    let prom = PrometheusStack::start();
    let _op = operator(&bed, "scaling-two-policies", &prom);
    let ns = bed.namespace_everywhere("sp-two");
    deployment(&bed, "member1", &ns, 2);
    let spec = json!({"placement": {"clusters": ["member1"]}, "minReplicas": 1, "maxReplicas": 10,
                      "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 10, "periodSeconds": 1}]}}});
    let first: Value = serde_json::from_str(&policy(&ns, "sp_two", spec.clone())).unwrap();
    let mut second = first.clone();
    second["metadata"]["name"] = json!("web-again");
    bed.apply(
        "host",
        &json!({"apiVersion": "v1", "kind": "List", "items": [first, second]}).to_string(),
    );
    let api: Api<ScalingPolicy> = Api::namespaced(bed.client("host").await, &ns);
    for (name, other) in [("web", "web-again"), ("web-again", "web")] {
        let api = api.clone();
        let message = eventually(&format!("{name} reports the conflict"), WAIT, || {
            let api = api.clone();
            async move {
                let sp = api.get(name).await?;
                Ok(condition(&sp, "AbleToScale")
                    .filter(|(s, r, _)| s == "False" && r == "ConflictingScalingPolicies")
                    .map(|(_, _, m)| m))
            }
        })
        .await
        .unwrap();
        assert!(message.contains(other), "{message}");
    }
    // A metric that calls for 6 replicas: neither policy acts on it.
    prom.set(&ns, "sp_two", 60.0);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert_eq!(replicas(&bed, &ns, &["member1"]).await, vec![Some(2)]);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bed.kubectl_ok("host", &["delete", "scalingpolicy", "web-again", "-n", &ns]);
    wait_replicas(&bed, &ns, &["member1"], &[6], WAIT).await;
}

/// The workload as Flotilla propagates it: a FederatedObject Deployment on the three members,
/// its 6 replicas divided, drift enforced (a replica count the engine fought over would be
/// "corrected" at once).
fn federated_deployment(ns: &str) -> String {
    json!({
        "apiVersion": "federation.flotilla.dev/v1alpha1", "kind": "FederatedObject",
        "metadata": {"name": TARGET, "namespace": ns},
        "spec": {
            "template": {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"labels": {"app": TARGET}},
                "spec": {
                    "replicas": 6,
                    "selector": {"matchLabels": {"app": TARGET}},
                    "template": {
                        "metadata": {"labels": {"app": TARGET}},
                        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]}
                    }
                }
            },
            "replicas": {"mode": "Divided"},
            "placement": {
                "clusters": ["member1", "member2", "member3"],
                "constraints": {"tolerations": [{"key": "flotilla.dev/cost-tier", "operator": "Exists"}]}
            },
            "drift": {"mode": "Enforce"},
        }
    })
    .to_string()
}

/// Drift the engine reports on the FederatedObject: its Drifted condition and per-cluster
/// entries.
async fn reported_drift(bed: &TestBed, ns: &str) -> Option<String> {
    let api: Api<flotilla_api::FederatedObject> = Api::namespaced(bed.client("host").await, ns);
    let fo = api.get(TARGET).await.unwrap();
    let status = fo.status?;
    let drifted = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Drifted" && c.status == "True")
        .map(|c| c.message.clone());
    let entries: Vec<String> = status
        .clusters
        .iter()
        .filter_map(|c| c.drift.as_ref().map(|d| format!("{}: {d:?}", c.cluster)))
        .collect();
    (drifted.is_some() || !entries.is_empty()).then(|| format!("{drifted:?} {entries:?}"))
}

/// Who owns `spec.replicas` of the copy in `member`, by field manager.
async fn replica_owners(bed: &TestBed, ns: &str, member: &str) -> Vec<String> {
    let api: Api<Deployment> = Api::namespaced(bed.client(member).await, ns);
    let d = api.get(TARGET).await.unwrap();
    d.metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .map(|e| e.manager.unwrap_or_default())
        .collect()
}

/// A team federates its Deployment and autoscales it: the ScalingPolicy owns the replicas in
/// the members (the engine lets go of them, reports no drift on them and never "corrects"
/// them), takes its clusters and division from the workload's propagation (its own placement
/// is refused as a contradiction), follows a member's failure and return, and when deleted
/// hands the replicas back to the propagation's own division, with no drop to 0 on the way.
#[tokio::test]
async fn a_federated_deployment_is_scaled_by_one_owner() {
    let bed = TestBed::get();
    bed.federation();
    let prom = PrometheusStack::start();
    let _op = operator(&bed, "scaling-federated", &prom);
    let ns = bed.namespace_everywhere("sp-fed");
    let members = ["member1", "member2", "member3"];
    bed.apply("host", &federated_deployment(&ns));
    wait_replicas(&bed, &ns, &members, &[2, 2, 2], WAIT).await;

    // A policy that places the workload itself contradicts the workload's propagation.
    prom.set(&ns, "sp_fed", 90.0);
    bed.apply(
        "host",
        &policy(
            &ns,
            "sp_fed",
            json!({"placement": {"clusters": ["member1"]}, "maxReplicas": 30}),
        ),
    );
    let message = wait_condition(&bed, &ns, "AbleToScale", "False", "ContradictorySettings").await;
    assert!(message.contains("remove placement"), "{message}");
    holds(
        "nothing scaled while contradictory",
        Duration::from_secs(3),
        async || replicas(&bed, &ns, &members).await == [Some(2), Some(2), Some(2)],
    )
    .await;

    // Without its own placement it scales the workload where the workload runs: 90 / 10 = 9.
    bed.kubectl_ok("host", &["delete", "scalingpolicy", "web", "-n", &ns]);
    bed.apply(
        "host",
        &policy(
            &ns,
            "sp_fed",
            json!({
                "minReplicas": 1, "maxReplicas": 30,
                "behavior": {
                    "scaleUp": {"policies": [{"type": "Pods", "value": 30, "periodSeconds": 1}]},
                    "scaleDown": {"stabilizationWindowSeconds": 0,
                                  "policies": [{"type": "Pods", "value": 30, "periodSeconds": 1}]}
                }
            }),
        ),
    );
    wait_replicas(&bed, &ns, &members, &[3, 3, 3], WAIT).await;
    // One owner: the policy's writes hold spec.replicas, the engine's apply does not.
    eventually("the engine lets go of replicas", WAIT, || async {
        let owners = replica_owners(&bed, &ns, "member1").await;
        Ok((owners == ["flotilla-scaling"]).then_some(()))
    })
    .await
    .unwrap();
    holds(
        "scaled replicas stay, no drift reported",
        Duration::from_secs(5),
        async || {
            replicas(&bed, &ns, &members).await == [Some(3), Some(3), Some(3)]
                && reported_drift(&bed, &ns).await.is_none()
        },
    )
    .await;

    // Down: 30 / 10 = 3.
    prom.set(&ns, "sp_fed", 30.0);
    wait_replicas(&bed, &ns, &members, &[1, 1, 1], WAIT).await;

    // A member killed: its share goes to the others (and the workload's copy leaves with the
    // same placement); restored: both come back.
    let mut outage = Outage::kill(&bed, "member2");
    let survivors = ["member1", "member3"];
    eventually("member2's share moved", Duration::from_secs(90), || async {
        let r = replicas(&bed, &ns, &survivors).await;
        Ok((r.iter().flatten().sum::<i32>() == 3).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(reported_drift(&bed, &ns).await, None);
    outage.restore();
    wait_replicas(&bed, &ns, &members, &[1, 1, 1], Duration::from_secs(90)).await;
    holds(
        "settled after the return, no drift",
        Duration::from_secs(3),
        async || {
            replicas(&bed, &ns, &members).await == [Some(1), Some(1), Some(1)]
                && reported_drift(&bed, &ns).await.is_none()
        },
    )
    .await;

    // The policy deleted: replicas return to the propagation's division (6 → 2 each), never
    // through 0 and never above it.
    bed.kubectl_ok("host", &["delete", "scalingpolicy", "web", "-n", &ns]);
    let seen = std::cell::RefCell::new(Vec::new());
    eventually("replicas back to the propagation's", WAIT, || {
        let seen = &seen;
        let (bed, ns) = (&bed, &ns);
        async move {
            let now = replicas(bed, ns, &members).await;
            seen.borrow_mut().push(now.clone());
            Ok((now == [Some(2), Some(2), Some(2)]).then_some(()))
        }
    })
    .await
    .unwrap();
    let seen = seen.into_inner();
    assert!(
        seen.iter().flatten().all(|r| matches!(r, Some(1 | 2))),
        "replicas went outside 1..=2 on the way back: {seen:?}"
    );
    eventually("the engine owns replicas again", WAIT, || async {
        let owners = replica_owners(&bed, &ns, "member1").await;
        Ok(owners.contains(&"flotilla".to_string()).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(reported_drift(&bed, &ns).await, None);
    bed.kubectl_ok(
        "host",
        &[
            "delete",
            "federatedobject",
            TARGET,
            "-n",
            &ns,
            "--wait=true",
        ],
    );
}
