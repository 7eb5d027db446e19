//! The members' pods, from one watch per member shared by every ScalingPolicy that reads a Pods
//! or Resource metric there (see [`super::member_watch`]): the pod data a metric needs (phase,
//! readiness, start time, requests) costs no request per policy. Pods are kept trimmed to what
//! the replica calculator reads.
//!
//! Used when the workload's pod selector is known as a structure (a federated workload, from the
//! engine's copy watch); the scale subresource only gives it as text, and such workloads list
//! their pods at each metrics read instead.
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use super::member::{TargetPod, target_pod};
use super::member_watch::MemberWatches;
use crate::members::registry::Member;

pub(super) struct MemberPods(MemberWatches<Pod>);

impl Default for MemberPods {
    fn default() -> Self {
        Self(MemberWatches::new(trim))
    }
}

impl MemberPods {
    /// The pods in `namespace` of `member` that `selector` selects, with their requests of
    /// `resource`; `None` until the member's watch has listed once, or when the selector cannot
    /// be evaluated (the caller then lists them).
    pub fn pods(
        &self,
        member: &Member,
        namespace: &str,
        selector: &LabelSelector,
        resource: Option<&str>,
    ) -> Option<Vec<TargetPod>> {
        let selector = Selector::try_from(selector.clone()).ok()?;
        let store = self.0.store(member)?;
        Some(
            store
                .state()
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(namespace))
                .filter(|p| selector.matches(p.labels()))
                .map(|p| target_pod(p, resource))
                .collect(),
        )
    }

    /// Stops the watches of members that are gone.
    pub fn retain(&self, members: &[Member]) {
        self.0.retain(members);
    }
}

/// What the replica calculator reads of a pod, and nothing else.
fn trim(pod: &mut Pod) {
    pod.managed_fields_mut().clear();
    pod.annotations_mut().clear();
    pod.metadata.owner_references = None;
    if let Some(spec) = pod.spec.as_mut() {
        let containers = std::mem::take(&mut spec.containers);
        *spec = Default::default();
        spec.containers = containers
            .into_iter()
            .map(|c| k8s_openapi::api::core::v1::Container {
                name: c.name,
                resources: c
                    .resources
                    .map(|r| k8s_openapi::api::core::v1::ResourceRequirements {
                        requests: r.requests,
                        ..Default::default()
                    }),
                ..Default::default()
            })
            .collect();
    }
    if let Some(status) = pod.status.as_mut() {
        let kept = k8s_openapi::api::core::v1::PodStatus {
            phase: status.phase.take(),
            start_time: status.start_time.take(),
            conditions: status
                .conditions
                .take()
                .map(|c| c.into_iter().filter(|c| c.type_ == "Ready").collect()),
            ..Default::default()
        };
        *status = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_trimmed_pod_keeps_what_the_replica_calculator_reads() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"},
                "annotations": {"big": "x"}},
            "spec": {"containers": [{"name": "app", "image": "i", "env": [{"name": "A", "value": "1"}],
                "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}}],
                "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"phase": "Running", "startTime": "2026-01-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"},
                               {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": true, "restartCount": 0}]}
        }))
        .expect("a pod");
        trim(&mut pod);
        let seen = target_pod(&pod, Some("cpu"));
        assert_eq!(seen.request, Some(0.25));
        assert_eq!(seen.facts.phase, flotilla_autoscaling::PodPhase::Running);
        assert!(seen.facts.ready.is_some_and(|r| !r.status_false));
        assert!(seen.facts.start_time.is_some());
        assert!(pod.metadata.annotations.is_none_or(|a| a.is_empty()));
        let spec = pod.spec.expect("spec");
        assert!(spec.volumes.is_none());
        assert!(spec.containers[0].env.is_none());
        assert_eq!(
            pod.status.expect("status").conditions.map(|c| c.len()),
            Some(1)
        );
        assert_eq!(pod.metadata.labels.map(|l| l.len()), Some(1));
    }
}
