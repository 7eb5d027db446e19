//! The members' HorizontalPodAutoscalers, from one watch per member shared by every
//! ScalingPolicy (see [`super::member_watch`]): a policy asks which HPAs target its workload
//! without a request of its own, so the cost at rest does not grow with policies × members.
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::ResourceExt;

use super::member_watch::MemberWatches;
use super::spec::Target;
use crate::members::registry::Member;

pub(super) struct MemberHpas(MemberWatches<HorizontalPodAutoscaler>);

impl Default for MemberHpas {
    fn default() -> Self {
        Self(MemberWatches::new(|hpa| hpa.managed_fields_mut().clear()))
    }
}

impl MemberHpas {
    /// The HPAs in `namespace` of `member` whose `scaleTargetRef` is `target`, as
    /// `namespace/name`; `None` until the member's watch has listed once (the caller then asks
    /// the member directly).
    pub fn targeting(
        &self,
        member: &Member,
        namespace: &str,
        target: &Target,
    ) -> Option<Vec<String>> {
        let store = self.0.store(member)?;
        let mut found: Vec<String> = store
            .state()
            .iter()
            .filter(|h| h.namespace().as_deref() == Some(namespace))
            .filter(|h| {
                h.spec
                    .as_ref()
                    .is_some_and(|s| super::member::targets(&s.scale_target_ref, target))
            })
            .map(|h| format!("{namespace}/{}", h.name_any()))
            .collect();
        found.sort();
        Some(found)
    }

    /// Stops the watches of members that are gone.
    pub fn retain(&self, members: &[Member]) {
        self.0.retain(members);
    }
}
