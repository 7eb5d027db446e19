//! The human-readable explanation: one aligned line per cluster, then unmet constraints.
mod common;

use common::*;
use flotilla_placement::{ReplicaRequest, Taint, TaintEffect};

#[test]
fn one_line_per_cluster_then_unsatisfied() {
    let mut spec = priority(&[&["member1"], &["member2"]]);
    spec.clusters = vec![
        "member1".into(),
        "member2".into(),
        "member3".into(),
        "ghost".into(),
    ];
    let inventory = [
        plain("member1"),
        plain("member2"),
        down(plain("member3"), 940),
        plain("lab").with_taint(Taint::new("maint", "yes", TaintEffect::NoExecute)),
    ];
    let d = run_replicas(&spec, &inventory, &ReplicaRequest::new(3));
    let text = d.to_string();
    let expected = "\
lab      Filtered   -           NotInClusterList: not listed in placement.clusters
member1  Selected   priority 0  PrimaryHealthy: priority 0, the best rank  replicas 3
member2  Standby    priority 1  LowerPriority: a better-ranked failover group supplies the selection
member3  Unhealthy  priority 2  ClusterNotReady: not ready since 1970-01-01T00:15:40Z
unsatisfied: cluster ghost is listed in placement.clusters but is not a member cluster
";
    assert_eq!(text, expected, "\n{text}");
    assert_eq!(d.explain(), text);
    assert_eq!(text.lines().count(), d.clusters.len() + d.unsatisfied.len());
}

#[test]
fn a_single_verdict_renders_on_one_line() {
    let d = run_fresh(&Default::default(), &[plain("a")]);
    let line = d.clusters[0].to_string();
    assert_eq!(line, "a  Selected  -  Matched: matches the placement");
}
