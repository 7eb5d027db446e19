//! Two ScalingPolicies on one workload: a conflict reported on both, and neither scales it until
//! one is left. Two deciders would each write their own total to the same scale subresource
//! every second, and the replicas would follow whichever wrote last.
use flotilla_api::ScalingPolicy;
use kube::ResourceExt as _;

use super::spec::Target;

/// The condition reason of a policy that shares its target with another.
pub const REASON: &str = "ConflictingScalingPolicies";

/// The other live policies in `namespace` whose target is `target` (same group, kind and name;
/// the version does not matter: it is the same object), as `namespace/name`, sorted.
pub fn others<'a>(
    policies: impl IntoIterator<Item = &'a ScalingPolicy>,
    me: &ScalingPolicy,
    namespace: &str,
    target: &Target,
) -> Vec<String> {
    let mut found: Vec<String> = policies
        .into_iter()
        .filter(|p| p.metadata.uid != me.metadata.uid)
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .filter(|p| same_target(p, target))
        .map(|p| format!("{namespace}/{}", p.name_any()))
        .collect();
    found.sort();
    found
}

fn same_target(p: &ScalingPolicy, target: &Target) -> bool {
    let r = &p.spec.target_ref;
    let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    group == target.group && r.kind == target.kind && r.name == target.name
}

/// The condition message.
pub fn message(target: &Target, others: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut names = others
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if others.len() > SHOWN {
        names.push_str(&format!(" and {} more", others.len() - SHOWN));
    }
    format!(
        "ScalingPolicy {names} also target{} {} {}; none of them scales it until only one is left",
        if others.len() == 1 { "s" } else { "" },
        target.kind,
        target.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(
        ns: &str,
        name: &str,
        uid: &str,
        api_version: &str,
        kind: &str,
        target: &str,
    ) -> ScalingPolicy {
        let mut sp = ScalingPolicy::new(
            name,
            serde_json::from_value(serde_json::json!({
                "targetRef": {"apiVersion": api_version, "kind": kind, "name": target},
                "maxReplicas": 3
            }))
            .expect("spec"),
        );
        sp.metadata.namespace = Some(ns.into());
        sp.metadata.uid = Some(uid.into());
        sp
    }

    fn web() -> Target {
        Target {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn policies_on_the_same_workload_conflict_and_no_others() {
        let me = policy("shop", "a", "1", "apps/v1", "Deployment", "web");
        let all = [
            me.clone(),
            policy("shop", "b", "2", "apps/v1beta2", "Deployment", "web"),
            policy("shop", "c", "3", "apps/v1", "Deployment", "api"),
            policy("shop", "d", "4", "apps/v1", "StatefulSet", "web"),
            policy("other", "e", "5", "apps/v1", "Deployment", "web"),
            policy("shop", "f", "6", "example.com/v1", "Deployment", "web"),
        ];
        assert_eq!(others(&all, &me, "shop", &web()), ["shop/b"]);
        let mut deleting = policy("shop", "g", "7", "apps/v1", "Deployment", "web");
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert_eq!(
            others([&me, &deleting], &me, "shop", &web()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_message_names_a_few_and_counts_the_rest() {
        let many: Vec<String> = (0..20).map(|i| format!("shop/p{i}")).collect();
        let text = message(&web(), &many);
        assert!(
            text.contains("shop/p0") && text.contains("and 15 more"),
            "{text}"
        );
        assert!(message(&web(), &many[..1]).contains("also targets Deployment web"));
    }
}
